"""Fitting a `CalibratedLinear` head on features: a balanced, standardised L2 logistic regression,
then Platt scaling on held-out logits. The forensic trainer and the bench that compares heads both
fit through here."""

from __future__ import annotations

import numpy as np
import torch

from ..metrics.detection import balanced_threshold
from .probes import CalibratedLinear


def balanced_weights(weight: np.ndarray, is_fake: np.ndarray) -> np.ndarray:
    """`weight` rescaled per class so that each class weighs half of the rows (as "balanced" class
    weights do for unit weights)."""
    weight = np.asarray(weight, dtype=np.float64)
    if (weight <= 0).any():
        raise ValueError("row weights must be positive")
    out = weight.copy()
    for cls in (False, True):
        m = np.asarray(is_fake) == cls
        out[m] *= len(out) / (2 * weight[m].sum())
    return out


def fit_linear(x: np.ndarray, is_fake: np.ndarray, c: float, seed: int = 0,
               weight: np.ndarray | None = None) -> CalibratedLinear:
    """Standardise, then an L2 logistic regression (inverse strength `c`) with balanced classes;
    `weight` (per row) shifts weight between the rows of a class without unbalancing the classes.
    The head is uncalibrated (scale 1, shift 0) until `platt`."""
    from sklearn.linear_model import LogisticRegression

    mean, std = x.mean(0), x.std(0) + 1e-6
    if weight is None:
        lr = LogisticRegression(C=c, max_iter=3000, class_weight="balanced", random_state=seed)
        lr.fit((x - mean) / std, is_fake)
    else:
        lr = LogisticRegression(C=c, max_iter=3000, random_state=seed)
        lr.fit((x - mean) / std, is_fake, sample_weight=balanced_weights(weight, is_fake))
    head = CalibratedLinear(x.shape[1])
    with torch.no_grad():
        head.mean.copy_(torch.from_numpy(mean).float())
        head.std.copy_(torch.from_numpy(std).float())
        head.fc.weight.copy_(torch.from_numpy(lr.coef_).float())
        head.fc.bias.fill_(float(lr.intercept_[0]))
    return head.eval()


def platt(head: CalibratedLinear, raw_logits: np.ndarray, is_fake: np.ndarray) -> float:
    """Platt scaling on held-out raw logits (balanced classes, so p_fake reads for a 50/50 prior),
    written into the head; returns the threshold on the calibrated p_fake that maximises balanced
    accuracy on the same data."""
    from sklearn.linear_model import LogisticRegression

    lr = LogisticRegression(C=1e4, class_weight="balanced").fit(raw_logits[:, None], is_fake)
    with torch.no_grad():
        head.scale.fill_(float(lr.coef_[0, 0]))
        head.shift.fill_(float(lr.intercept_[0]))
    p = 1 / (1 + np.exp(-(lr.coef_[0, 0] * raw_logits + lr.intercept_[0])))
    return balanced_threshold(p, is_fake)
