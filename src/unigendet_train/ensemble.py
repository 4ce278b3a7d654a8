"""`unigendet train ensemble --members RUN [RUN ...]`: stack trained detectors with one logistic
regression fitted on a validation split (unigendet.detectors.ensemble), which also calibrates them."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np

from unigendet.data.readers import read_source
from unigendet.data.records import photo_half
from unigendet.detectors import EnsembleDetector, load_detector, use_feature_cache
from unigendet.detectors.ensemble import fit_stacking, logit
from unigendet.evaluation.detection import score_report
from unigendet.labels import FAKE

from .stages import LocalStageConfig, StageResult, register_stage


@dataclass(frozen=True)
class EnsembleConfig(LocalStageConfig):
    """Logistic stacking of trained detectors on a validation split."""

    members: tuple[str, ...] = ()
    split: str = "val"
    half: str = "all"  # a | b | all: fit on one half of the split's photos (select models on the other)
    out: str = "runs/ensemble"
    cache: str | None = "runs/features"
    l2: float = 1e-2
    name: str = "ensemble"


@register_stage("ensemble", EnsembleConfig)
def run_ensemble(cfg: EnsembleConfig) -> StageResult:
    if len(cfg.members) < 1:
        raise ValueError("--members needs at least one run directory")
    t0 = time.time()
    records = photo_half([r for r in read_source(cfg.data) if r.split == cfg.split], cfg.half)
    if not records:
        raise ValueError(f"{cfg.data}: no records in split {cfg.split!r}")
    members = [use_feature_cache(load_detector(m, cfg.device), cfg.cache) for m in cfg.members]
    paths = [r.path for r in records]
    probs = np.stack([m.predict(paths) for m in members], axis=1)
    is_fake = np.array([r.label == FAKE for r in records], dtype=np.float64)
    weights, bias = fit_stacking(logit(probs), is_fake, cfg.l2)
    ensemble = EnsembleDetector(cfg.name, members, weights, bias)
    metrics = {"members": {m.name: score_report(probs[:, i], records)["mean"] for i, m in enumerate(members)},
               "ensemble": score_report(ensemble.combine(probs), records)["mean"]}
    ensemble.save_pretrained(cfg.out, meta={"seconds": round(time.time() - t0, 2)},
                             json_files={"metrics.json": metrics}, train=dataclasses.asdict(cfg))
    return StageResult.of_run(cfg.out, {"weights": weights.tolist(), "bias": bias,
                                        f"{cfg.split}_mean_auc": metrics["ensemble"]["auc"]})
