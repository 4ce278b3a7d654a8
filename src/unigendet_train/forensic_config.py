"""The in-the-wild detector's recipe: one frozen config (`unigendet train forensic`'s options),
composed of the augmented training view (`data.augment.ViewConfig`), the head, thresholds and what
inference reads, and the untrained detector it describes."""

from __future__ import annotations

from dataclasses import dataclass

from unigendet.data.augment import ViewConfig
from unigendet.detectors import ForensicDetector
from unigendet.models.probes import CalibratedLinear

from .stages import LocalStageConfig

CHUNK = 32  # views made and featurised together (per rank)
CIRCULATED = "circulate"  # the protocol of images as they circulate on the web (both classes alike)


@dataclass(frozen=True)
class ForensicConfig(LocalStageConfig):
    """In-the-wild detector: forensic features of native crops, calibrated linear head."""

    data: str = "../shared/data/wild-train"  # the pool: train split to fit, val split to calibrate
    extra: str = ""  # a second source whose train split joins training (e.g. runs/data, the built-in corpus)
    extra_weight: float = 1.0  # an extra image's weight relative to a pool image's (classes stay balanced)
    out: str = "runs/forensic"
    # comma-separated; features are concatenated
    backbones: str = "efficientnet-lite0-taps,efficientnet-lite0-taps-hp,residual-stats"
    backbone_path: str | None = None  # EfficientNet-Lite0 weights file (default: the pip package's)
    views: int = 2  # augmented views per training image
    side: int = 256  # view crop side
    jpeg_prob: float = 0.5  # class-aligned: the same for reals and fakes
    blur_prob: float = 0.1
    resize_prob: float = 0.0
    circulate_prob: float = 0.0  # views circulated as web images are (downscale 0.4-0.9x, JPEG 60-95) first
    flip: bool = True
    rot90: bool = True
    jitter: float = 0.1
    mask_prob: float = 0.0
    c: float = 0.01  # inverse L2 strength of the logistic regression
    weigh_sources: bool = False  # rows weigh 1 / sqrt(their source's size within their class) in the head's fit
    tune_epochs: int = 0  # > 0: then fine-tune the networks end to end with the head (unigendet_train.tune)
    tune_lr: float = 1e-4  # tuning: the networks' learning rate (the head's is 10x)
    tune_batch: int = 16
    max_fpr: float = 0.0  # > 0: raise the threshold until at most this share of calibration photos, as they
    # are and circulated, are called fake (0: the balanced-accuracy threshold)
    threshold_by: str = "val"  # val: max_fpr on the val photos; source: also on every training source's photos
    # as scored by a head fitted without that source (cross-fitted, see crossfit)
    crossfit: int = 5  # source groups of the cross-fit
    abstain: float = 0.0  # > 0: say `uncertain` instead of `fake` for an image more novel than this share of
    # the training images scored out of their own source (0: never abstain on novelty)
    crops: int = 5  # native crops scored per image at inference
    crop_choice: str = "grid"  # inference: grid (centre and quadrants) | evidence (the most textured of ten places)
    whole_weight: float = 0.0  # inference: the resized whole image's weight in a large image's logit
    cache: str = "runs/forensic-cache"
    name: str = "forensic"
    bench: str = ""  # results.json of bench/wild_detection.py to quote in the model card
    folds: str = ""  # comma-separated folds.json of `unigendet eval folds` runs of this recipe, quoted in the card

    def augments(self) -> bool:
        """Whether training views differ from the plain centre crop."""
        v = self.view()
        return v != ViewConfig(side=v.side, jpeg_prob=0.0, blur_prob=0.0, resize_prob=0.0, circulate_prob=0.0,
                               flip=False, rot90=False, jitter=0.0, mask_prob=0.0)

    def view(self) -> ViewConfig:
        return ViewConfig(side=self.side, jpeg_prob=self.jpeg_prob, blur_prob=self.blur_prob,
                          resize_prob=self.resize_prob, circulate_prob=self.circulate_prob, flip=self.flip,
                          rot90=self.rot90, jitter=self.jitter, mask_prob=self.mask_prob)


def backbone_names(cfg: ForensicConfig) -> list[str]:
    names = [b.strip() for b in cfg.backbones.split(",") if b.strip()]
    if not names:
        raise ValueError("--backbones names no backbone")
    return names


def untrained(cfg: ForensicConfig, feature_dim: int = 1) -> ForensicDetector:
    return ForensicDetector(cfg.name, CalibratedLinear(feature_dim), backbone_names(cfg), cfg.crops,
                            backbone_path=cfg.backbone_path, device=cfg.device, crop_choice=cfg.crop_choice,
                            whole_weight=cfg.whole_weight)
