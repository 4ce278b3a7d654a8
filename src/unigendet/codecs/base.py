"""The codec interface and its registry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

import torch
from torch import nn


class Codec(nn.Module):
    """Maps images (B, 3, H, W) in [-1, 1] to latents (B, C, H/f, W/f) and back.

    Latents are already normalised (`(z - shift) * scale`) so the flow sees
    roughly unit-variance data.
    """

    channels: int
    downsample: int
    pretrained: ClassVar[bool] = False  # weights come from files of their own (a folder), never trained here
    ENTRY_FIELDS: ClassVar[tuple[str, ...]] = ("channels", "downsample", "width", "upsample")

    @classmethod
    def from_entry(cls, entry: dict[str, Any]) -> Codec:
        """Built from its JSON description (`codec_from_entry`): the shape fields it takes."""
        return cls(**{k: entry[k] for k in cls.ENTRY_FIELDS if k in entry})

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    @property
    def learned(self) -> bool:
        """Whether the codec has weights (trained, so a checkpoint must carry them), not a fixed transform."""
        return any(True for _ in self.parameters())

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor, batch: int = 64) -> torch.Tensor:
        """decode(encode(images)) in batches, on the codec's device; returned on the CPU as float."""
        device = next(self.parameters(), torch.empty(0)).device
        return torch.cat([self.decode(self.encode(images[i:i + batch].to(device))).float().cpu()
                          for i in range(0, len(images), batch)])

    def check_images(self, images: torch.Tensor) -> None:
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"expected images (B, 3, H, W), got {tuple(images.shape)}")
        if images.shape[-1] % self.downsample or images.shape[-2] % self.downsample:
            raise ValueError(f"image side must be a multiple of {self.downsample}")


CODECS: dict[str, Callable[..., Codec]] = {}


def register_codec(name: str):
    def wrap(cls):
        CODECS[name] = cls
        return cls

    return wrap


def codec_from_entry(entry: dict[str, Any]) -> Codec:
    """A codec from its JSON description {"name", ...}: the registered class builds itself from the
    entry's fields (a pretrained one loads its weights from the entry's "path")."""
    name = entry.get("name")
    if name not in CODECS:
        raise ValueError(f"unknown codec {name!r}; available: {sorted(CODECS)}")
    return CODECS[name].from_entry(entry)


def build_codec(name: str, channels: int, downsample: int, width: int | None = None) -> Codec:
    """`width`: the convolution width of a trainable codec (None: its default)."""
    if name not in CODECS:
        raise ValueError(f"unknown codec {name!r}; available: {sorted(CODECS)}")
    codec = CODECS[name](channels=channels, downsample=downsample, **({"width": width} if width else {}))
    if (codec.channels, codec.downsample) != (channels, downsample):
        raise ValueError(f"codec {name} gives {codec.channels} channels / x{codec.downsample}")
    return codec
