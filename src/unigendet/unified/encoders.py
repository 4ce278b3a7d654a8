"""Frozen understanding encoders: an alternative to the trained NaViT for the detection path.

A frozen encoder turns the image under test (a native crop of `ModelConfig.vit_image_size` px) into a
grid of feature vectors that enter the model as its image tokens through the connector, where the
NaViT's patch rows would; nothing of it is trained or saved in checkpoints (it loads its own
weights). `ViTConfig.encoder` names one ("navit" means none: the trained ViT), and the
`SampleBuilder` that turns images into samples builds it and holds it.

"forensic": the shipped in-the-wild detector's features as one token per tile. That detector
summarises a native 256-px crop by the channel statistics of tapped EfficientNet-Lite0 layers, for
the RGB crop and its high-pass residual (`unigendet.networks.taps`); this encoder keeps the same
statistics of the ImageNet network (the one the detector's tuned networks started from) per tile of
a 4 x 4 partition of the crop, so the model sees where each kind of trace lies.
"""

from __future__ import annotations

import functools
from typing import Protocol

import torch
from torch import nn

from ..networks import SIDE, TAPS, TappedNet, efficientnet_lite_layout, load_efficientnet_lite0, tapped_width


class FrozenEncoder(Protocol):
    dim: int  # width of one token
    grid: int  # tokens per side
    side: int  # input crop side, px

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, side, side) in [-1, 1] -> (B, grid * grid, dim), row-major."""
        ...

    @staticmethod
    def token_dim() -> int:
        """`dim`, known from the encoder's layout before it is built."""
        ...


class ForensicEncoder(nn.Module):
    """(B, 3, 256, 256) in [-1, 1] -> (B, grid**2, 2 inputs x 2 stats x tapped channels), on the CPU."""

    def __init__(self, grid: int = 4, side: int = SIDE):
        super().__init__()
        self.grid, self.side = grid, side
        self.rgb = TappedNet(load_efficientnet_lite0(), input="rgb")
        self.highpass = TappedNet(load_efficientnet_lite0(), input="highpass")
        self.dim = self.rgb.feature_dim + self.highpass.feature_dim
        self.requires_grad_(False)
        super().train(False)  # batch norm keeps its running statistics

    @staticmethod
    def token_dim() -> int:
        """The width of its tokens, from the network's layout alone (no weights read)."""
        return 2 * tapped_width(efficientnet_lite_layout(0), TAPS)  # the RGB crop and its high-pass residual

    def train(self, mode: bool = True) -> ForensicEncoder:
        return self  # frozen, even inside a model put in training mode

    @torch.no_grad()
    def forward(self, images: torch.Tensor) -> torch.Tensor:
        if images.shape[-2:] != (self.side, self.side):
            raise ValueError(f"the forensic encoder reads {self.side}-px crops, got {tuple(images.shape[-2:])}")
        x = (images.float().cpu() + 1) / 2  # pixels in [0, 1], as the taps backbones read them
        return torch.cat([self.rgb(x, self.grid), self.highpass(x, self.grid)], dim=2)


ENCODERS: dict[str, type[FrozenEncoder]] = {"forensic": ForensicEncoder}


def encoder_class(name: str) -> type[FrozenEncoder]:
    if name not in ENCODERS:
        raise ValueError(f"unknown understanding encoder {name!r}; choose from {sorted(ENCODERS)} or 'navit'")
    return ENCODERS[name]


@functools.cache
def encoder_dim(name: str) -> int:
    """The token width of the named encoder (a preset's `ViTConfig.encoder_dim`), without loading it."""
    return encoder_class(name).token_dim()


def build_encoder(name: str) -> FrozenEncoder:
    """A new instance of the named encoder (frozen; it loads its own weights)."""
    return encoder_class(name)()
