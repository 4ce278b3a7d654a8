"""Baseline detectors on the same data as GenDet.

- `unigendet train linear-probe`: UnivFD (Ojha et al.) - frozen backbone features, one linear layer,
  binary cross-entropy (features from the same FeatureCache as GenDet).
- `unigendet train cnn`: CNNDetection (Wang et al.) - the ImageNet CNN (EfficientNet-Lite0 here,
  ResNet-50 there) fine-tuned end to end with a 1-logit head, with blur (p 0.5, sigma U(0, 3)) and JPEG
  (p 0.5, quality U(30, 100)) augmentation, random crop and horizontal flip. Resolution: the shorter
  side resized to `load_size` (128, the built-in corpus size) and a 112 px crop (random in training,
  central at test), not the paper's 224 from 256: on 2 CPU cores that trains ~400 images x 3 epochs
  in a few minutes.

Both output a fake logit: p_fake = sigmoid(logit); the BCE target is 1 for fake (label 0).
"""

from __future__ import annotations

import dataclasses
import random
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from unigendet.backbones import Preprocess
from unigendet.data.degrade import RandomBlurJPEG
from unigendet.data.imageio import open_image
from unigendet.data.readers import read_source
from unigendet.detectors import CNNImageDetector, LinearProbeDetector, cnn_from_backbone
from unigendet.labels import fake_target
from unigendet.metrics import detection_metrics
from unigendet.models.probes import LinearProbe

from .config import FeatureStageConfig
from .epochs import run_epoch, seed_everything
from .features import cached_features, evaluate, records_by_split
from .log import RunLogger
from .stages import LocalStageConfig, StageResult, register_stage, split_metrics

# --- linear probe (UnivFD) ----------------------------------------------------------------------


@dataclass(frozen=True)
class LinearProbeConfig(FeatureStageConfig):
    """UnivFD linear probe: one linear layer with BCE on frozen backbone features."""

    out: str = "runs/linear-probe"
    epochs: int = 100
    batch_size: int = 64
    lr: float = 1e-3  # UnivFD: Adam 1e-4 on 720K images; raised for ~400
    weight_decay: float = 0.0


def fit_linear_probe(cfg: LinearProbeConfig, features: torch.Tensor, labels: torch.Tensor,
                     log=None) -> tuple[LinearProbe, list[float]]:
    """Train the probe on features (N, D); returns it (eval mode) and the per-epoch mean BCE."""
    log = log or (lambda **row: None)
    gen = seed_everything(cfg.seed)
    model = LinearProbe(features.shape[1]).to(cfg.device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    x, t = features.to(cfg.device), fake_target(labels).to(cfg.device)
    curve = []
    for epoch in range(cfg.epochs):
        curve.append(run_epoch(model, opt, len(x), cfg.batch_size, gen,
                               lambda i: F.binary_cross_entropy_with_logits(model(x[i]), t[i])))
        log(phase="linear-probe", epoch=epoch, loss=curve[-1])
    return model.eval(), curve


@register_stage("linear-probe", LinearProbeConfig)
def run_linear_probe(cfg: LinearProbeConfig) -> StageResult:
    t0 = time.time()
    data, feature_dim = cached_features(cfg.data, cfg.backbone, cfg.backbone_path, cfg.cache, cfg.device)
    x, y, _ = data["train"]
    log = RunLogger(cfg.out, progress=False, fresh=True, tensorboard=False)
    try:
        model, curve = fit_linear_probe(cfg, x, y, log)
        with torch.no_grad():
            metrics = evaluate(lambda f: torch.sigmoid(model(f.to(cfg.device))).cpu(), data)
        log(phase="eval", **{f"{s}_{k}": v for s, m in metrics.items() for k, v in m.items()})
    finally:
        log.close()
    metrics["curves"] = {"linear-probe": curve}
    meta = {"seed": cfg.seed, "seconds": round(time.time() - t0, 2), "train_size": len(y)}
    LinearProbeDetector("linear-probe", model.cpu(), cfg.backbone, cfg.backbone_path).save_pretrained(
        cfg.out, meta=meta, json_files={"metrics.json": metrics}, train=dataclasses.asdict(cfg))
    return StageResult.of_run(cfg.out, split_metrics(metrics))


# --- CNN fine-tuning (CNNDetection) -------------------------------------------------------------


@dataclass(frozen=True)
class CNNConfig(LocalStageConfig):
    """CNNDetection: fine-tune EfficientNet-Lite0 + a binary head with blur/JPEG augmentation."""

    out: str = "runs/cnn"
    backbone: str = "efficientnet-lite0"
    backbone_path: str | None = None
    load_size: int = 128  # shorter side resized to this
    crop: int = 112  # random crop in training, centre crop at test
    epochs: int = 3
    batch_size: int = 32
    lr: float = 1e-4  # CNNDetection: Adam 1e-4
    blur_prob: float = 0.5
    blur_sigma_max: float = 3.0
    jpeg_prob: float = 0.5
    jpeg_quality_min: int = 30
    flip: bool = True


class TrainTransform:
    """PIL image -> tensor: blur/JPEG (CNNDetection), resize shorter side, random crop, random flip, normalise."""

    def __init__(self, cfg: CNNConfig, eval_pre: Preprocess, rng: random.Random):
        self.cfg, self.rng = cfg, rng
        self.resize = dataclasses.replace(eval_pre, crop=None)  # shorter side = load_size, normalised
        self.degrade = RandomBlurJPEG(p_blur=cfg.blur_prob, sigma=(0.0, cfg.blur_sigma_max), p_jpeg=cfg.jpeg_prob,
                                      quality=(cfg.jpeg_quality_min, 100), rng=rng)

    def __call__(self, img: Image.Image) -> torch.Tensor:
        x = self.resize(self.degrade(img))
        _, h, w = x.shape
        c = self.cfg.crop
        if h < c or w < c:
            raise ValueError(f"image {w}x{h} after resizing is smaller than the {c}px crop")
        top, left = self.rng.randint(0, h - c), self.rng.randint(0, w - c)
        x = x[:, top : top + c, left : left + c]
        if self.cfg.flip and self.rng.random() < 0.5:
            x = x.flip(-1)
        return x.contiguous()


def fit_cnn(cfg: CNNConfig, paths: list[Path], labels: torch.Tensor, log=None):
    """Fine-tune on image files; returns (CNNImageDetector in eval mode, per-epoch mean BCE)."""
    log = log or (lambda **row: None)
    gen = seed_everything(cfg.seed)
    rng = random.Random(cfg.seed)
    model, backbone_pre = cnn_from_backbone(cfg.backbone, cfg.backbone_path)
    model.to(cfg.device)
    pre = Preprocess(size=cfg.load_size, crop=cfg.crop, mean=backbone_pre.mean, std=backbone_pre.std,
                     interpolation=backbone_pre.interpolation)
    transform = TrainTransform(cfg, pre, rng)
    images = [open_image(p) for p in paths]  # small sets: decode once
    target = fake_target(labels)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    curve = []
    for epoch in range(cfg.epochs):
        def step_loss(idx: torch.Tensor) -> torch.Tensor:
            x = torch.stack([transform(images[i]) for i in idx.tolist()]).to(cfg.device)
            return F.binary_cross_entropy_with_logits(model(x), target[idx].to(cfg.device))

        curve.append(run_epoch(model, opt, len(images), cfg.batch_size, gen, step_loss))
        log(phase="cnn-epoch", epoch=epoch, loss=curve[-1])
    return CNNImageDetector("cnn", model.eval(), pre, cfg.device, backbone=cfg.backbone), curve


@register_stage("cnn", CNNConfig)
def run_cnn(cfg: CNNConfig) -> StageResult:
    t0 = time.time()
    splits = records_by_split(read_source(cfg.data), cfg.data)
    train = splits["train"]
    log = RunLogger(cfg.out, progress=False, fresh=True, tensorboard=False)
    try:
        detector, curve = fit_cnn(cfg, [r.path for r in train], torch.tensor([r.label for r in train]), log)
        metrics = {}
        for name in ("train", "val"):
            recs = splits.get(name, [])
            if recs:
                p = detector.predict([r.path for r in recs])
                metrics[name] = detection_metrics(p, np.array([r.label for r in recs]))
        log(phase="eval", **{f"{s}_{k}": v for s, m in metrics.items() for k, v in m.items()})
    finally:
        log.close()
    metrics["curves"] = {"cnn": curve}
    meta = {"seed": cfg.seed, "seconds": round(time.time() - t0, 2), "train_size": len(train)}
    detector.model.cpu()
    detector.save_pretrained(cfg.out, meta=meta, json_files={"metrics.json": metrics}, train=dataclasses.asdict(cfg))
    return StageResult.of_run(cfg.out, split_metrics(metrics))



