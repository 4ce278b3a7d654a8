"""The baselines' networks: UnivFD's linear probe and CNNDetection's fine-tuned CNN."""

from __future__ import annotations

import torch
from torch import nn


class LinearProbe(nn.Module):
    """UnivFD (Ojha et al.): one linear layer on frozen backbone features; the output is the fake logit."""

    def __init__(self, feature_dim: int):
        super().__init__()
        self.fc = nn.Linear(feature_dim, 1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc(features).squeeze(-1)


class CNNDetector(nn.Module):
    """CNNDetection (Wang et al.): an ImageNet CNN fine-tuned end to end with a 1-logit head (fake logit).

    `net` is an EfficientNet-Lite (`extract_features` then global average pooling)."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net
        self.head = nn.Linear(net._fc.in_features, 1)

    def pooled(self, images: torch.Tensor) -> torch.Tensor:
        return self.net.extract_features(images).mean(dim=(2, 3))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.pooled(images)).squeeze(-1)


class CalibratedLinear(nn.Module):
    """Standardised features -> one linear logit -> a calibrated fake logit.

    `mean`/`std` standardise the features (fitted on the training set), `fc` is the fitted
    logistic regression, and `scale`/`shift` are Platt scaling fitted on held-out data:
    calibrated logit = scale * raw logit + shift, so sigmoid of it reads as a probability."""

    def __init__(self, feature_dim: int):
        super().__init__()
        self.fc = nn.Linear(feature_dim, 1)
        self.register_buffer("mean", torch.zeros(feature_dim))
        self.register_buffer("std", torch.ones(feature_dim))
        self.register_buffer("scale", torch.ones(()))
        self.register_buffer("shift", torch.zeros(()))

    def raw(self, features: torch.Tensor) -> torch.Tensor:
        return self.fc((features - self.mean) / self.std).squeeze(-1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.scale * self.raw(features) + self.shift
