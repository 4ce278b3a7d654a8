"""TAEF2: the tiny autoencoder (madebyollin/taesd, MIT) for the FLUX.2 latent space.

The layer layout follows the upstream `taesd.py` so its `taef2_encoder.pth` /
`taef2_decoder.pth` state dicts load as they are. Weights are never bundled:
load them from local files with `TAEF2.from_files` (or a folder holding both, `from_folder`).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from ..weights import CheckpointError
from .base import Codec, register_codec

WIDTH = 64


def _conv(cin: int, cout: int, stride: int = 1, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=bias)


class SoftClamp(nn.Module):
    """Smoothly squashes latents into (-3, 3): 3 * tanh(x / 3)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(x / 3) * 3


class Block(nn.Module):
    """Three 3x3 convs with ReLUs plus an identity skip, then ReLU.

    With `global_norm`, a 1x1 conv -> GroupNorm -> ReLU -> 1x1 conv branch is first
    added to the input; GroupNorm's whole-image statistics give the block global context.
    """

    def __init__(self, global_norm: bool = False):
        super().__init__()
        self.conv = nn.Sequential(_conv(WIDTH, WIDTH), nn.ReLU(), _conv(WIDTH, WIDTH), nn.ReLU(), _conv(WIDTH, WIDTH))
        self.pool = None
        if global_norm:
            wide = 4 * WIDTH
            widen, narrow = nn.Conv2d(WIDTH, wide, 1, bias=False), nn.Conv2d(wide, WIDTH, 1, bias=False)
            self.pool = nn.Sequential(widen, nn.GroupNorm(4, wide), nn.ReLU(), narrow)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.pool is not None:
            x = x + self.pool(x)
        return torch.relu(self.conv(x) + x)


def _encoder(channels: int) -> nn.Sequential:
    layers: list[nn.Module] = [_conv(3, WIDTH), Block()]
    for stage in range(3):  # three stride-2 stages: 8x down; the last one has global-norm blocks
        layers += [_conv(WIDTH, WIDTH, stride=2, bias=False), *(Block(stage == 2) for _ in range(3))]
    return nn.Sequential(*layers, _conv(WIDTH, channels))


def _decoder(channels: int) -> nn.Sequential:
    layers: list[nn.Module] = [SoftClamp(), _conv(channels, WIDTH), nn.ReLU()]
    for stage in range(3):  # three nearest 2x upsamples; the first stage has global-norm blocks
        layers += [*(Block(stage == 0) for _ in range(3)), nn.Upsample(scale_factor=2), _conv(WIDTH, WIDTH, bias=False)]
    return nn.Sequential(*layers, Block(), _conv(WIDTH, 3))


@register_codec("taef2")
class TAEF2(Codec):
    """Images in [-1, 1] <-> 32-channel latents at 1/8 resolution.

    Latents are the raw FLUX.2 VAE latents (before its patchify + batch-norm),
    as TAEF2 approximates them: scale factor 1, no shift, mostly within [-3, 3].
    The decoder soft-clamps its input to (-3, 3). Internally the networks work
    on images in [0, 1]; `encode`/`decode` convert from/to [-1, 1].
    """

    pretrained = True

    def __init__(self, channels: int = 32, downsample: int = 8):
        super().__init__()
        if (channels, downsample) != (32, 8):
            raise ValueError(f"taef2 has 32 channels and x8 downsampling, not {channels} / x{downsample}")
        self.channels, self.downsample = channels, downsample
        self.encoder, self.decoder = _encoder(channels), _decoder(channels)

    @classmethod
    def from_files(cls, encoder_path: str | os.PathLike, decoder_path: str | os.PathLike) -> TAEF2:
        """Build the codec and strictly load the upstream encoder and decoder state dicts."""
        codec = cls()
        _load(codec.encoder, Path(encoder_path), "encoder")
        _load(codec.decoder, Path(decoder_path), "decoder")
        return codec.eval()

    @classmethod
    def from_folder(cls, folder: str | os.PathLike) -> TAEF2:
        """From a folder holding `taef2_encoder.pth` and `taef2_decoder.pth`."""
        return cls.from_files(Path(folder) / "taef2_encoder.pth", Path(folder) / "taef2_decoder.pth")

    @classmethod
    def from_entry(cls, entry: dict) -> TAEF2:
        if not entry.get("path"):
            raise ValueError("the taef2 codec loads from a folder: give its path (the folder with taef2_*.pth)")
        return cls.from_folder(entry["path"])

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        self.check_images(images)
        return self.encoder(images * 0.5 + 0.5)

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return (self.decoder(latents) * 2 - 1).clamp(-1, 1)


def _load(module: nn.Module, file: Path, part: str) -> None:
    if not file.is_file():
        raise CheckpointError(f"{file}: file not found")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)  # plain tensors only, no unpickling of code
    except Exception as e:  # pickle, zip and weights-only errors have no common base class
        raise CheckpointError(f"{file}: unreadable weight file ({e})") from e
    if not isinstance(state, dict):
        raise CheckpointError(f"{file}: expected a state dict, got {type(state).__name__}")
    try:
        module.load_state_dict(state, strict=True)  # reports missing / unexpected keys and shape mismatches
    except RuntimeError as e:
        raise CheckpointError(f"{file} does not fit the taef2 {part}: {e}") from e
