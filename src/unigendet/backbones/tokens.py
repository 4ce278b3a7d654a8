"""The forensic network as a frozen understanding encoder of UniGenDet: one token per tile.

The shipped in-the-wild detector summarises a native 256-px crop by the per-channel mean and std
of tapped EfficientNet-Lite0 layers, for the RGB crop and for its high-pass residual. This
encoder keeps the same statistics per tile of a `grid` x `grid` partition of the crop instead of
over the whole of it, so the model sees where each kind of trace lies; the tokens enter the model
through its connector (see `unigendet.unified.encoders`).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..images import high_pass
from ..unified.encoders import register_encoder
from .base import efficientnet_lite0
from .taps import HIGH_PASS_GAIN, SIDE, EfficientNetTaps

GRID = 4


class ForensicTokens:
    """(B, 3, 256, 256) in [-1, 1] -> (B, grid**2, 2 inputs x 2 stats x tapped channels)."""

    def __init__(self, grid: int = GRID, side: int = SIDE):
        self.grid, self.side = grid, side
        self.nets = {}
        for input in ("rgb", "highpass"):
            full, _ = efficientnet_lite0()
            # freeze(), not eval(): a Backbone ignores train(); batch norm must use its running statistics
            self.nets[input] = EfficientNetTaps(full.net, f"taps-{input}", input=input).freeze()
        self.dim = 2 * self.nets["rgb"].feature_dim

    def _tile_stats(self, net: EfficientNetTaps, x: torch.Tensor) -> torch.Tensor:
        x = high_pass(x) * HIGH_PASS_GAIN if net.input == "highpass" else (x - 0.498) / 0.502
        n = net.net
        x = n._swish(n._bn0(n._conv_stem(x)))
        stats = []
        for i, block in enumerate(n._blocks):
            x = block(x)
            if i in net.taps:
                mean = F.adaptive_avg_pool2d(x, self.grid)
                var = (F.adaptive_avg_pool2d(x.square(), self.grid) - mean.square()).clamp(min=0)
                stats += [mean, var.sqrt()]
        y = torch.cat(stats, dim=1).flatten(2).transpose(1, 2)  # (B, grid**2, channels)
        return torch.sign(y) * torch.log1p(y.abs())

    @torch.no_grad()
    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-2:] != (self.side, self.side):
            raise ValueError(f"the forensic encoder reads {self.side}-px crops, got {tuple(images.shape[-2:])}")
        x = (images.float().cpu() + 1) / 2  # pixels in [0, 1], as the taps backbone reads them
        return torch.cat([self._tile_stats(self.nets[k], x) for k in ("rgb", "highpass")], dim=2)


@register_encoder("forensic")
def forensic_tokens() -> ForensicTokens:
    return ForensicTokens()



