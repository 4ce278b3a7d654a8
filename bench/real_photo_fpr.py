"""How often a detector calls a real photo fake, and what it catches, as images are and as they circulate.

For a dataset's val split, each image is scored as it is ("native") and after `circulate` (a random
downscale to 0.4-0.9x and a JPEG re-save at quality 60-95, drawn from the image's own pixels, so both
classes meet the same draws). Reported per view at the detector's own threshold: the share of real
photos called fake (false-positive rate), the share of fakes called fake (recall), and the shares
called uncertain (multi-crop detectors).

    python bench/real_photo_fpr.py [--checkpoint shipped] [--data ../shared/data/wild-train]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from unigendet.apps.predictor import Predictor
from unigendet.data.degrade import get_degradation
from unigendet.data.imageio import open_image
from unigendet.data.readers import read_source
from unigendet.labels import FAKE

SHARED = Path(__file__).resolve().parents[2] / "shared"


def rates(labels: list[str], is_fake: list[bool]) -> dict[str, float]:
    reals = [lab for lab, f in zip(labels, is_fake, strict=True) if not f]
    fakes = [lab for lab, f in zip(labels, is_fake, strict=True) if f]
    return {"real_called_fake": reals.count("fake") / len(reals),
            "real_uncertain": reals.count("uncertain") / len(reals),
            "fake_called_fake": fakes.count("fake") / len(fakes),
            "fake_uncertain": fakes.count("uncertain") / len(fakes), "reals": len(reals), "fakes": len(fakes)}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default="shipped")
    ap.add_argument("--data", default=str(SHARED / "data" / "wild-train"))
    ap.add_argument("--split", default="val")
    ap.add_argument("--out", default="runs/real-photo-fpr")
    args = ap.parse_args(argv)
    t0 = time.time()
    predictor = Predictor(args.checkpoint, explainer=None)
    records = [r for r in read_source(args.data, strict=True) if r.split == args.split]
    is_fake = [r.label == FAKE for r in records]
    circulate = get_degradation("circulate")
    labels = {"native": [], "circulated": []}
    for r in records:
        image = open_image(r.path)
        for view, im in (("native", image), ("circulated", circulate(image))):
            labels[view].append(predictor.detect([im])[0].label)
    summary = {"checkpoint": args.checkpoint, "data": args.data, "split": args.split,
               "threshold": predictor.threshold, "seconds": round(time.time() - t0, 1),
               **{view: rates(labs, is_fake) for view, labs in labels.items()}}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "fpr.json").write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
