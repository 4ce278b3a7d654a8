"""Data for the stages on frozen-backbone features: records by split, cached features, metrics."""

from __future__ import annotations

from collections.abc import Callable

import torch

from unigendet.backbones import FeatureCache, create_backbone
from unigendet.data.readers import read_source
from unigendet.data.records import DataError, Record
from unigendet.metrics import detection_metrics


def records_by_split(records: list[Record], data: str) -> dict[str, list[Record]]:
    """Records by split; a training split with both classes is required."""
    splits: dict[str, list[Record]] = {}
    for r in records:
        splits.setdefault(r.split, []).append(r)
    train = splits.get("train", [])
    if {r.label for r in train} != {0, 1}:
        raise DataError(f"{data}: needs a 'train' split holding real and fake images (splits: {sorted(splits)})")
    return splits


def cached_features(data: str, backbone: str, backbone_path: str | None, cache: str, device: str,
                    splits: tuple[str, ...] = ("train", "val")):
    """({split: (features (N, D), labels (N,), records)} for the splits present, feature_dim), via the
    FeatureCache."""
    by_split = records_by_split(read_source(data), data)
    model, pre = create_backbone(backbone, backbone_path, device=device)
    fc = FeatureCache(cache, model, pre)
    out = {}
    for name in splits:
        recs = by_split.get(name, [])
        if recs:
            out[name] = (fc.features([r.path for r in recs]), torch.tensor([r.label for r in recs]), recs)
    return out, model.feature_dim


def evaluate(score: Callable[[torch.Tensor], torch.Tensor], data: dict) -> dict[str, dict]:
    """Detection metrics of `score` (features -> p_fake) on every split of `cached_features`' output."""
    return {name: detection_metrics(score(x).numpy(), y.numpy()) for name, (x, y, _) in data.items()}
