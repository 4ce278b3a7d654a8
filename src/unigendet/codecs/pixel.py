"""Pixel patches as latents: a lossless, weight-free codec for the smallest presets."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .base import Codec, register_codec


@register_codec("pixel")
class PixelCodec(Codec):
    """Space-to-depth: each f x f pixel block becomes 3*f*f channels (exact inverse)."""

    def __init__(self, channels: int = 48, downsample: int = 4):
        super().__init__()
        if channels != 3 * downsample**2:
            raise ValueError(f"pixel codec with downsample {downsample} has {3 * downsample**2} channels")
        self.channels, self.downsample = channels, downsample

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        self.check_images(images)
        return F.pixel_unshuffle(images, self.downsample)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(latents, self.downsample).clamp(-1, 1)
