"""A model of real images only: a Gaussian on standardised backbone features, scored by the
Mahalanobis distance (the anomaly-detection view GenDet argues for). p_fake maps the distance
through a logistic whose centre and width come from held-out real images."""

from __future__ import annotations

import torch
from torch import nn


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
