"""`unigendet train recon`: the small convolutional autoencoder trained on the train split's reals (or
TAEF2 from a local folder, not trained); its reconstruction error is calibrated on the val reals (the
detector kind "recon", `unigendet.detectors.recon`). With `--fake-if auto` the side (high or low error =
fake) is the one with the better mean per-generator AUC on the val split - the only use of fakes, and
only of validation fakes."""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np
import torch

from unigendet.backbones import native_crop
from unigendet.codecs.base import CODECS
from unigendet.codecs.fit import train_autoencoder
from unigendet.data.imageio import open_image
from unigendet.data.readers import read_source
from unigendet.detectors import ReconDetector
from unigendet.detectors.recon import build_recon_codec
from unigendet.evaluation.detection import score_report
from unigendet.labels import REAL

from .epochs import seed_everything
from .features import records_by_split
from .stages import LocalStageConfig, StageResult, register_stage


@dataclass(frozen=True)
class ReconConfig(LocalStageConfig):
    """Reconstruction error of an autoencoder of real images (DIRE / AEROBLADE style)."""

    out: str = "runs/recon"
    codec: str = "conv-vae"  # or "taef2" (pretrained, from codec_path)
    codec_path: str | None = None
    channels: int = 16
    downsample: int = 4
    width: int = 32
    steps: int = 600
    side: int = 128  # native-resolution centre crop scored
    fake_if: str = "auto"  # high | low | auto (chosen on val)
    quantile: float = 0.95


def _codec_entry(cfg: ReconConfig) -> dict:
    """How the run directory names its codec: a pretrained one by its folder, one trained here by its shape."""
    if cfg.codec not in CODECS:
        raise ValueError(f"unknown codec {cfg.codec!r}; available: {sorted(CODECS)}")
    if CODECS[cfg.codec].pretrained:
        if not cfg.codec_path:
            raise ValueError(f"--codec {cfg.codec} needs --codec-path (the folder with its weights)")
        return {"name": cfg.codec, "path": cfg.codec_path}
    return {"name": cfg.codec, "channels": cfg.channels, "downsample": cfg.downsample, "width": cfg.width,
            "upsample": "nearest"}


@register_stage("recon", ReconConfig)
def run_recon(cfg: ReconConfig) -> StageResult:
    # Setup: the codec, trained on the train split's reals when it is ours
    t0 = time.time()
    if cfg.fake_if not in ("high", "low", "auto"):
        raise ValueError(f"fake_if must be high, low or auto, not {cfg.fake_if!r}")
    splits = records_by_split(read_source(cfg.data), cfg.data)
    if "val" not in splits:
        raise ValueError(f"{cfg.data}: the reconstruction score is calibrated on a 'val' split")
    entry = _codec_entry(cfg)
    seed_everything(cfg.seed)
    codec = build_recon_codec(entry, None)  # pretrained, or untrained when it is ours
    if not codec.pretrained:
        reals = torch.stack([native_crop(open_image(r.path), cfg.side) * 2 - 1
                             for r in splits["train"] if r.label == REAL])
        train_autoencoder(codec, reals, steps=cfg.steps, seed=cfg.seed)

    # Calibrate on val reals, pick the side on val
    val = splits["val"]
    probe = ReconDetector("recon", codec, cfg.side, "high", 0.0, 1.0, cfg.device)
    err = probe.errors([open_image(r.path) for r in val])
    real_err = err[np.array([r.label == REAL for r in val])]
    aucs = {side: score_report(err if side == "high" else -err, val)["mean"]["auc"] for side in ("high", "low")}
    side = max(aucs, key=aucs.get) if cfg.fake_if == "auto" else cfg.fake_if
    q = cfg.quantile if side == "high" else 1 - cfg.quantile
    calib = {"loc": float(np.quantile(real_err, q)), "scale": float(real_err.std() + 1e-9)}

    # Save
    detector = ReconDetector(f"recon-{cfg.codec}", codec.cpu(), cfg.side, side, calib["loc"], calib["scale"],
                             codec_entry=entry)
    detector.save_pretrained(cfg.out, meta={"seconds": round(time.time() - t0, 2)},
                             json_files={"metrics.json": {"val_mean_auc_by_side": aucs}},
                             train=dataclasses.asdict(cfg))
    return StageResult.of_run(cfg.out, {"fake_if": side, "val_mean_auc": aucs[side]})
