"""Detectors that put a trained head on a frozen backbone's pooled features: GenDet (teacher-
student discrepancy), the UnivFD linear probe, and the one-class Gaussian of real images.

After `use_cache(root)` the backbone's features of image files come from (and go to) a
`FeatureCache` there; the backbone itself is built on first use.
"""

from __future__ import annotations

import os
from abc import abstractmethod
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..backbones import Backbone, FeatureCache, Preprocess, create_backbone
from ..models.gendet import GenDet, GenDetConfig
from ..models.oneclass import GaussianOneClass
from ..models.probes import LinearProbe
from ..weights import load_weights
from .base import Detector, PathList, register_detector


class FeatureDetector(Detector):
    """A head on frozen backbone features (the backbone is built on first use)."""

    def __init__(self, name: str, head: nn.Module, backbone: str, backbone_path: str | None, device="cpu"):
        super().__init__(name, device)
        self.head = head.to(self.device).eval()
        self.backbone_name, self.backbone_path = backbone, backbone_path
        self._backbone: tuple[Backbone, Preprocess] | None = None
        self.cache_root: Path | None = None
        self.batch_size = 32

    def use_cache(self, root: str | os.PathLike | None) -> None:
        self.cache_root = None if root is None else Path(root)

    def backbone(self) -> tuple[Backbone, Preprocess]:
        if self._backbone is None:
            self._backbone = create_backbone(self.backbone_name, self.backbone_path, device=self.device)
        return self._backbone

    @torch.no_grad()
    def backbone_features(self, images: Sequence[Image.Image]) -> torch.Tensor:
        """(N, D) backbone features of decoded images, `batch_size` at a time."""
        model, pre = self.backbone()
        rows = [model(torch.stack([pre(im) for im in images[s : s + self.batch_size]]).to(self.device)).float().cpu()
                for s in range(0, len(images), self.batch_size)]
        return torch.cat(rows) if rows else torch.empty(0, model.feature_dim)

    def cached_features(self, paths: PathList) -> torch.Tensor:
        model, pre = self.backbone()
        return FeatureCache(self.cache_root, model, pre).features(paths, batch_size=self.batch_size)

    @abstractmethod
    def scores(self, features: torch.Tensor) -> np.ndarray:
        """p_fake for precomputed backbone features (N, D)."""

    def representation(self, features: torch.Tensor) -> torch.Tensor:
        """What the verdict is read from, given backbone features (the features themselves)."""
        return features

    def predict_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.scores(self.backbone_features(images))

    def image_features(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.representation(self.backbone_features(images)).numpy()

    def predict(self, paths: PathList) -> np.ndarray:
        return super().predict(paths) if self.cache_root is None else self.scores(self.cached_features(paths))

    def features(self, paths: PathList) -> np.ndarray:
        if self.cache_root is None:
            return super().features(paths)
        return self.representation(self.cached_features(paths)).numpy()

    def state(self, run_dir: Path) -> tuple[dict[str, Any], dict[str, nn.Module]]:
        return {"backbone": self.backbone_name, "backbone_path": self.backbone_path, **self.head_config()}, \
            {"model": self.head}

    @abstractmethod
    def head_config(self) -> dict[str, Any]:
        """What rebuilds the head (before its weights are loaded)."""

    @classmethod
    @abstractmethod
    def build_head(cls, config: dict[str, Any]) -> nn.Module:
        """An untrained head shaped by `head_config()`'s fields."""

    @classmethod
    def from_state(cls, run_dir: Path, config: dict[str, Any], device) -> FeatureDetector:
        head = cls.build_head(config)
        load_weights(head, run_dir / "model.safetensors")
        return cls(config.get("name", cls.kind), head, config["backbone"], config.get("backbone_path"), device)


@register_detector
class GenDetDetector(FeatureDetector):
    kind = "gendet"

    @torch.no_grad()
    def scores(self, features: torch.Tensor) -> np.ndarray:
        return self.head.score(features.to(self.device)).double().cpu().numpy()

    @torch.no_grad()
    def discrepancies(self, features: torch.Tensor) -> torch.Tensor:
        """(N, T * dim) flattened (N_t(x) - N_s(x))^2 for precomputed backbone features."""
        d = self.head.discrepancy(self.head.standardise(features.to(self.device)))
        return d.reshape(d.shape[0], -1).cpu()

    def representation(self, features: torch.Tensor) -> torch.Tensor:
        return self.discrepancies(features)

    def head_config(self) -> dict[str, Any]:
        return {"model": self.head.cfg.to_dict()}

    @classmethod
    def build_head(cls, config: dict[str, Any]) -> nn.Module:
        return GenDet(GenDetConfig.from_dict(config["model"]))


@register_detector
class LinearProbeDetector(FeatureDetector):
    kind = "linear-probe"

    @torch.no_grad()
    def scores(self, features: torch.Tensor) -> np.ndarray:
        return torch.sigmoid(self.head(features.to(self.device))).double().cpu().numpy()

    def head_config(self) -> dict[str, Any]:
        return {"feature_dim": self.head.fc.in_features}

    @classmethod
    def build_head(cls, config: dict[str, Any]) -> nn.Module:
        return LinearProbe(int(config["feature_dim"]))


@register_detector
class OneClassDetector(FeatureDetector):
    """Mahalanobis distance to a Gaussian of real features; no fake image is ever used."""

    kind = "oneclass"

    @torch.no_grad()
    def scores(self, features: torch.Tensor) -> np.ndarray:
        return self.head(features.to(self.device)).double().cpu().numpy()

    def head_config(self) -> dict[str, Any]:
        return {"feature_dim": int(self.head.mu.shape[0])}

    @classmethod
    def build_head(cls, config: dict[str, Any]) -> nn.Module:
        return GaussianOneClass(int(config["feature_dim"]))
