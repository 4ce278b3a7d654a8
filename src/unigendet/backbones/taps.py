"""Layer statistics of a frozen ImageNet CNN at native resolution: the "forensic taps" backbone.

A detector that reads the final pooled embedding of an ImageNet network mostly reads content
(what is shown). The early and middle layers respond to texture, noise and interpolation
patterns; summarising each tapped layer by the spatial mean and standard deviation of every
channel keeps those low-level statistics and discards where things are. Nothing is resampled:
the image is centre-cropped (reflect-padded when smaller) to `side` pixels, so upsampling and
JPEG traces survive. Values are compressed with sign(x) * log1p(|x|).

"efficientnet-lite0-taps" reads the RGB image; "efficientnet-lite0-taps-hp" reads a high-pass
residual (x minus its 3x3 mean, amplified), which removes most of the content before the first
convolution (the high-frequency input of SAFE-style detectors, with pretrained filters).
"""

from __future__ import annotations

import torch
from torch import nn

from ..images import high_pass
from .base import Backbone, Preprocess, efficientnet_lite0, register_backbone

TAPS = (1, 2, 4, 7, 10, 14)  # block indices: strides 2, 2, 4, 8, 8, 16 relative to the stem
SIDE = 256
HIGH_PASS_GAIN = 4.0


class EfficientNetTaps(Backbone):
    """(B, 3, H, W) in [0, 1] -> (B, 2 * sum of tapped channels): per-channel mean and std of each tap."""

    def __init__(self, net: nn.Module, name: str, taps: tuple[int, ...] = TAPS, input: str = "rgb"):
        if input not in ("rgb", "highpass"):
            raise ValueError(f"input must be 'rgb' or 'highpass', not {input!r}")
        if max(taps) >= len(net._blocks):
            raise ValueError(f"tap {max(taps)} is beyond the network's {len(net._blocks)} blocks")
        dim = 2 * sum(net._blocks[i]._block_args.output_filters for i in taps)
        super().__init__(name, dim)
        self.net, self.taps, self.input = net, tuple(taps), input
        # drop the blocks after the last tap and the classifier head: they are never run
        self.net._blocks = self.net._blocks[: max(taps) + 1]
        for attr in ("_conv_head", "_bn1", "_fc"):
            setattr(self.net, attr, nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = high_pass(x) * HIGH_PASS_GAIN if self.input == "highpass" else (x - 0.498) / 0.502  # TF Lite norm
        x = self.net._swish(self.net._bn0(self.net._conv_stem(x)))
        stats = []
        for i, block in enumerate(self.net._blocks):
            x = block(x)
            if i in self.taps:
                stats += [x.mean(dim=(2, 3)), x.std(dim=(2, 3))]
        y = torch.cat(stats, dim=1)
        return torch.sign(y) * torch.log1p(y.abs())


def _taps(input: str, name: str, path: str | None) -> tuple[Backbone, Preprocess]:
    full, _ = efficientnet_lite0(path)
    pre = Preprocess(size=SIDE, crop=SIDE, mean=(0.0,) * 3, std=(1.0,) * 3, resize_mode="none")
    return EfficientNetTaps(full.net, name, input=input), pre


@register_backbone("efficientnet-lite0-taps")
def efficientnet_lite0_taps(path: str | None = None) -> tuple[Backbone, Preprocess]:
    return _taps("rgb", "efficientnet-lite0-taps", path)


@register_backbone("efficientnet-lite0-taps-hp")
def efficientnet_lite0_taps_hp(path: str | None = None) -> tuple[Backbone, Preprocess]:
    return _taps("highpass", "efficientnet-lite0-taps-hp", path)
