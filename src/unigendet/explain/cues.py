"""What an explanation may claim about an image: low-level cues measured on its pixels.

Three numbers, each a log ratio or log energy computed at native resolution on the central crop
(at most `SIDE` px, never resampled):

- `periodic`: the strongest sign of a short pixel period (see `_periodic`): spectral peaks at the
  periods upsampling leaves (2, 4, 8 px), or pixel phases whose differences differ - the
  checkerboard of transposed convolutions, pixel repetition, linear interpolation;
- `grid`: how much larger the luminance steps are on the strongest of the eight 8-px column or
  row phases than on the next strongest - the block grid of JPEG compression (or of a patch-wise
  decoder);
- `texture`: log mean energy of the high-pass residual - low for smooth, denoised surfaces, high
  for sensor noise and fine detail.

A value means little alone; `CueScale` places it among typical photographs (quantiles fitted on
real photos), and explanations speak in those levels: "low", "typical", "high".
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass

import numpy as np
import torch
from PIL import Image

from ..backbones.lowlevel import PERIODS
from ..images import centre_crop, high_pass, pil_to_tensor

SIDE = 256
CUES = ("periodic", "grid", "texture")
LEVELS = ("low", "typical", "high")
_EPS = 1e-8


@dataclass(frozen=True)
class Cues:
    periodic: float
    grid: float
    texture: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _periodic(gray: torch.Tensor) -> torch.Tensor:
    """(B, H, W) in [0, 1] -> (B,): the strongest sign of a 2- or 4-pixel period, the larger of
    - spectral peaks: log ratio of the high-pass residual's power on the spectral line at 1/period
      cycles per pixel (a whole column or row of the 2-D spectrum) to its four neighbouring lines
      (the checkerboard of transposed convolutions);
    - phase imbalance: log of the largest over the smallest mean |first| or |second| difference
      among the pixel phases modulo the period (pixel repetition leaves zero first differences on
      one phase, linear interpolation zero second differences)."""
    res = high_pass(gray[:, None])[:, 0]
    power = torch.fft.fft2(res).abs().square()
    out = []
    for lines in (power.mean(dim=1), power.mean(dim=2)):  # per column frequency, per row frequency
        n = lines.shape[1]
        for period in PERIODS:
            k = n // period
            near = lines[:, [(k + d) % n for d in (-2, -1, 1, 2)]].mean(dim=1)
            out.append(torch.log((lines[:, k] + _EPS) / (near + _EPS)))
    for g in (gray, gray.transpose(1, 2)):
        d1 = g[:, :, 1:] - g[:, :, :-1]
        for d in (d1, d1[:, :, 1:] - d1[:, :, :-1]):
            for period in (2, 4):
                n = d.shape[2] // period * period
                phases = d[:, :, :n].abs().reshape(d.shape[0], d.shape[1], -1, period).mean(dim=(1, 2))
                out.append(torch.log((phases.max(dim=1).values + _EPS) / (phases.min(dim=1).values + _EPS)))
    return torch.stack(out, 1).max(dim=1).values


def _grid(gray: torch.Tensor) -> torch.Tensor:
    """(B, H, W) in [0, 1] -> (B,): log of the largest over the second largest mean |step| among
    the eight 8-px phases, the stronger of columns and rows. One dominant phase is a block grid;
    steps that are equal on every phase, or on every other one (pixel repetition), are not."""
    out = []
    for g in (gray, gray.transpose(1, 2)):  # steps along columns, then along rows
        d = (g[:, :, 1:] - g[:, :, :-1]).abs()
        n = d.shape[2] // 8 * 8
        phases = d[:, :, :n].reshape(d.shape[0], d.shape[1], -1, 8).mean(dim=(1, 2))  # (B, 8)
        top = phases.topk(2, dim=1).values
        out.append(torch.log((top[:, 0] + _EPS) / (top[:, 1] + _EPS)))
    return torch.stack(out, 1).max(dim=1).values


@torch.no_grad()
def measure_tensor(x: torch.Tensor) -> list[Cues]:
    """(B, 3, H, W) in [-1, 1], H and W at least 16 -> one `Cues` per image."""
    if x.ndim != 4 or x.shape[1] != 3 or min(x.shape[-2:]) < 16:
        raise ValueError(f"measure_tensor needs (B, 3, H >= 16, W >= 16), got {tuple(x.shape)}")
    x = (x.float() + 1) / 2
    res = high_pass(x).mean(dim=1)
    periodic = _periodic(x.mean(dim=1))
    grid = _grid(x.mean(dim=1))
    texture = torch.log(res.square().mean(dim=(1, 2)) + _EPS)
    return [Cues(float(p), float(g), float(t)) for p, g, t in zip(periodic, grid, texture, strict=True)]


def central_crop(image: Image.Image, side: int = SIDE) -> torch.Tensor:
    """The central side x side native crop (the whole image when smaller), as (3, h, w) in [-1, 1]."""
    return pil_to_tensor(centre_crop(image, side))


def measure(images: Sequence[Image.Image]) -> list[Cues]:
    """Cues of each image's central native crop (images smaller than 16 px are refused)."""
    return [measure_tensor(central_crop(im)[None])[0] for im in images]


@dataclass(frozen=True)
class CueScale:
    """Where typical photographs lie: per cue, the (low, high) quantiles of real photos. A value
    below `low` is level "low", above `high` "high", else "typical"."""

    bounds: dict[str, tuple[float, float]]
    quantiles: tuple[float, float] = (0.1, 0.9)
    fitted_on: str = ""

    @classmethod
    def fit(cls, photos: Iterable[Cues], quantiles: tuple[float, float] = (0.1, 0.9), fitted_on: str = "") -> CueScale:
        rows = [c.as_dict() for c in photos]
        if len(rows) < 10:
            raise ValueError(f"a cue scale needs at least 10 photos, got {len(rows)}")
        bounds = {k: tuple(float(np.quantile([r[k] for r in rows], q)) for q in quantiles) for k in CUES}
        return cls(bounds, quantiles, fitted_on)

    def level(self, cue: str, value: float) -> str:
        low, high = self.bounds[cue]
        return "low" if value < low else "high" if value > high else "typical"

    def levels(self, cues: Cues) -> dict[str, str]:
        return {k: self.level(k, v) for k, v in cues.as_dict().items()}

    def to_json(self) -> str:
        return json.dumps({"bounds": self.bounds, "quantiles": self.quantiles, "fitted_on": self.fitted_on}, indent=2)

    @classmethod
    def from_json(cls, text: str) -> CueScale:
        d = json.loads(text)
        missing = set(CUES) - set(d.get("bounds", {}))
        if missing:
            raise ValueError(f"cue scale lacks {sorted(missing)}")
        bounds = {k: (float(v[0]), float(v[1])) for k, v in d["bounds"].items()}
        return cls(bounds, tuple(d.get("quantiles", (0.1, 0.9))), d.get("fitted_on", ""))
