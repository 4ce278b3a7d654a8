"""The detection protocol: every detector scored the same way on the same records.

Per generator, its fakes are evaluated against the reals paired with it (reals whose
generator field names it); reals paired with no generator ("real", empty, or a name no fake
carries, such as "photo") are shared by every generator, as in GenImage/UFD-style test sets. Means are taken over
generators. A threshold calibrated on a separate validation set is reported beside the
fixed 0.5, and the oracle threshold only as a labelled upper bound.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..data.degrade import get_degradation
from ..data.imageio import open_image
from ..data.records import Record
from ..detectors import Explainer
from ..labels import FAKE
from ..metrics import calibrate_threshold, css, detection_report, rouge_l
from ..unified.prompts import parse_verdict

SHARED = ("", "real")


def generator_groups(records: Sequence[Record]) -> dict[str, np.ndarray]:
    """generator -> indices of its fakes and of the reals it is compared with."""
    fakes = sorted({r.generator for r in records if r.label == FAKE})
    own_set = set(fakes)
    if not fakes:
        raise ValueError("no fake images to evaluate")
    shared = [i for i, r in enumerate(records)
              if r.label != FAKE and (r.generator in SHARED or r.generator not in own_set)]
    groups = {}
    for g in fakes:
        own = [i for i, r in enumerate(records) if r.generator == g]
        idx = np.array(sorted(set(own) | set(shared)))
        if not any(records[i].label != FAKE for i in idx):
            raise ValueError(f"generator {g!r} has no real images to compare with")
        groups[g] = idx
    return groups


def mean_of(reports: dict[str, dict]) -> dict[str, float]:
    keys = set.intersection(*(set(r) for r in reports.values()))
    return {k: float(np.mean([r[k] for r in reports.values()])) for k in sorted(keys)
            if k not in ("n", "n_fake", "threshold", "oracle_threshold")}


def score_report(scores: np.ndarray, records: Sequence[Record], threshold: float = 0.5) -> dict:
    """{"per_generator": {g: report}, "mean": means over generators, "all": pooled report}."""
    is_fake = np.array([r.label == FAKE for r in records])
    per = {g: detection_report(scores[idx], is_fake[idx], threshold) for g, idx in generator_groups(records).items()}
    return {"per_generator": per, "mean": mean_of(per), "all": detection_report(scores, is_fake, threshold)}


@dataclass
class DetectorResult:
    name: str
    scores: np.ndarray
    report: dict
    threshold: float = 0.5
    texts: list[str | None] | None = None
    degraded: dict[str, dict] = field(default_factory=dict)


def text_report(texts: Sequence[str | None], records: Sequence[Record]) -> dict[str, float]:
    """Written verdicts: accuracy with unparseable answers counted wrong, their rate, and
    ROUGE-L / CSS against the reference explanations where records have one."""
    verdicts = [parse_verdict(t) if t else None for t in texts]
    labels = [r.label for r in records]
    out = {"text_acc": float(np.mean([v == y for v, y in zip(verdicts, labels, strict=True)])),
           "unparsed_rate": float(np.mean([v is None for v in verdicts]))}
    pairs = [(t or "", r.explanation) for t, r in zip(texts, records, strict=True) if r.explanation]
    if pairs:
        preds, refs = [p for p, _ in pairs], [r for _, r in pairs]
        out["rouge_l"] = float(np.mean(rouge_l(preds, refs)))
        out["css"] = float(np.mean(css(preds, refs)))
        out["n_references"] = len(pairs)
    return out


def evaluate_detector(detector, records: Sequence[Record], calibration: Sequence[Record] = (),
                      explain: bool = False) -> DetectorResult:
    paths = [str(r.path) for r in records]
    texts = None
    if explain and isinstance(detector, Explainer):
        found = detector.explain(paths)
        scores = np.array([d.p_fake for d in found], dtype=np.float64)
        texts = [d.text for d in found]
    else:
        scores = np.asarray(detector.predict(paths), dtype=np.float64)
    threshold = 0.5
    if calibration:
        cal = np.asarray(detector.predict([str(r.path) for r in calibration]))
        threshold = calibrate_threshold(cal, [r.label == FAKE for r in calibration])
    report = score_report(scores, records, threshold)
    if texts is not None:
        report["text"] = text_report(texts, records)
    return DetectorResult(detector.name, scores, report, threshold, texts)


def degraded_copies(records: Sequence[Record], spec: str, root: str | Path) -> list[Record]:
    """The records with every image passed through a GenImage degradation, written losslessly
    (PNG) under `root/spec/` so that any detector reads them like the originals."""
    transform = get_degradation(spec)
    out_dir = Path(root) / spec
    out_dir.mkdir(parents=True, exist_ok=True)
    out = []
    for i, r in enumerate(records):
        p = out_dir / f"{i:06d}.png"
        transform(open_image(r.path)).save(p)
        out.append(replace(r, path=p))
    return out


def degradation_sweep(detector, records: Sequence[Record], specs: Sequence[str], threshold: float,
                      workdir: str | Path | None = None) -> dict[str, dict]:
    """spec -> score_report under that degradation (same threshold as the clean run)."""
    out = {}
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        for spec in specs:
            recs = degraded_copies(records, spec, tmp)
            scores = np.asarray(detector.predict([str(r.path) for r in recs]), dtype=np.float64)
            out[spec] = score_report(scores, recs, threshold)
    return out


def fmt(x) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:.1f}"
