"""A small convolutional autoencoder the project trains itself (no downloads)."""

from __future__ import annotations

import math

import torch
from torch import nn

from .base import Codec, register_codec


def _block(cin: int, cout: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.GroupNorm(8, cout), nn.SiLU())


def _upsampler(kind: str, width: int) -> nn.Module:
    """2x upsampling as generators do it; each leaves its own periodic trace (the fake families of
    the corpus's autoencoder generators, after AutoGAN)."""
    if kind == "transposed":
        return nn.ConvTranspose2d(width, width, 4, stride=2, padding=1)
    if kind == "pixelshuffle":
        return nn.Sequential(nn.Conv2d(width, 4 * width, 3, padding=1), nn.PixelShuffle(2))
    return nn.Upsample(scale_factor=2.0, mode=kind)


@register_codec("conv-vae")
class ConvVAE(Codec):
    """Encoder: stride-2 conv stages down by `downsample`; decoder mirrors it.

    Deterministic (the mean of the posterior); latents are normalised by the
    buffers `scale` and `shift`, which training sets from data statistics.
    """

    UPSAMPLERS = ("nearest", "bilinear", "transposed", "pixelshuffle")

    def __init__(self, channels: int = 16, downsample: int = 8, width: int = 64, upsample: str = "nearest"):
        super().__init__()
        stages = int(math.log2(downsample))
        if 2**stages != downsample:
            raise ValueError("downsample must be a power of two")
        if upsample not in self.UPSAMPLERS:
            raise ValueError(f"upsample {upsample!r} is not one of {self.UPSAMPLERS}")
        self.channels, self.downsample = channels, downsample
        enc: list[nn.Module] = [nn.Conv2d(3, width, 3, padding=1)]
        for _ in range(stages):
            enc += [_block(width, width), nn.Conv2d(width, width, 4, stride=2, padding=1)]
        enc += [_block(width, width), nn.Conv2d(width, channels, 3, padding=1)]
        dec: list[nn.Module] = [nn.Conv2d(channels, width, 3, padding=1)]
        for _ in range(stages):
            dec += [_block(width, width), _upsampler(upsample, width)]
        dec += [_block(width, width), nn.Conv2d(width, 3, 3, padding=1)]
        self.encoder, self.decoder = nn.Sequential(*enc), nn.Sequential(*dec)
        self.register_buffer("scale", torch.ones(()))
        self.register_buffer("shift", torch.zeros(()))

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        self.check_images(images)
        return (self.encoder(images) - self.shift) * self.scale

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.decoder(latents / self.scale + self.shift).clamp(-1, 1)
