"""The "forensic taps" backbones: channel statistics of tapped EfficientNet-Lite layers at native
resolution (`unigendet.networks.taps` says what they measure).

Nothing is resampled: the image is centre-cropped (reflect-padded when smaller) to 256 pixels, so
upsampling and JPEG traces survive. "efficientnet-lite0-taps" reads the RGB image;
"efficientnet-lite0-taps-hp" reads its high-pass residual (the high-frequency input of SAFE-style
detectors, with pretrained filters); "efficientnet-lite0-taps-npr" reads its NPR residual (the
input of NPR detectors: what upsampling ties between neighbouring pixels). "efficientnet-lite1-..."
and "efficientnet-lite2-..." are the same on the larger variants, tapped at the same places.
"""

from __future__ import annotations

import torch

from ..networks import SIDE, TAPS_BY_VARIANT, TappedNet, load_efficientnet_lite
from .base import CONTENT, FINE_TRACES, TEXTURE, Backbone, Preprocess, register_backbone

# how fine each tap's view is, in tap order: two at stride 2, then strides 4 and 8, then 8 and 16
TAP_EVIDENCE = (FINE_TRACES, FINE_TRACES, TEXTURE, TEXTURE, CONTENT, CONTENT)


class EfficientNetTaps(Backbone):
    """(B, 3, H, W) in [0, 1] -> (B, 2 * sum of tapped channels): per-channel mean and std of each tap."""

    exportable = True

    def __init__(self, tapped: TappedNet, name: str):
        super().__init__(name, tapped.feature_dim)
        self.tapped = tapped

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tapped(x)

    def evidence_groups(self) -> dict[str, list[int]]:
        """The residual inputs hold pixel-level traces only; on the RGB input shallow taps read fine
        traces, middle ones texture, deep ones content and colour."""
        groups: dict[str, list[int]] = {}
        for n, part in enumerate(self.tapped.tap_slices().values()):
            rgb_kind = TAP_EVIDENCE[n] if n < len(TAP_EVIDENCE) else CONTENT
            kind = rgb_kind if self.tapped.input == "rgb" else FINE_TRACES
            groups.setdefault(kind, []).extend(range(part.start, part.stop))
        return groups


def _taps(input: str, variant: int, name: str, path: str | None) -> tuple[Backbone, Preprocess]:
    pre = Preprocess(size=SIDE, crop=SIDE, mean=(0.0,) * 3, std=(1.0,) * 3, resize_mode="none")
    net = TappedNet(load_efficientnet_lite(variant, path), taps=TAPS_BY_VARIANT[variant], input=input)
    return EfficientNetTaps(net, name), pre


SUFFIX = {"rgb": "", "highpass": "-hp", "npr": "-npr"}


def _register(variant: int, input: str) -> None:
    name = f"efficientnet-lite{variant}-taps{SUFFIX[input]}"
    register_backbone(name)(lambda path=None: _taps(input, variant, name, path))


for _variant in TAPS_BY_VARIANT:
    for _input in SUFFIX:
        _register(_variant, _input)
