"""An ensemble of trained detectors, stacked and calibrated by one logistic regression.

    p_fake = sigmoid(bias + sum_k weight_k * logit(p_k))

The weights and bias are fitted on a validation split (never on the set being reported), so the
combination is also a Platt calibration of the members' scores. The run directory holds only
config.json: member run directories (relative to it) and the coefficients.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from .base import Detector, PathList, load_detector, register_detector, use_feature_cache

_CLIP = 1e-6


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), _CLIP, 1 - _CLIP)
    return np.log(p) - np.log1p(-p)


def fit_stacking(member_logits: np.ndarray, is_fake: np.ndarray, l2: float = 1e-2,
                 steps: int = 200) -> tuple[np.ndarray, float]:
    """Logistic regression of `is_fake` (N,) on member logits (N, K), L2 on the weights only.
    Returns (weights (K,), bias). Deterministic (LBFGS from zeros)."""
    x = torch.as_tensor(member_logits, dtype=torch.float64)
    y = torch.as_tensor(is_fake, dtype=torch.float64)
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"member logits {tuple(x.shape)} do not match {len(y)} labels")
    if y.min() == y.max():
        raise ValueError("stacking needs both real and fake validation images")
    w = torch.zeros(x.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros((), dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=steps, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(x @ w + b, y) + l2 * w.square().sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach().numpy(), float(b.detach())


@register_detector
class EnsembleDetector(Detector):
    kind = "ensemble"

    def __init__(self, name: str, members: Sequence[Detector], weights: Sequence[float], bias: float,
                 device="cpu"):
        super().__init__(name, device)
        if len(members) != len(weights) or not members:
            raise ValueError(f"{len(members)} members but {len(weights)} weights")
        self.members, self.weights, self.bias = list(members), np.asarray(weights, dtype=np.float64), float(bias)

    def combine(self, member_probs: np.ndarray) -> np.ndarray:
        """(N, K) member p_fake -> (N,) ensemble p_fake."""
        return 1.0 / (1.0 + np.exp(-(logit(member_probs) @ self.weights + self.bias)))

    def use_cache(self, root: str | os.PathLike | None) -> None:
        """Members with frozen-backbone features keep them under `root`."""
        for m in self.members:
            use_feature_cache(m, root)

    def member_probs(self, paths: PathList) -> np.ndarray:
        return np.stack([m.predict(paths) for m in self.members], axis=1)

    def predict(self, paths: PathList) -> np.ndarray:
        """Each member reads the files itself (so a member's feature cache serves it)."""
        return self.combine(self.member_probs(paths))

    def predict_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.combine(np.stack([m.predict_images(images) for m in self.members], axis=1))

    def features(self, paths: PathList) -> np.ndarray:
        """The members' logits (N, K): what the ensemble reads its verdict from."""
        return logit(self.member_probs(paths))

    def image_features(self, images: Sequence[Image.Image]) -> np.ndarray:
        return logit(np.stack([m.predict_images(images) for m in self.members], axis=1))

    def state(self, run_dir: Path) -> tuple[dict[str, Any], dict[str, nn.Module]]:
        if any(m.source is None for m in self.members):
            raise ValueError("an ensemble is saved with members loaded from run directories")
        return {"members": [member_reference(m.source, run_dir) for m in self.members],
                "weights": self.weights.tolist(), "bias": self.bias}, {}

    @classmethod
    def from_state(cls, run_dir: Path, config: dict[str, Any], device) -> EnsembleDetector:
        members = [load_detector(run_dir / m, device) for m in config["members"]]
        return cls(config.get("name", "ensemble"), members, config["weights"], config["bias"], device)


def member_reference(member: str | os.PathLike, run_dir: str | os.PathLike) -> str:
    """How config.json names a member: relative to the ensemble's directory, so runs move together."""
    return os.path.relpath(Path(member).resolve(), Path(run_dir).resolve())
