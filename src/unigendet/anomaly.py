"""Detectors built from models of real images only (the anomaly-detection view GenDet argues for).

- One-class Gaussian ("oneclass"): standardised backbone features of real training images, a
  shrunk covariance, and the Mahalanobis distance as the anomaly score. p_fake maps the distance
  through a logistic whose centre and width come from held-out *real* images: the 95th
  percentile of their distances maps to 0.5. No fake image is ever used.
- Reconstruction error ("recon", DIRE / AEROBLADE style): an autoencoder trained on real images
  encodes and decodes the image at native resolution; the score is the mean absolute error of the
  reconstruction's high-pass residual over the inner region. `fake_if` says which side is fake:
  "high" (anomaly: the model of reals reconstructs reals best) or "low" (AEROBLADE: images from a
  latent generator sit on its decoder's manifold).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from .checkpoint import load_weights
from .data.backbones import native_crop
from .data.imageio import open_image
from .detectors import Detector, FeatureDetector, PathList
from .images import high_pass


class GaussianOneClass(nn.Module):
    """Mahalanobis distance to a Gaussian fitted on real features; p_fake = sigmoid((d - loc) / scale)."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mu", torch.zeros(dim))  # feature standardisation
        self.register_buffer("sd", torch.ones(dim))
        self.register_buffer("mean", torch.zeros(dim))  # the Gaussian, in standardised units
        self.register_buffer("precision", torch.zeros(dim, dim))
        self.register_buffer("loc", torch.zeros(()))  # distance -> p_fake logistic
        self.register_buffer("scale", torch.ones(()))

    @torch.no_grad()
    def fit(self, real: torch.Tensor, shrinkage: float = 0.1) -> GaussianOneClass:
        """Fit on real features (N, D)."""
        real = real.double()
        self.mu.copy_(real.mean(0))
        self.sd.copy_(real.std(0).clamp(min=1e-6))
        z = (real - self.mu.double()) / self.sd.double()
        cov = torch.cov(z.T).reshape(z.shape[1], z.shape[1])
        target = torch.eye(cov.shape[0], dtype=cov.dtype) * cov.diagonal().mean()
        self.mean.copy_(z.mean(0))
        self.precision.copy_(torch.linalg.inv((1 - shrinkage) * cov + shrinkage * target))
        return self

    @torch.no_grad()
    def calibrate(self, held_out_real: torch.Tensor, quantile: float = 0.95) -> GaussianOneClass:
        """Centre and width of the logistic from distances of real images not used in `fit`."""
        d = self.distance(held_out_real)
        self.loc.fill_(float(torch.quantile(d, quantile)))
        self.scale.fill_(float(d.std().clamp(min=1e-6)))
        return self

    def distance(self, features: torch.Tensor) -> torch.Tensor:
        z = (features.double() - self.mu.double()) / self.sd.double() - self.mean.double()
        return torch.sqrt(torch.einsum("nd,de,ne->n", z, self.precision.double(), z).clamp(min=0))

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid((self.distance(features) - self.loc) / self.scale)


class OneClassDetector(FeatureDetector):
    kind = "oneclass"

    @torch.no_grad()
    def scores(self, features: torch.Tensor) -> np.ndarray:
        return self.head(features.to(self.device)).double().cpu().numpy()


def load_oneclass(run_dir: Path, cfg: dict[str, Any], device) -> Detector:
    head = GaussianOneClass(int(cfg["feature_dim"]))
    load_weights(head, run_dir / "model.safetensors")
    return OneClassDetector(cfg.get("name", "oneclass"), head, cfg["backbone"], cfg.get("backbone_path"), device)


# --- reconstruction error -----------------------------------------------------------------------


def reconstruction_error(codec: nn.Module, x: torch.Tensor, border: int = 8) -> torch.Tensor:
    """(B, 3, H, W) in [-1, 1] -> (B,): mean |high-pass(x) - high-pass(decode(encode(x)))| inside
    a `border`-pixel margin (autoencoders are worst at the edges, for reals and fakes alike)."""
    rec = codec.decode(codec.encode(x))
    diff = (high_pass(x) - high_pass(rec)).abs()
    if border and min(x.shape[-2:]) > 4 * border:
        diff = diff[..., border:-border, border:-border]
    return diff.mean(dim=(1, 2, 3))


class ReconDetector(Detector):
    """Reconstruction error through an autoencoder of real images (see the module docstring)."""

    kind = "recon"

    def __init__(self, name: str, codec: nn.Module, side: int, fake_if: str, loc: float, scale: float,
                 device="cpu", batch_size: int = 16):
        super().__init__(name, device)
        if fake_if not in ("high", "low"):
            raise ValueError(f"fake_if must be 'high' or 'low', not {fake_if!r}")
        self.codec, self.side, self.fake_if = codec.to(self.device).eval(), side, fake_if
        self.loc, self.scale, self.batch_size = loc, max(scale, 1e-9), batch_size

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

    def predict(self, paths: PathList, cache_root=None) -> np.ndarray:
        return self.predict_images([open_image(p) for p in paths])

    def features(self, paths: PathList, cache_root=None) -> np.ndarray:
        return self.errors([open_image(p) for p in paths])[:, None]


def build_recon_codec(cfg: dict[str, Any], run_dir: Path) -> nn.Module:
    """The run's autoencoder: "conv-vae" (weights in the run directory) or "taef2" (a local folder)."""
    codec = cfg["codec"]
    if codec["name"] == "conv-vae":
        from .codecs import ConvVAE

        model = ConvVAE(channels=int(codec["channels"]), downsample=int(codec["downsample"]),
                        width=int(codec["width"]), upsample=codec.get("upsample", "nearest"))
        load_weights(model, run_dir / "codec.safetensors")
        return model
    if codec["name"] == "taef2":
        from .codecs.taesd import TAEF2

        d = Path(codec["path"])
        return TAEF2.from_files(d / "taef2_encoder.pth", d / "taef2_decoder.pth")
    raise ValueError(f"unknown reconstruction codec {codec['name']!r}")


def load_recon(run_dir: Path, cfg: dict[str, Any], device) -> Detector:
    calib = cfg["calibration"]
    return ReconDetector(cfg.get("name", "recon"), build_recon_codec(cfg, run_dir), int(cfg.get("side", 128)),
                         cfg["fake_if"], float(calib["loc"]), float(calib["scale"]), device)
