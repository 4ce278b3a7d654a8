"""Learning-rate schedules as pure functions of the step."""

from __future__ import annotations

import math


def lr_at(step: int, base_lr: float, warmup: int, total: int, kind: str = "constant", min_ratio: float = 0.1) -> float:
    """Linear warmup over `warmup` steps, then constant (the paper's GDUF/DIGA) or cosine to min_ratio."""
    if warmup > 0 and step < warmup:
        return base_lr * (step + 1) / warmup
    if kind == "constant":
        return base_lr
    if kind == "cosine":
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return base_lr * (min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))
    raise ValueError(f"unknown schedule {kind!r}")
