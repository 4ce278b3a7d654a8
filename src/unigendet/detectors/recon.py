"""Reconstruction error through an autoencoder of real images (DIRE / AEROBLADE style).

The autoencoder encodes and decodes the image at native resolution; the score is the mean
absolute error of the reconstruction's high-pass residual over the inner region. `fake_if` says
which side is fake: "high" (anomaly: the model of reals reconstructs reals best) or "low"
(AEROBLADE: images from a latent generator sit on its decoder's manifold).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..backbones import native_crop
from ..codecs import Codec, codec_from_entry
from ..images import high_pass
from ..weights import load_weights
from .base import Detector, register_detector


def reconstruction_error(codec: nn.Module, x: torch.Tensor, border: int = 8) -> torch.Tensor:
    """(B, 3, H, W) in [-1, 1] -> (B,): mean |high-pass(x) - high-pass(decode(encode(x)))| inside
    a `border`-pixel margin (autoencoders are worst at the edges, for reals and fakes alike)."""
    rec = codec.decode(codec.encode(x))
    diff = (high_pass(x) - high_pass(rec)).abs()
    if border and min(x.shape[-2:]) > 4 * border:
        diff = diff[..., border:-border, border:-border]
    return diff.mean(dim=(1, 2, 3))


def build_recon_codec(entry: dict[str, Any], run_dir: Path | None) -> Codec:
    """The autoencoder an entry names: a pretrained one loads from its own folder, one trained here from
    `codec.safetensors` in the run directory (untrained when `run_dir` is None)."""
    codec = codec_from_entry(entry)
    if not codec.pretrained and run_dir is not None:
        load_weights(codec, run_dir / "codec.safetensors")
    return codec


@register_detector
class ReconDetector(Detector):
    """Reconstruction error through an autoencoder of real images (see the module docstring)."""

    kind = "recon"

    def __init__(self, name: str, codec: nn.Module, side: int, fake_if: str, loc: float, scale: float,
                 device="cpu", batch_size: int = 16, codec_entry: dict[str, Any] | None = None):
        super().__init__(name, device)
        if fake_if not in ("high", "low"):
            raise ValueError(f"fake_if must be 'high' or 'low', not {fake_if!r}")
        self.codec, self.side, self.fake_if = codec.to(self.device).eval(), side, fake_if
        self.loc, self.scale, self.batch_size = loc, max(scale, 1e-9), batch_size
        self.codec_entry = codec_entry  # how build_recon_codec rebuilds the codec

    @torch.no_grad()
    def errors(self, images: Sequence[Image.Image]) -> np.ndarray:
        out = []
        for s in range(0, len(images), self.batch_size):
            x = torch.stack([native_crop(im, self.side) * 2 - 1 for im in images[s : s + self.batch_size]])
            out.append(reconstruction_error(self.codec, x.to(self.device)).double().cpu())
        return torch.cat(out).numpy() if out else np.zeros(0)

    def probability(self, errors: np.ndarray) -> np.ndarray:
        sign = 1.0 if self.fake_if == "high" else -1.0
        return 1.0 / (1.0 + np.exp(-sign * (errors - self.loc) / self.scale))

    def predict_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.probability(self.errors(images))

    def image_features(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.errors(images)[:, None]

    def state(self, run_dir: Path) -> tuple[dict[str, Any], dict[str, nn.Module]]:
        if self.codec_entry is None:
            raise ValueError("a reconstruction detector is saved with the codec_entry that rebuilds its codec")
        fields = {"codec": self.codec_entry, "side": self.side, "fake_if": self.fake_if,
                  "calibration": {"loc": self.loc, "scale": self.scale}}
        return fields, ({} if self.codec.pretrained else {"codec": self.codec})

    @classmethod
    def from_state(cls, run_dir: Path, config: dict[str, Any], device) -> ReconDetector:
        calib = config["calibration"]
        return cls(config.get("name", "recon"), build_recon_codec(config["codec"], run_dir),
                   int(config.get("side", 128)), config["fake_if"], float(calib["loc"]), float(calib["scale"]),
                   device, codec_entry=config["codec"])
