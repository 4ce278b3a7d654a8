"""`unigendet train npr`: the NPR residual network (unigendet.models.npr) on image files.

Training sees random crops at native resolution (offsets on the factor grid, so the upsampling
phase of every crop matches the whole image's), optional horizontal flips and CNNDetection's
blur/JPEG augmentation; nothing is ever resized. After each epoch the whole validation images are
scored and the epoch with the best mean per-generator validation AUC is kept (model selection on
the built-in validation split only).
"""

from __future__ import annotations

import copy
import dataclasses
import random
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from unigendet.data.degrade import RandomBlurJPEG
from unigendet.data.imageio import open_image
from unigendet.data.readers import read_source
from unigendet.detectors import NPRDetector
from unigendet.evaluation.detection import score_report
from unigendet.images import pil_to_tensor
from unigendet.labels import fake_target
from unigendet.models.npr import NPRConfig, NPRNet

from .epochs import run_epoch, seed_everything
from .features import records_by_split
from .log import RunLogger
from .stages import LocalStageConfig, StageResult, register_stage


@dataclass(frozen=True)
class NPRTrainConfig(LocalStageConfig):
    """NPR residual network trained at native resolution on the corpus's train split."""

    out: str = "runs/npr"
    width: int = 32
    stages: int = 3
    factor: int = 2
    crop: int = 64  # training crop side (a multiple of factor)
    epochs: int = 30
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 1e-4
    flip: bool = True
    blur_prob: float = 0.0
    jpeg_prob: float = 0.0
    max_side: int = 512  # inference: centre crop to at most this per side


class NativeCrops:
    """Random factor-aligned crops (and flips, blur/JPEG) of decoded images, never resized."""

    def __init__(self, cfg: NPRTrainConfig, rng: random.Random):
        self.cfg, self.rng = cfg, rng
        self.degrade = (RandomBlurJPEG(p_blur=cfg.blur_prob, p_jpeg=cfg.jpeg_prob, rng=rng)
                        if cfg.blur_prob or cfg.jpeg_prob else None)

    def __call__(self, img) -> torch.Tensor:
        c, f = self.cfg.crop, self.cfg.factor
        if self.degrade is not None:
            img = self.degrade(img)
        x = pil_to_tensor(img)
        _, h, w = x.shape
        if h < c or w < c:
            raise ValueError(f"image {w}x{h} is smaller than the {c}px training crop")
        top = self.rng.randrange(0, (h - c) // f + 1) * f
        left = self.rng.randrange(0, (w - c) // f + 1) * f
        x = x[:, top : top + c, left : left + c]
        if self.cfg.flip and self.rng.random() < 0.5:
            x = x.flip(-1)
        return x.contiguous()


def val_auc(detector: NPRDetector, records) -> float:
    return score_report(detector.predict([r.path for r in records]), records)["mean"]["auc"]


@register_stage("npr", NPRTrainConfig)
def run_npr(cfg: NPRTrainConfig) -> StageResult:
    # Setup
    if cfg.crop % cfg.factor:
        raise ValueError(f"crop {cfg.crop} is not a multiple of factor {cfg.factor}")
    t0 = time.time()
    splits = records_by_split(read_source(cfg.data), cfg.data)
    train, val = splits["train"], splits.get("val", [])
    gen = seed_everything(cfg.seed)
    crops = NativeCrops(cfg, random.Random(cfg.seed))
    images = [open_image(r.path) for r in train]
    target = fake_target(torch.tensor([r.label for r in train]))
    model = NPRNet(NPRConfig(width=cfg.width, stages=cfg.stages, factor=cfg.factor)).to(cfg.device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    detector = NPRDetector("npr", model, cfg.max_side, cfg.device)

    # Train, keeping the epoch with the best validation AUC
    best = (-1.0, -1, copy.deepcopy(model.state_dict()))
    curve, aucs = [], []
    log = RunLogger(cfg.out, progress=False, fresh=True, tensorboard=False)
    try:
        for epoch in range(cfg.epochs):
            model.train()

            def step_loss(idx: torch.Tensor) -> torch.Tensor:
                x = torch.stack([crops(images[i]) for i in idx.tolist()]).to(cfg.device)
                return F.binary_cross_entropy_with_logits(model(x), target[idx].to(cfg.device))

            curve.append(run_epoch(model, opt, len(images), cfg.batch_size, gen, step_loss))
            model.eval()
            aucs.append(val_auc(detector, val) if val else float("nan"))
            log(phase="npr-epoch", epoch=epoch, loss=curve[-1], val_auc=aucs[-1])
            if not val or aucs[-1] > best[0]:
                best = (aucs[-1], epoch, copy.deepcopy(model.state_dict()))
    finally:
        log.close()
    model.load_state_dict(best[2])
    model.eval()

    # Save
    metrics = {"curves": {"npr": curve, "val_auc": aucs}, "best_epoch": best[1], "val_mean_auc": best[0]}
    meta = {"seed": cfg.seed, "seconds": round(time.time() - t0, 2), "train_size": len(train)}
    NPRDetector("npr", model.cpu(), cfg.max_side).save_pretrained(
        cfg.out, meta=meta, json_files={"metrics.json": metrics}, train=dataclasses.asdict(cfg))
    return StageResult.of_run(cfg.out, {"best_epoch": best[1], "val_mean_auc": best[0]})
