"""Hand-made low-level features of generation traces, registered as the backbone "residual-stats".

No weights and no resampling: the image is centre-cropped at native resolution (128 px) and
described by 49 numbers, each a log energy of some residual (scale-free, so comparable across
images):

- 16: radially averaged power spectrum of the high-pass residual (the spectrum probe's input; GAN
  upsampling lifts the high bands, blur and JPEG lower them);
- 12: spectral peaks at the periods upsampling leaves (2, 4, 8 px) relative to the median power,
  on each axis and the diagonal - the "checkerboard" of transposed convolutions and
  nearest-neighbour upsampling;
- 9: NPR (Tan et al., CVPR 2024): x - up(down(x)) with nearest-neighbour 2x, its energy in the
  three 2x2 phases where it is not zero by construction, relative to their mean, per channel;
- 12: neighbouring-pixel differences: log mean |first| and |second| difference along rows and
  columns and their kurtosis, and the inter-channel residual correlation (demosaicing traces).

Used with every feature head: the spectrum probe is `linear-probe --backbone residual-stats`, and
GenDet and the one-class model run on it like on EfficientNet features.
"""

from __future__ import annotations

import hashlib

import torch

from ..images import high_pass, npr_residual
from .base import NOISE, Backbone, Preprocess, register_backbone

SIDE = 128
RADIAL_BINS = 16
PERIODS = (2, 4, 8)
_EPS = 1e-8


def radial_spectrum(gray_residual: torch.Tensor, bins: int = RADIAL_BINS) -> torch.Tensor:
    """(B, H, W) -> (B, bins): log mean power in rings of normalised frequency 0..0.5, minus the
    image's mean log power (so overall contrast cancels)."""
    b, h, w = gray_residual.shape
    power = torch.fft.fft2(gray_residual).abs().square()
    fy = torch.fft.fftfreq(h).abs()[:, None]
    fx = torch.fft.fftfreq(w).abs()[None, :]
    ring = (torch.sqrt(fy**2 + fx**2) / 0.5 * bins).long().clamp(max=bins - 1).reshape(-1)
    total = torch.zeros(b, bins).index_add_(1, ring, power.reshape(b, -1))
    count = torch.bincount(ring, minlength=bins).clamp(min=1)
    logp = torch.log(total / count + _EPS)
    return logp - logp.mean(dim=1, keepdim=True)


def periodic_peaks(gray_residual: torch.Tensor) -> torch.Tensor:
    """(B, H, W) -> (B, 4 * len(PERIODS)): log power at 1/period cycles per pixel (horizontal,
    vertical, diagonal, and the max of the three) over the median power of the spectrum."""
    b, h, w = gray_residual.shape
    power = torch.fft.fft2(gray_residual).abs().square()
    median = power.reshape(b, -1).median(dim=1).values + _EPS
    feats = []
    for p in PERIODS:
        ky, kx = h // p, w // p
        peaks = torch.stack([power[:, 0, kx], power[:, ky, 0], power[:, ky, kx]], dim=1)
        logr = torch.log(peaks / median[:, None] + _EPS)
        feats += [logr, logr.max(dim=1, keepdim=True).values]
    return torch.cat(feats, dim=1)


def npr_phases(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W), H and W even -> (B, 9): NPR residual energy in the three non-trivial 2x2
    phases per channel, log relative to the channel's mean over them."""
    npr = npr_residual(x, 2)
    phases = torch.stack([npr[:, :, i::2, j::2].square().mean(dim=(2, 3)) for i in (0, 1) for j in (0, 1)], dim=2)
    logp = torch.log(phases + _EPS)  # (B, 3, 4); phase (0, 0) is zero by construction
    return (logp[:, :, 1:] - logp[:, :, 1:].mean(dim=2, keepdim=True)).reshape(x.shape[0], -1).contiguous()


def _kurtosis(d: torch.Tensor) -> torch.Tensor:
    d = d.reshape(d.shape[0], -1)
    d = d - d.mean(dim=1, keepdim=True)
    return torch.log((d**4).mean(dim=1) / (d.square().mean(dim=1).square() + _EPS) + _EPS)


def neighbour_stats(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) -> (B, 12): statistics of differences between neighbouring pixels."""
    g = x.mean(dim=1)
    d1x, d1y = g[:, :, 1:] - g[:, :, :-1], g[:, 1:, :] - g[:, :-1, :]
    d2x, d2y = d1x[:, :, 1:] - d1x[:, :, :-1], d1y[:, 1:, :] - d1y[:, :-1, :]
    diffs = (d1x, d1y, d2x, d2y)
    energy = [torch.log(d.abs().mean(dim=(1, 2)) + _EPS) for d in diffs]
    base = torch.stack(energy, 1).mean(dim=1, keepdim=True)
    r = high_pass(x).reshape(x.shape[0], 3, -1)
    r = r - r.mean(dim=2, keepdim=True)
    r = r / (r.norm(dim=2, keepdim=True) + _EPS)
    corr = torch.stack([(r[:, a] * r[:, c]).sum(dim=1) for a, c in ((0, 1), (1, 2), (0, 2))], dim=1)
    return torch.cat([torch.stack(energy, 1) - base, base, torch.stack([_kurtosis(d) for d in diffs], 1), corr],
                     dim=1)


class ResidualStats(Backbone):
    """(B, 3, H, W) in [0, 1] -> (B, 49) low-level trace statistics (see the module docstring)."""

    VERSION = "residual-stats-v1"

    def __init__(self):
        super().__init__("residual-stats", RADIAL_BINS + 4 * len(PERIODS) + 9 + 12)
        self.register_buffer("_anchor", torch.zeros(()), persistent=False)  # carries .device

    @property
    def device(self) -> torch.device:
        return self._anchor.device

    def fingerprint(self) -> str:
        return hashlib.sha256(self.VERSION.encode()).hexdigest()

    def evidence_groups(self) -> dict[str, list[int]]:
        return {NOISE: list(range(self.feature_dim))}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.float()
        gray_res = high_pass(x).mean(dim=1)
        return torch.cat([radial_spectrum(gray_res), periodic_peaks(gray_res), npr_phases(x), neighbour_stats(x)],
                         dim=1)


@register_backbone("residual-stats")
def residual_stats(path: str | None = None) -> tuple[Backbone, Preprocess]:
    """No weights (`path` must be None); native-resolution centre crop of 128 px, pixels in [0, 1]."""
    if path is not None:
        raise ValueError("residual-stats has no weights to load")
    return ResidualStats(), Preprocess(size=SIDE, crop=SIDE, mean=(0.0,) * 3, std=(1.0,) * 3, resize_mode="none")
