"""Channel statistics of tapped layers of a frozen ImageNet CNN, at native resolution.

A detector that reads the final pooled embedding of an ImageNet network mostly reads content.
The early and middle layers respond to texture, noise and interpolation patterns; summarising
each tapped layer by the mean and standard deviation of every channel keeps those low-level
statistics and discards where things are. The input is the RGB image (TF Lite normalisation),
its high-pass residual (x minus its 3x3 mean, amplified), or its NPR residual (x minus its 2x2
nearest-neighbour down-up copy, amplified: the neighbouring-pixel relationships that
upsampling leaves). The residuals remove most of the content before the first convolution.
Values are compressed with sign(x) * log1p(|x|).

Over the whole map (`grid=None`) the std is the unbiased one; per tile of a grid x grid
partition (UniGenDet's forensic encoder) it is the population std of the tile.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..images import high_pass, npr_residual

TAPS = (1, 2, 4, 7, 10, 14)  # EfficientNet-Lite0's block indices: strides 2, 2, 4, 8, 8, 16 relative to the stem
# the same places in each variant: the first and last block of the stride-2 stage, then the last
# block of each later stage up to the stride-16 one
TAPS_BY_VARIANT = {0: TAPS, 1: (1, 3, 6, 10, 14, 19), 2: (1, 3, 6, 10, 14, 19)}
SIDE = 256  # the native crop side the shipped detector and the forensic encoder read
HIGH_PASS_GAIN = 4.0
INPUTS = ("rgb", "highpass", "npr")


def tapped_width(net: nn.Module, taps: tuple[int, ...] = TAPS) -> int:
    """How many statistics `TappedNet` gives per image (or tile): a mean and a std per tapped channel."""
    return 2 * sum(net._blocks[i]._block_args.output_filters for i in taps)


class TappedNet(nn.Module):
    """An EfficientNet cut after its last tap: (B, 3, H, W) pixels in [0, 1] -> compressed channel
    statistics of every tap, (B, feature_dim) or per tile (B, grid**2, feature_dim)."""

    def __init__(self, net: nn.Module, taps: tuple[int, ...] = TAPS, input: str = "rgb"):
        super().__init__()
        if input not in INPUTS:
            raise ValueError(f"input must be one of {INPUTS}, not {input!r}")
        if max(taps) >= len(net._blocks):
            raise ValueError(f"tap {max(taps)} is beyond the network's {len(net._blocks)} blocks")
        self.feature_dim = tapped_width(net, taps)
        self.net, self.taps, self.input = net, tuple(taps), input
        # drop the blocks after the last tap and the classifier head: they are never run
        self.net._blocks = self.net._blocks[: max(taps) + 1]
        for attr in ("_conv_head", "_bn1", "_fc"):
            setattr(self.net, attr, nn.Identity())

    def tap_slices(self) -> dict[int, slice]:
        """Tapped block -> its features in `forward(x)` (grid None): mean and std of its channels."""
        out, start = {}, 0
        for i in self.taps:
            width = 2 * self.net._blocks[i]._block_args.output_filters
            out[i], start = slice(start, start + width), start + width
        return out

    def maps(self, x: torch.Tensor) -> Iterator[torch.Tensor]:
        """The feature map of every tapped block, in order."""
        if self.input == "highpass":
            x = high_pass(x) * HIGH_PASS_GAIN
        elif self.input == "npr":
            x = npr_residual(x) * HIGH_PASS_GAIN
        else:
            x = (x - 0.498) / 0.502  # TF Lite normalisation
        n = self.net
        x = n._swish(n._bn0(n._conv_stem(x)))
        for i, block in enumerate(n._blocks):
            x = block(x)
            if i in self.taps:
                yield x

    def forward(self, x: torch.Tensor, grid: int | None = None) -> torch.Tensor:
        stats = []
        for m in self.maps(x):
            if grid is None:
                stats += [m.mean(dim=(2, 3)), m.std(dim=(2, 3))]
            else:
                mean = F.adaptive_avg_pool2d(m, grid)
                var = (F.adaptive_avg_pool2d(m.square(), grid) - mean.square()).clamp(min=0)
                stats += [mean.flatten(2).transpose(1, 2), var.sqrt().flatten(2).transpose(1, 2)]
        y = torch.cat(stats, dim=-1)
        return torch.sign(y) * torch.log1p(y.abs())
