"""Training configurations (frozen dataclasses): the unified model's stages (each its own class over
the fields they share), and the common fields of the stages on frozen-backbone features."""

from __future__ import annotations

from dataclasses import dataclass

from .stages import LocalStageConfig, StageConfig


@dataclass(frozen=True)
class UnifiedConfig(StageConfig):
    """The fields every stage on the unified model shares; each stage's class sets its own defaults."""

    preset: str = "tiny"  # model preset (UniGenDet stages)
    det_data: str | None = None  # detection samples from this dataset instead (its train and val splits)
    out: str = "runs/gduf"
    init: str | None = None  # checkpoint to start from (DIGA: the GDUF run)
    codec: str | None = None  # a codec run (`unigendet train codec`) whose weights the model generates through
    understanding: str | None = None  # a preset whose understanding path (encoder, crop side) replaces init's
    explains: str | None = None  # GDUF, frozen encoder: a detector whose verdict and reasons the answers state
    evidence_prompt: bool = False  # with explains: the question gives that detector's verdict and evidence
    views: int = 2  # frozen encoder: views per training image, made once (see unigendet_train.tokens)
    cache: str = "runs/token-cache"  # frozen encoder: where the views' tokens are kept between runs
    ship: str | None = None  # also export the final EMA model, codec and a model card to this folder
    steps: int = 300
    det_per_step: int = 10  # detection samples per step (global); DIGA, frozen encoder: aligned photo views
    t2i_per_step: int = 2  # text-to-image samples per step (global); paper ratio 5:1
    accum: int = 1  # micro-batches per step
    lr: float = 1e-3
    warmup: int = 20
    schedule: str = "constant"
    betas: tuple[float, float] = (0.9, 0.95)
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.99
    freeze_vit: bool = False  # keep the understanding ViT fixed (as BAGEL's --freeze_vit)
    ce_weight: float = 1.0  # GDUF: weight of the answer CE
    cls_weight: float = 0.2  # GDUF: weight of the cls-head CE
    align_weight: float = 0.5  # DIGA: weight of 1 - cos
    diga_layer: int | None = None  # None: the preset's (about 30% depth)
    smsa: bool | None = None  # detection with the clean latents; False: latent-free ablation; None: as the model
    drifting_teacher: bool = False  # DIGA: teacher latents through the live generation expert (public code)
    caption_dropout: float = 0.1
    time_shift: float = 1.0
    eval_every: int = 100
    ckpt_every: int = 50
    keep_checkpoints: int = 2
    log_every: int = 10
    bf16: bool | None = None  # None: on CUDA when supported
    parallel: str = "ddp"  # ddp | fsdp (per-layer sharding) when launched on several ranks
    activation_checkpointing: bool = False  # recompute decoder layers in the backward pass
    resume: bool = False
    progress: bool = True
    report: bool = True  # measure the final EMA model on the validation split, written answers included


@dataclass(frozen=True)
class GDUFConfig(UnifiedConfig):
    """GDUF (stage 1): detection, its written explanation and text-to-image generation, trained jointly."""


@dataclass(frozen=True)
class T2IConfig(UnifiedConfig):
    """Text-to-image pre-training of the generation side before GDUF (as BAGEL is pre-trained on
    generation before it is fine-tuned): caption -> latent samples only, a cosine schedule and a
    slow EMA, whose weights sample."""

    out: str = "runs/t2i"
    steps: int = 800
    det_per_step: int = 0
    t2i_per_step: int = 16
    warmup: int = 50
    schedule: str = "cosine"
    ema_decay: float = 0.998
    eval_every: int = 500
    ckpt_every: int = 500


@dataclass(frozen=True)
class DIGAConfig(UnifiedConfig):
    """DIGA defaults: text-to-image samples only, starting from a GDUF run (`--init`); with a frozen
    encoder, `det_per_step` photo views of `det_data` carry the alignment instead."""

    out: str = "runs/diga"
    steps: int = 150
    det_per_step: int = 0
    t2i_per_step: int = 8
    lr: float = 5e-4


@dataclass(frozen=True)
class FeatureStageConfig(LocalStageConfig):
    """Fields common to the stages that train a head on cached frozen-backbone features."""

    backbone: str = "efficientnet-lite0"
    backbone_path: str | None = None
    cache: str = "runs/features"  # FeatureCache root
