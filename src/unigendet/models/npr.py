"""NPR-style detector network (Tan et al., "Rethinking the up-sampling operations in CNN-based
generative network for generalizable deepfake detection", CVPR 2024).

Generators build images by upsampling, which ties each pixel to its neighbours inside small
blocks. The network never sees the image itself, only its neighbouring-pixel relationships:

    npr(x) = x - up(down(x))        down: keep one pixel per factor x factor block,
                                    up: nearest-neighbour repeat

and a small residual CNN with global pooling reads them at native resolution - images are never
resized (resizing would rewrite exactly these relationships), so any size goes through.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..images import npr_residual


@dataclass(frozen=True)
class NPRConfig:
    width: int = 32  # channels of the first stage; doubled at each later stage
    stages: int = 3  # the first keeps resolution, the others halve it
    factor: int = 2  # the upsampling factor whose traces are exposed

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> NPRConfig:
        unknown = set(d) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise ValueError(f"unknown NPRConfig fields {sorted(unknown)}")
        return cls(**d)


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.skip = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                     if stride != 1 or cin != cout else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(y)) + self.skip(x))


class NPRNet(nn.Module):
    """Images in [-1, 1] (B, 3, H, W), any H, W >= factor -> fake logits (B,)."""

    def __init__(self, cfg: NPRConfig = NPRConfig()):
        super().__init__()
        self.cfg = cfg
        w = cfg.width
        self.stem = nn.Sequential(nn.Conv2d(3, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU())
        blocks, cin = [], w
        for i in range(cfg.stages):
            cout = w * 2**i
            blocks.append(_Block(cin, cout, 1 if i == 0 else 2))
            cin = cout
        self.blocks = nn.Sequential(*blocks)
        self.feature_dim = cin
        self.head = nn.Linear(cin, 1)

    def pooled(self, images: torch.Tensor) -> torch.Tensor:
        # residuals are a few grey levels: scale them to unit-ish range for the first conv
        r = npr_residual(images, self.cfg.factor) * 8.0
        return self.blocks(self.stem(r)).mean(dim=(2, 3))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.head(self.pooled(images)).squeeze(-1)
