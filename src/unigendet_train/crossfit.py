"""Cross-fitting by source: every training image scored by a head that never saw its source.

A threshold fitted on the val split is fitted on photos of the sources it trained on; photos of a
camera or site it never met score higher, so it calls more of them fake than val said. Here the
training sources are dealt into `k` groups; for each, a head is fitted (and Platt-calibrated) on the
other groups alone and scores the group's images: their out-of-source p_fake, as they are and
circulated, and their out-of-source novelty (distance to the other groups' features). The shipped
threshold is then raised until the photos of the average source, so scored, are called fake at most
`max_fpr` of the time; the novelty threshold is the level that `abstain` of out-of-source images
exceed.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass

import numpy as np

from unigendet.data.records import Record
from unigendet.evaluation.folds import source_of
from unigendet.labels import FAKE
from unigendet.metrics import threshold_at_mean_fpr
from unigendet.models.novelty import fit_novelty, novelty_scores


def source_groups(records: list[Record], k: int) -> list[set[str]]:
    """The records' sources dealt into `k` groups of about equal size (largest source first, each to
    the lightest group; ties broken by name hash), never splitting a source."""
    counts = Counter(source_of(r) for r in records)
    groups: list[set[str]] = [set() for _ in range(max(1, min(k, len(counts))))]
    sizes = [0] * len(groups)
    for s in sorted(counts, key=lambda s: (-counts[s], hashlib.sha1(s.encode()).hexdigest())):
        i = int(np.argmin(sizes))
        groups[i].add(s)
        sizes[i] += counts[s]
    return groups


@dataclass
class OutOfSource:
    """Each record's out-of-source scores (rows follow `records`)."""

    records: list[Record]
    p: dict[str, np.ndarray]  # view -> calibrated p_fake
    novelty: np.ndarray

    @property
    def is_fake(self) -> np.ndarray:
        return np.array([r.label == FAKE for r in self.records], dtype=bool)

    def photo_threshold(self, max_fpr: float) -> float:
        """The lowest threshold keeping the average source's photos called fake at most `max_fpr`, in
        every view."""
        photos = ~self.is_fake
        sources = np.array([source_of(r) for r in self.records])[photos]
        return max(threshold_at_mean_fpr(p[photos], sources, max_fpr) for p in self.p.values())

    def novelty_threshold(self, abstain: float) -> float:
        return float(np.quantile(self.novelty, 1.0 - abstain))


def out_of_source(fit, centre, train: list[Record], cal: list[Record], k: int) -> OutOfSource:
    """`fit(train, cal) -> (p(x) -> calibrated p_fake)`; `centre(records, view) -> features`. Scores every
    record of `train + cal` with the head fitted without its source group."""
    records = train + cal
    groups = source_groups(records, k)
    if len(groups) < 2:
        raise ValueError("cross-fitting by source needs at least two sources")
    views = ("native", "circulated")
    p = {v: np.zeros(len(records)) for v in views}
    nov = np.zeros(len(records))
    owner = np.array([source_of(r) for r in records])
    for g in groups:
        held = np.isin(owner, list(g))
        inside = [r for r in train if source_of(r) not in g]
        inside_cal = [r for r in cal if source_of(r) not in g]
        if {r.label == FAKE for r in inside} != {True, False} or {r.label == FAKE for r in inside_cal} != {True, False}:
            raise ValueError(f"cross-fitting: without sources {sorted(g)[:3]} a class is missing; use fewer groups")
        predict = fit(inside, inside_cal)
        out = [r for r, h in zip(records, held, strict=True) if h]
        for v in views:
            p[v][held] = predict(centre(out, v))
        nov[held] = novelty_scores(fit_novelty(centre(inside, "native")), centre(out, "native"))
    return OutOfSource(records, p, nov)
