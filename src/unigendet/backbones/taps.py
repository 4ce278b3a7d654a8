"""The "forensic taps" backbones: channel statistics of tapped EfficientNet-Lite0 layers at native
resolution (`unigendet.networks.taps` says what they measure).

Nothing is resampled: the image is centre-cropped (reflect-padded when smaller) to 256 pixels, so
upsampling and JPEG traces survive. "efficientnet-lite0-taps" reads the RGB image;
"efficientnet-lite0-taps-hp" reads its high-pass residual (the high-frequency input of SAFE-style
detectors, with pretrained filters).
"""

from __future__ import annotations

import torch

from ..networks import SIDE, TappedNet, load_efficientnet_lite0
from .base import CONTENT, FINE_TRACES, TEXTURE, Backbone, Preprocess, register_backbone

# how fine a tapped block's view is: blocks 1, 2 at stride 2; 4, 7 at strides 4, 8; 10, 14 at 8, 16
TAP_EVIDENCE = {1: FINE_TRACES, 2: FINE_TRACES, 4: TEXTURE, 7: TEXTURE, 10: CONTENT, 14: CONTENT}


class EfficientNetTaps(Backbone):
    """(B, 3, H, W) in [0, 1] -> (B, 2 * sum of tapped channels): per-channel mean and std of each tap."""

    exportable = True

    def __init__(self, tapped: TappedNet, name: str):
        super().__init__(name, tapped.feature_dim)
        self.tapped = tapped

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tapped(x)

    def evidence_groups(self) -> dict[str, list[int]]:
        """The high-pass input holds pixel-level traces only; on the RGB input shallow taps read fine
        traces, middle ones texture, deep ones content and colour."""
        groups: dict[str, list[int]] = {}
        for block, part in self.tapped.tap_slices().items():
            kind = FINE_TRACES if self.tapped.input == "highpass" else TAP_EVIDENCE.get(block, CONTENT)
            groups.setdefault(kind, []).extend(range(part.start, part.stop))
        return groups


def _taps(input: str, name: str, path: str | None) -> tuple[Backbone, Preprocess]:
    pre = Preprocess(size=SIDE, crop=SIDE, mean=(0.0,) * 3, std=(1.0,) * 3, resize_mode="none")
    return EfficientNetTaps(TappedNet(load_efficientnet_lite0(path), input=input), name), pre


@register_backbone("efficientnet-lite0-taps")
def efficientnet_lite0_taps(path: str | None = None) -> tuple[Backbone, Preprocess]:
    return _taps("rgb", "efficientnet-lite0-taps", path)


@register_backbone("efficientnet-lite0-taps-hp")
def efficientnet_lite0_taps_hp(path: str | None = None) -> tuple[Backbone, Preprocess]:
    return _taps("highpass", "efficientnet-lite0-taps-hp", path)
