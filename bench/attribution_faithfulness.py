"""Whether the reasons the product gives for a verdict are the reasons the detector acted on.

For a forensic (linear-head) detector and a dataset's val split:
- deletion test: for each fake image, the kind of evidence the explanation cites for "generated"
  (the largest contribution of the detector's attribution) is replaced, in every crop, by its mean
  over the real photos of the val split (photos the attribution's own reference, the train split's
  photos, never saw); the test passes for that image when this moves the fake logit toward real by
  more than replacing any other kind of evidence does;
- agreement: the kind of evidence the written reasons name first is the attribution's strongest for
  the verdict;
- contradictions: explanations whose first-named reason points away from the verdict shown
  (0 wanted), and calls given with contrary evidence only that are not marked uncertain.

    python bench/attribution_faithfulness.py [--checkpoint shipped] [--data ../shared/data/wild-train]

Writes OUT/faithfulness.json.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from unigendet.apps.predictor import Predictor
from unigendet.data.imageio import open_image
from unigendet.data.readers import read_source
from unigendet.explain import reasons
from unigendet.labels import FAKE, REAL

SHARED = Path(__file__).resolve().parents[2] / "shared"
SIDE_WORDS = {"fake": "generated", "real": "a photo"}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default="shipped", help="a forensic detector run")
    ap.add_argument("--data", default=str(SHARED / "data" / "wild-train"))
    ap.add_argument("--out", default="runs/faithfulness")
    args = ap.parse_args(argv)
    t0 = time.time()
    predictor = Predictor(args.checkpoint, explainer=None)
    det = predictor.detector
    if not hasattr(det, "attribute_features"):
        raise SystemExit(f"{args.checkpoint}: the deletion test needs a linear-head (forensic) detector")
    records = read_source(args.data, strict=True)
    val = [r for r in records if r.split == "val"]
    images = {str(r.path): open_image(r.path) for r in val}
    features = {path: det.crop_features([im])[0] for path, im in images.items()}
    # the val photos' mean features: replacing a kind of evidence by them is the deletion
    reference = torch.cat([features[str(r.path)] for r in val if r.label == REAL]).mean(0)
    rows = []
    for r in val:
        x = features[str(r.path)]
        owner = np.zeros(len(x), dtype=np.int64)  # every crop is this image's
        (v,) = predictor.detect([images[str(r.path)]])
        (a,) = det.attribute_features(x, owner, 1)
        (d,) = det.attribute_features(x, owner, 1, reference=reference)
        contributions, deletion = a.contributions, d.contributions
        text = reasons(contributions, v.label)
        rows.append({"path": str(r.path), "label": "fake" if r.label == FAKE else "real", "verdict": v.label,
                     "contributions": contributions, "deletion": deletion, "reasons": text})
    fakes = [x for x in rows if x["label"] == "fake"]

    def passes(x) -> bool:
        cited = max(x["contributions"], key=x["contributions"].get)
        return x["deletion"][cited] >= max(x["deletion"].values())

    def first_named(x) -> str | None:
        text = x["reasons"]
        return text.split(" is in ")[1].split(" (")[0] if text.startswith("Most of the evidence for") else None

    def agrees(x) -> bool:
        name = first_named(x)
        if name is None:
            return True  # no reason named (uncertain): nothing to disagree with
        sign = 1 if x["verdict"] == "fake" else -1
        return name == max(x["contributions"], key=lambda k: sign * x["contributions"][k])

    def contradicts(x) -> bool:
        name = first_named(x)
        if x["verdict"] not in SIDE_WORDS:
            return False
        other = SIDE_WORDS["real" if x["verdict"] == "fake" else "fake"]
        wrong_side = f"for {other} is in" in x["reasons"].split(";")[0]
        sign = 1 if x["verdict"] == "fake" else -1
        contrary_only = name is not None and x["contributions"][name] * sign <= 0
        return wrong_side or contrary_only

    called_fake = [x for x in fakes if x["verdict"] == "fake"]
    summary = {
        "checkpoint": args.checkpoint, "data": args.data, "val_images": len(rows), "val_fakes": len(fakes),
        "deletion_reference": f"{sum(r.label == REAL for r in val)} val photos",
        "attribution_reference": "typical photo" if det.reference is not None else "training mean",
        "seconds": round(time.time() - t0, 1),
        "deletion_pass_fakes": float(np.mean([passes(x) for x in fakes])),
        "deletion_pass_fakes_called_fake": float(np.mean([passes(x) for x in called_fake])) if called_fake else None,
        "reasons_agree_with_attribution": float(np.mean([agrees(x) for x in rows])),
        "contradictions": int(sum(contradicts(x) for x in rows)),
        "marked_uncertain": int(sum("uncertain" in x["reasons"] for x in rows)),
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "faithfulness.json").write_text(json.dumps({"summary": summary, "rows": rows}, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
