"""Frozen understanding encoders: an alternative to the trained NaViT for the detection path.

A frozen encoder turns the image under test (a native crop of `ViTConfig.image_side` px) into a
grid of feature vectors that enter the model as its image tokens through the connector, where the
NaViT's patch rows would; nothing of it is trained or saved in checkpoints (it loads its own
weights). Encoders are registered by name (the forensic one by `unigendet.backbones`, which holds
the networks) and `ViTConfig.encoder` names one; "navit" means none (the trained ViT).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Protocol

import torch


class FrozenEncoder(Protocol):
    dim: int  # width of one token
    grid: int  # tokens per side
    side: int  # input crop side, px

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        """(B, 3, side, side) in [-1, 1] -> (B, grid * grid, dim), row-major."""
        ...


_ENCODERS: dict[str, Callable[[], FrozenEncoder]] = {}
_BUILT: dict[str, FrozenEncoder] = {}


def register_encoder(name: str):
    def wrap(factory: Callable[[], FrozenEncoder]) -> Callable[[], FrozenEncoder]:
        _ENCODERS[name] = factory
        return factory

    return wrap


def frozen_encoder(name: str) -> FrozenEncoder:
    """The named encoder, built once per process (frozen, on the CPU; callers move inputs)."""
    if name not in _ENCODERS:
        importlib.import_module("unigendet.backbones")  # the package that registers the encoders
    if name not in _ENCODERS:
        raise ValueError(f"unknown understanding encoder {name!r}; choose from {sorted(_ENCODERS)} or 'navit'")
    if name not in _BUILT:
        _BUILT[name] = _ENCODERS[name]()
    return _BUILT[name]
