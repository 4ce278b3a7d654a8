"""The label convention of every record, manifest and metric: 0 = fake, 1 = real. Scores are
always p_fake; `fake_target` turns labels into the 1-for-fake targets a loss needs."""

from __future__ import annotations

import torch

FAKE, REAL = 0, 1
LABEL_NAMES = {FAKE: "fake", REAL: "real"}


def fake_target(labels: torch.Tensor) -> torch.Tensor:
    """Labels (0 = fake, 1 = real) -> float targets with 1 = fake."""
    return (labels == FAKE).float()
