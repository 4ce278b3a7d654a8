"""Exponential moving average of a model's weights."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    def __init__(self, model: nn.Module, decay: float = 0.999):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    def decay_at(self, step: int | None) -> float:
        """The decay, warmed up as (1 + step) / (10 + step) early on, so that after a short run the
        average is not dominated by the initial weights (0.999 ** 1000 is still 37%)."""
        return self.decay if step is None else min(self.decay, (1 + step) / (10 + step))

    @torch.no_grad()
    def update(self, model: nn.Module, step: int | None = None) -> None:
        decay = self.decay_at(step)
        for e, p in zip(self.model.parameters(), model.parameters(), strict=True):
            if p.requires_grad:
                e.lerp_(p.detach().to(e.dtype), 1 - decay)
        for e, b in zip(self.model.buffers(), model.buffers(), strict=True):
            e.copy_(b)
