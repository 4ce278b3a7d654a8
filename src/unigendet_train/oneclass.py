"""`unigendet train oneclass`: a Gaussian on backbone features of the train split's reals, calibrated on
the val split's reals (the detector kind "oneclass"; its model is `unigendet.models.oneclass`). No fake
is used."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import torch

from unigendet.detectors import OneClassDetector
from unigendet.evaluation.detection import score_report
from unigendet.labels import REAL
from unigendet.models.oneclass import GaussianOneClass

from .config import FeatureStageConfig
from .features import cached_features
from .stages import StageResult, register_stage


def _reals(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return x[y == REAL]


@dataclass(frozen=True)
class OneClassConfig(FeatureStageConfig):
    """One-class Gaussian on frozen backbone features of real images (no fakes used)."""

    out: str = "runs/oneclass"
    backbone: str = "residual-stats"
    shrinkage: float = 0.1
    quantile: float = 0.95  # of held-out real distances, mapped to p_fake 0.5


@register_stage("oneclass", OneClassConfig)
def run_oneclass(cfg: OneClassConfig) -> StageResult:
    t0 = time.time()
    data, dim = cached_features(cfg.data, cfg.backbone, cfg.backbone_path, cfg.cache, cfg.device)
    if "val" not in data:
        raise ValueError(f"{cfg.data}: the one-class model is calibrated on the reals of a 'val' split")
    head = GaussianOneClass(dim).fit(_reals(*data["train"][:2]), cfg.shrinkage)
    head.calibrate(_reals(*data["val"][:2]), cfg.quantile)
    metrics = {s: score_report(head(x).numpy(), recs)["mean"] for s, (x, _, recs) in data.items()}
    meta = {"seconds": round(time.time() - t0, 2), "train_reals": int((data["train"][1] == REAL).sum())}
    OneClassDetector(f"oneclass-{cfg.backbone}", head.float(), cfg.backbone, cfg.backbone_path).save_pretrained(
        cfg.out, meta=meta, json_files={"metrics.json": metrics}, train=dataclasses.asdict(cfg))
    return StageResult.of_run(cfg.out, {"val_mean_auc": metrics["val"]["auc"]})
