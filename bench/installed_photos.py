"""Whole files of full-resolution photos a detector never trained on: how many it calls fake or uncertain.

The photos the built-in corpus is made from (scikit-image, scikit-learn, opencv-doc, mate-backgrounds,
lomiri-wallpapers; 0.3 to 10 megapixels) are not in wild-train, which holds only 256-px crops, so the
shipped detector never saw them or their cameras. Each file is read as found, whole, and given the
verdict `unigendet detect` gives; the shares of `fake`, `uncertain` (with why) and `real` are reported,
per package and overall. `--crop-choice`, `--whole-weight` and `--no-novelty` override how the run
reads crops, how much the resized whole image weighs and whether it abstains on novelty, so the
inference rules are compared on the same weights, side by side (nothing is selected here: these
photos are a test set).

    python bench/installed_photos.py [--checkpoint shipped] [--crop-choice grid --crop-choice evidence]
        [--whole-weight 0 --whole-weight 0.5] [--no-novelty]
"""

from __future__ import annotations

import argparse
import json
import time
from collections import Counter
from itertools import product
from pathlib import Path

from unigendet.apps.predictor import Predictor
from unigendet.corpus.sources import discover_photos
from unigendet.data.imageio import open_image


def rates(labels: list[str]) -> dict[str, float]:
    n = max(1, len(labels))
    c = Counter(labels)
    return {"photos": len(labels), "fake": c["fake"] / n, "uncertain": c["uncertain"] / n, "real": c["real"] / n}


def measure(predictor: Predictor, photos) -> dict:
    labels, why, per_package = [], Counter(), {}
    for photo in photos:
        (v,) = predictor.detect([open_image(photo.path)])
        labels.append(v.label)
        per_package.setdefault(photo.package, []).append(v.label)
        if v.label == "uncertain":
            why["novel" if v.novel else "parts disagree"] += 1
    return {"all": rates(labels), "uncertain_because": dict(why),
            "packages": {k: rates(v) for k, v in sorted(per_package.items())}}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default="shipped")
    ap.add_argument("--crop-choice", action="append", default=[], help="grid | evidence (default: the run's own)")
    ap.add_argument("--whole-weight", action="append", type=float, default=[],
                    help="the resized whole image's weight in the verdict (default: the run's own)")
    ap.add_argument("--no-novelty", action="store_true", help="also measure the run without novelty abstention")
    ap.add_argument("--out", default="runs/installed-photos")
    args = ap.parse_args(argv)
    photos = discover_photos()
    if not photos:
        raise SystemExit("no installed photos found (make system installs them)")
    predictor = Predictor(args.checkpoint, explainer=None)
    det = predictor.detector
    rows = {}
    saved = det.novelty
    choices, wholes = args.crop_choice or [det.crop_choice], args.whole_weight or [det.whole_weight]
    for choice, whole, novelty in product(choices, wholes, [True, False] if args.no_novelty else [True]):
        det.crop_choice, det.whole_weight, det.novelty = choice, whole, saved if novelty else None
        t0 = time.time()
        name = f"crops: {choice}, whole image weight {whole}" + ("" if novelty else ", no novelty abstention")
        rows[name] = {**measure(predictor, photos), "seconds": round(time.time() - t0, 1)}
        a = rows[name]["all"]
        print(f"{name}: {a['photos']} photos: fake {a['fake']:.1%}, uncertain {a['uncertain']:.1%} "
              f"({rows[name]['uncertain_because']}), real {a['real']:.1%}", flush=True)
    det.novelty = saved
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "photos.json").write_text(json.dumps({"checkpoint": args.checkpoint, "threshold": predictor.threshold,
                                                 "rows": rows}, indent=2))


if __name__ == "__main__":
    main()
