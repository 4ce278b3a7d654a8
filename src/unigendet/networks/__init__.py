"""Pretrained networks that several layers read: EfficientNet-Lite0 and the statistics of its tapped
layers (the frozen backbones and UniGenDet's frozen forensic encoder both build on these)."""

from .efficientnet import load_efficientnet_lite0
from .taps import HIGH_PASS_GAIN, SIDE, TAPS, TappedNet

__all__ = ["HIGH_PASS_GAIN", "SIDE", "TAPS", "TappedNet", "load_efficientnet_lite0"]
