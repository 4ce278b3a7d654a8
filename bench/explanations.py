"""How far UniGenDet's written explanations can be trusted, on evaluation images it never trained on.

For N images of a dataset's val split (label-balanced, fixed order), the explaining checkpoint
writes its answer. Reported:
- the written verdict against the cls head's (agreement; unparseable answers counted apart);
- faithfulness: of the cue claims the answers make, the fraction consistent with the cues measured
  on the same image (`unigendet.explain.check`, with the checkpoint's cue scale);
- how often the written verdict and the shipped detector's verdict agree (they are shown together);
- when the checkpoint learned to explain a detector (its meta's `explains`): how often its written
  reasons are the ones that detector's attribution gives for its verdict (`unigendet.explain.reasons_agree`;
  images it calls uncertain are left out and counted), overall and apart for close calls (`close_call`:
  the attribution's two strongest kinds of evidence on a side nearly tied, or the evidence against weak)
  and clear ones.

    python bench/explanations.py --checkpoint shipped:explain --n 100 --out runs/explanations

Writes OUT/explanations.json and OUT/explanations.md (one row per image: label, verdicts, answer).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from unigendet.apps.predictor import Predictor, evidence_questions
from unigendet.data.imageio import open_image
from unigendet.data.readers import read_source
from unigendet.detectors.attribution import attribute
from unigendet.explain import CueScale, check, measure, reasons_agree
from unigendet.labels import FAKE, LABEL_NAMES
from unigendet.rundir import read_meta
from unigendet.unified.prompts import parse_verdict
from unigendet.weights import resolve_checkpoint

SHARED = Path(__file__).resolve().parents[2] / "shared"


def pick(records, n: int):
    """n records of the val split, half of each label (as available), in manifest order."""
    val = [r for r in records if r.split == "val"] or list(records)
    fakes, reals = [r for r in val if r.label == FAKE], [r for r in val if r.label != FAKE]
    k = min(n // 2, len(fakes))
    return fakes[:k] + reals[: n - k]


def close_call(contributions: dict[str, float], label: str) -> bool:
    """Whether the attribution leaves the reasons to a near tie: no evidence for the verdict, the two
    strongest for it (or against it) within half of the strongest, or the strongest against under 0.3."""
    sign = 1 if label == "fake" else -1
    support = sorted((sign * v for v in contributions.values() if sign * v > 0), reverse=True)
    against = sorted((-sign * v for v in contributions.values() if sign * v < 0), reverse=True)

    def tied(xs):
        return len(xs) >= 2 and xs[0] - xs[1] < 0.5 * xs[0]

    return not support or tied(support) or tied(against) or (bool(against) and against[0] < 0.3)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="shipped:explain")
    ap.add_argument("--data", default=str(SHARED / "data" / "wild-train"))
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--out", default="runs/explanations")
    args = ap.parse_args(argv)
    path = resolve_checkpoint(args.checkpoint)
    meta = read_meta(path)
    if "cue_scale" not in meta:
        raise SystemExit(f"{path} carries no cue scale: it was not trained on measured-cue answers")
    scale = CueScale.from_json(json.dumps(meta["cue_scale"]))
    records = pick(read_source(args.data, strict=True), args.n)
    images = [open_image(r.path) for r in records]
    explainer = Predictor(path)
    shipped = Predictor("shipped", explainer=None)
    verdicts = shipped.detect(images)
    attributions = attribute(shipped.detector, images) if meta.get("explains") else [None] * len(images)
    if meta.get("evidence_prompt"):  # it explains from the shipped detector's verdict and evidence, as served
        found = explainer.detector.explain_images(images, evidence_questions(verdicts, attributions,
                                                                             shipped.threshold))
    else:
        found = explainer.detector.explain_images(images)
    rows, made, consistent = [], 0, 0
    for r, d, v, c, a in zip(records, found, verdicts, measure(images), attributions, strict=True):
        levels = scale.levels(c)
        reading = check(d.text, levels)
        made, consistent = made + reading.made, consistent + reading.consistent
        stated = parse_verdict(d.text or "")
        rows.append({"path": str(r.path), "label": LABEL_NAMES[r.label], "p_fake_cls": d.p_fake,
                     "cls": "fake" if d.p_fake > 0.5 else "real",
                     "written": None if stated is None else LABEL_NAMES[stated], "shipped": v.label,
                     "levels": levels, "claims": reading.made, "consistent": reading.consistent,
                     "unparsed_sentences": reading.unparsed, "answer": d.text,
                     "reasons_agree": None if a is None or v.label not in ("fake", "real") else
                     reasons_agree(d.text, a.contributions, v.label),
                     "close_call": None if a is None or v.label not in ("fake", "real") else
                     close_call(a.contributions, v.label)})
    written = [x for x in rows if x["written"] is not None]
    summary = {
        "checkpoint": str(path), "data": args.data, "images": len(rows),
        "unparseable": len(rows) - len(written),
        "written_agrees_cls": float(np.mean([x["written"] == x["cls"] for x in rows])),  # unparseable: disagree
        "written_agrees_shipped": float(np.mean([x["written"] == x["shipped"] for x in rows])),
        "written_accuracy": float(np.mean([x["written"] == x["label"] for x in rows])),
        "cls_accuracy": float(np.mean([x["cls"] == x["label"] for x in rows])),
        "claims": made, "claims_consistent": consistent / made if made else 0.0,
        "unparsed_sentences": sum(len(x["unparsed_sentences"]) for x in rows),
    }
    judged = [x["reasons_agree"] for x in rows if x["reasons_agree"] is not None]
    if meta.get("explains"):
        summary.update(explains=meta["explains"], evidence_prompt=bool(meta.get("evidence_prompt")),
                       reasons_agree=float(np.mean(judged)) if judged else 0.0,
                       reasons_judged=len(judged))
        for close in (False, True):  # where the attribution itself is a near tie, and where it is clear
            part = [x["reasons_agree"] for x in rows if x["close_call"] is close]
            name = "close" if close else "clear"
            summary.update({f"reasons_agree_{name}": float(np.mean(part)) if part else None,
                            f"reasons_judged_{name}": len(part)})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "explanations.json").write_text(json.dumps({"summary": summary, "rows": rows}, indent=2))
    lines = ["| | value |", "|---|---|"] + [f"| {k} | {v:.3f} |" if isinstance(v, float) else f"| {k} | {v} |"
                                            for k, v in summary.items()]
    lines += ["", "| image | label | cls | written | shipped | claims ok | answer |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {Path(x['path']).name} | {x['label']} | {x['cls']} | {x['written']} | {x['shipped']} | "
              f"{x['consistent']}/{x['claims']} | {x['answer']} |" for x in rows]
    (out / "explanations.md").write_text("\n".join(lines) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
