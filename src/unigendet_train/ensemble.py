"""`unigendet train ensemble --members RUN [RUN ...]`: stack trained detectors with one logistic
regression fitted on a validation split (unigendet.ensemble), which also calibrates them."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np

from unigendet.data.readers import read_source
from unigendet.data.records import photo_half
from unigendet.detectors import load_detector
from unigendet.ensemble import EnsembleDetector, fit_stacking, logit, member_reference
from unigendet.evaluation.detection import score_report
from unigendet.prompts import FAKE

from .artifacts import save_module_checkpoint
from .stages import register_stage


@dataclass(frozen=True)
class EnsembleConfig:
    """Logistic stacking of trained detectors on a validation split."""

    members: tuple[str, ...] = ()
    data: str = "runs/data"
    split: str = "val"
    half: str = "all"  # a | b | all: fit on one half of the split's photos (select models on the other)
    out: str = "runs/ensemble"
    cache: str | None = "runs/features"
    l2: float = 1e-2
    name: str = "ensemble"
    device: str = "cpu"


@register_stage("ensemble", EnsembleConfig)
def run_ensemble(cfg: EnsembleConfig) -> dict:
    if len(cfg.members) < 1:
        raise ValueError("--members needs at least one run directory")
    t0 = time.time()
    records = photo_half([r for r in read_source(cfg.data) if r.split == cfg.split], cfg.half)
    if not records:
        raise ValueError(f"{cfg.data}: no records in split {cfg.split!r}")
    members = [load_detector(m, cfg.device) for m in cfg.members]
    paths = [r.path for r in records]
    probs = np.stack([m.predict(paths, cfg.cache) for m in members], axis=1)
    is_fake = np.array([r.label == FAKE for r in records], dtype=np.float64)
    weights, bias = fit_stacking(logit(probs), is_fake, cfg.l2)
    ensemble = EnsembleDetector(cfg.name, members, weights, bias)
    metrics = {"members": {m.name: score_report(probs[:, i], records)["mean"] for i, m in enumerate(members)},
               "ensemble": score_report(ensemble.combine(probs), records)["mean"]}
    config_json = {"kind": "ensemble", "name": cfg.name, "weights": weights.tolist(), "bias": bias,
                   "members": [member_reference(m, cfg.out) for m in cfg.members], "train": dataclasses.asdict(cfg)}
    save_module_checkpoint(cfg.out, {}, config_json, {"seconds": round(time.time() - t0, 2)},
                           {"metrics.json": metrics})
    return {"out": cfg.out, "weights": weights.tolist(), "bias": bias,
            f"{cfg.split}_mean_auc": metrics["ensemble"]["auc"]}
