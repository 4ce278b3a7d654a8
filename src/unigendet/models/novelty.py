"""How unlike the training images an image is: the novelty score a detector abstains on.

The features are standardised, projected on their leading principal components and whitened; an
image's novelty is the mean distance to its `k` nearest training rows there (a bank of training
photos and fakes alike, so any mode of the training data counts as familiar). A detector compares it
with a threshold fitted on images of sources the bank never held, and says `uncertain` rather than
`fake` for an image beyond it: a camera, a size or a re-encoding it has not met.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class Novelty(nn.Module):
    """Mean distance to the `k` nearest bank rows, in whitened principal components of the features."""

    def __init__(self, feature_dim: int, dims: int, bank_size: int, k: int = 10):
        super().__init__()
        self.k = k
        self.register_buffer("mean", torch.zeros(feature_dim))
        self.register_buffer("std", torch.ones(feature_dim))
        self.register_buffer("components", torch.zeros(feature_dim, dims))  # columns scaled to unit variance
        self.register_buffer("bank", torch.zeros(bank_size, dims))

    def project(self, x: torch.Tensor) -> torch.Tensor:
        return ((x.float() - self.mean) / self.std) @ self.components

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(N,) novelty of (N, D) feature rows."""
        if not len(x):
            return torch.empty(0)
        d = torch.cdist(self.project(x), self.bank)
        k = min(self.k, self.bank.shape[0])
        return d.topk(k, dim=1, largest=False).values.mean(1)


def fit_novelty(x: np.ndarray, dims: int = 32, k: int = 10, max_bank: int = 4000, seed: int = 0) -> Novelty:
    """A novelty score whose bank is (up to `max_bank` of) the rows of `x`, in `dims` whitened components."""
    if len(x) < 2:
        raise ValueError("a novelty score needs at least two training rows")
    x = np.asarray(x, dtype=np.float64)
    mean, std = x.mean(0), x.std(0) + 1e-6
    z = (x - mean) / std
    dims = int(min(dims, z.shape[1], len(z) - 1))
    _, s, vt = np.linalg.svd(z - z.mean(0), full_matrices=False)
    sd = s[:dims] / np.sqrt(len(z) - 1)
    components = vt[:dims].T / np.maximum(sd, 1e-6)
    keep = np.random.RandomState(seed).permutation(len(z))[:max_bank]
    model = Novelty(x.shape[1], dims, len(keep), k)
    with torch.no_grad():
        model.mean.copy_(torch.from_numpy(mean))
        model.std.copy_(torch.from_numpy(std))
        model.components.copy_(torch.from_numpy(components))
        model.bank.copy_(torch.from_numpy(z[keep] @ components))
    return model.eval()


def novelty_scores(model: Novelty, x: np.ndarray | torch.Tensor) -> np.ndarray:
    rows = torch.as_tensor(np.asarray(x, dtype=np.float32)) if not torch.is_tensor(x) else x
    return model(rows).numpy().astype(np.float64)


def abstains(p_fake, novelty, threshold: float, novelty_threshold: float):
    """Whether the detector says `uncertain` rather than `fake`: it would call the image fake, and the
    image is more novel than the level it was calibrated to (elementwise on arrays)."""
    return (np.asarray(p_fake) > threshold) & (np.asarray(novelty) > novelty_threshold)
