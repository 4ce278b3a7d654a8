"""Deterministic, resumable, rank-sharded sample order, and a random stream per sample.

The samples of micro-batch `m` of step `s` on rank `r` depend only on
(seed, s, m, r): a resumed run sees exactly the samples it would have seen, and a
run on two processes sees the same global batch as a run on one. The data
position saved in a checkpoint is therefore just the step.
"""

from __future__ import annotations

import numpy as np
import torch


class StepSampler:
    def __init__(self, labels: list[int] | None, n: int, per_rank: int, seed: int, rank: int = 0, world: int = 1,
                 accum: int = 1, balanced: bool = False):
        """`per_rank` samples per micro-batch on each rank; `balanced` alternates the two labels."""
        if n == 0:
            raise ValueError("no samples to draw from")
        self.n, self.per_rank, self.seed, self.rank, self.world, self.accum = n, per_rank, seed, rank, world, accum
        self.pools = [np.arange(n)]
        if balanced:
            if labels is None:
                raise ValueError("label balance needs labels")
            labels_arr = np.asarray(labels)
            self.pools = [np.flatnonzero(labels_arr == v) for v in (0, 1)]
            if any(len(p) == 0 for p in self.pools):
                raise ValueError("label balance needs both labels")
        self._perms: dict[tuple[int, int], np.ndarray] = {}

    def _perm(self, pool: int, epoch: int) -> np.ndarray:
        key = (pool, epoch)
        if key not in self._perms:
            rng = np.random.default_rng([self.seed, pool, epoch])
            self._perms = {k: v for k, v in self._perms.items() if k[1] >= epoch - 1}
            self._perms[key] = self.pools[pool][rng.permutation(len(self.pools[pool]))]
        return self._perms[key]

    def global_index(self, step: int, micro: int, j: int) -> int:
        micro_size = self.per_rank * self.world
        return (step * self.accum + micro) * micro_size + self.rank * self.per_rank + j

    def indices(self, step: int, micro: int = 0) -> list[int]:
        out = []
        k = len(self.pools)
        for j in range(self.per_rank):
            g = self.global_index(step, micro, j)
            pool, within = g % k, g // k
            size = len(self.pools[pool])
            out.append(int(self._perm(pool, within // size)[within % size]))
        return out


def sample_rng(seed: int, *index: int) -> torch.Generator:
    """A generator per global sample, so noise does not depend on how samples are sharded."""
    return torch.Generator().manual_seed(int(np.random.SeedSequence([seed, *index]).generate_state(1)[0]))
