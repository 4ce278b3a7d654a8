"""Pretrained networks that several layers read: EfficientNet-Lite and the statistics of its tapped
layers (the frozen backbones and UniGenDet's frozen forensic encoder both build on these)."""

from .efficientnet import efficientnet_lite_layout, load_efficientnet_lite, load_efficientnet_lite0
from .taps import HIGH_PASS_GAIN, SIDE, TAPS, TAPS_BY_VARIANT, TappedNet, tapped_width

__all__ = [
    "HIGH_PASS_GAIN", "SIDE", "TAPS", "TAPS_BY_VARIANT", "TappedNet", "tapped_width",
    "efficientnet_lite_layout", "load_efficientnet_lite", "load_efficientnet_lite0",
]
