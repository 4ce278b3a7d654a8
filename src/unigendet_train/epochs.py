"""Seeding and one optimiser pass over shuffled index batches, shared by the small stages."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import nn


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch and numpy; returns a torch Generator for data order."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    return torch.Generator().manual_seed(seed)


def batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """A shuffled pass over range(n) in index batches (the last one may be short)."""
    order = torch.randperm(n, generator=generator)
    yield from order.split(batch_size)


def run_epoch(params_owner: nn.Module, opt: torch.optim.Optimizer, n: int, batch_size: int, gen: torch.Generator,
              step_loss: Callable[[torch.Tensor], torch.Tensor]) -> float:
    """Run `step_loss` over shuffled batches, optimise, return the mean loss (weighted by batch size)."""
    params_owner.train()
    total, count = 0.0, 0
    for idx in batches(n, batch_size, gen):
        loss = step_loss(idx)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"non-finite loss {loss.item()} while training {type(params_owner).__name__}")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += loss.item() * len(idx)
        count += len(idx)
    return total / max(count, 1)
