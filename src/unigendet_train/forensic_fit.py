"""The forensic head (fitted and Platt-scaled by `unigendet.models.linear_fit`) on the recipe's views: the
row weights, the threshold (balanced accuracy, raised for photos as they are and circulated, and by source
when cross-fitted) and the novelty score it abstains on."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from unigendet.data.readers import read_source
from unigendet.data.records import Record
from unigendet.evaluation.folds import source_of
from unigendet.labels import FAKE
from unigendet.metrics.detection import threshold_at_fpr
from unigendet.models.linear_fit import fit_linear, platt
from unigendet.models.novelty import Novelty, fit_novelty
from unigendet.models.probes import CalibratedLinear

from .crossfit import out_of_source
from .forensic_config import CIRCULATED, ForensicConfig
from .forensic_features import ViewFeatures


def record_weights(cfg: ForensicConfig, records: list[Record]) -> np.ndarray | None:
    """Each record's weight in the head's fit: `extra_weight` for images of the extra source, 1 for
    the pool's; with `weigh_sources`, divided by the square root of its source's share of its class, so
    that a large source of photos (or fakes) does not set the boundary alone (None when all are 1)."""
    weight = np.ones(len(records))
    if cfg.extra and cfg.extra_weight != 1.0:
        if cfg.extra_weight <= 0:
            raise ValueError(f"--extra-weight must be positive, not {cfg.extra_weight}")
        extra = {Path(r.path).resolve() for r in read_source(cfg.extra, strict=True)}
        weight *= np.array([cfg.extra_weight if Path(r.path).resolve() in extra else 1.0 for r in records])
    if cfg.weigh_sources:
        counts = Counter((r.label, source_of(r)) for r in records)
        weight /= np.sqrt([counts[r.label, source_of(r)] for r in records])
    return None if (weight == 1.0).all() else weight


def raw_logits(head: CalibratedLinear, feats: ViewFeatures, records: list[Record]) -> np.ndarray:
    """The head's uncalibrated logits on the records' centre crops."""
    with torch.no_grad():
        return head.raw(torch.from_numpy(feats(records, 1, augmented=False))).numpy().astype(np.float64)


def head_p(head: CalibratedLinear, x: np.ndarray) -> np.ndarray:
    """The head's calibrated p_fake of feature rows."""
    with torch.no_grad():
        return torch.sigmoid(head(torch.from_numpy(np.asarray(x, dtype=np.float32)))).numpy().astype(np.float64)


def calibrated_p(head: CalibratedLinear, feats: ViewFeatures, records: list[Record]) -> np.ndarray:
    """The head's calibrated p_fake on the records' centre crops."""
    return head_p(head, feats(records, 1, augmented=False))


@dataclass
class FittedHead:
    """A head fitted on views of training images and calibrated on held-out ones, its threshold, and
    (with `abstain`) the novelty score and the level beyond which it abstains."""

    head: CalibratedLinear
    threshold: float
    train_views: int
    novelty: Novelty | None = None
    novelty_threshold: float = float("inf")

    def p(self, x: np.ndarray) -> np.ndarray:
        return head_p(self.head, x)


def fit_calibrated(cfg: ForensicConfig, feats: ViewFeatures, train: list[Record], cal: list[Record],
                   cross: bool = True) -> FittedHead:
    """The head fitted on views of `train` and calibrated on `cal`; with `max_fpr`, its threshold raised
    for the calibration photos (and, `threshold_by` source, for every training source's photos scored
    out of their source); with `abstain`, the novelty score (`cross`: False inside a cross-fit)."""
    aug = cfg.augments()
    views = cfg.views if aug else 1
    x = feats(train, views, augmented=aug)
    y = np.repeat([r.label == FAKE for r in train], views)
    weight = record_weights(cfg, train)
    head = fit_linear(x, y, cfg.c, cfg.seed, None if weight is None else np.repeat(weight, views))
    threshold = platt(head, raw_logits(head, feats, cal), np.array([r.label == FAKE for r in cal]))
    circulated = ViewFeatures(cfg, protocol=CIRCULATED)
    if cfg.max_fpr:
        photos = [r for r in cal if r.label != FAKE]
        threshold = photo_threshold(threshold, [calibrated_p(head, f, photos) for f in (feats, circulated)],
                                    cfg.max_fpr)
    fitted = FittedHead(head, threshold, int(len(y)))
    if not cross or (cfg.threshold_by == "val" and not cfg.abstain):
        return fitted
    if cfg.threshold_by not in ("val", "source"):
        raise ValueError(f"--threshold-by must be val or source, not {cfg.threshold_by!r}")
    by_view = {"native": feats, "circulated": circulated}
    oos = out_of_source(lambda t, c: fit_calibrated(cfg, feats, t, c, cross=False).p,
                        lambda recs, view: by_view[view](recs, 1, augmented=False), train, cal, cfg.crossfit)
    if cfg.threshold_by == "source" and cfg.max_fpr:
        fitted.threshold = max(fitted.threshold, oos.photo_threshold(cfg.max_fpr))
    if cfg.abstain:
        fitted.novelty = fit_novelty(feats(train, 1, augmented=False), seed=cfg.seed)
        fitted.novelty_threshold = oos.novelty_threshold(cfg.abstain)
    return fitted


def photo_threshold(threshold: float, photo_scores: list[np.ndarray], max_fpr: float) -> float:
    """`threshold`, raised until at most `max_fpr` of the photos are called fake in every one of the
    ways they were seen (e.g. as they are and circulated)."""
    return max([threshold] + [threshold_at_fpr(p, max_fpr) for p in photo_scores])
