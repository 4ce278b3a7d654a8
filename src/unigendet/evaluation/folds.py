"""Held-out folds, scored: leave one generator family out, leave one source out, one results schema.

Leave-one-source-out asks what users meet. A source is where images came from (a repository, a
photo site, a camera collection); holding one out removes its photos and its fakes, train and val
alike, from fitting and calibration, so the fold sees a camera, a site or a re-encoding the recipe
never met. Sources with few files are dealt into groups held out together. Every image is tested in
exactly one fold, so every image gets one out-of-source score: a held-out fake source is ranked
against all photos as scored out of their own source, and each held-out source's photos are called
fake or not at the threshold the recipe fitted without them.

Leave-one-family-out (`families.logo_folds`) holds out a generator family and keeps every source of
photos in training; its folds are scored the same way and summarised beside it.

A recipe is anything with `fit(train, calibrate) -> (model, threshold)` and `score(model, records,
view) -> Scores` for the views "native" (images as they are) and "circulated" (as the web re-saves
them). Summaries are pure functions of the scored folds; `FoldsResult.to_json` is the schema that the
benches, the docs tables and the model card read.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from ..data.records import Record
from ..labels import FAKE
from ..metrics import roc_auc
from .families import Fold, logo_folds

SCHEMA = 1
VIEWS = ("native", "circulated")
MIN_SCORED = 5  # a fold's photos (fakes) enter the means when it holds at least this many


def source_of(r: Record) -> str:
    return r.source or "(no source)"


def _digest(name: str) -> str:
    return hashlib.sha1(name.encode()).hexdigest()


def source_folds(records: Sequence[Record], min_files: int = 40) -> list[Fold]:
    """Leave-one-source-out folds over a pool with train/val splits.

    Each source with at least `min_files` files is held out alone; smaller sources are ordered by
    the hash of their name and dealt into groups of at least `min_files` (a short last group joins
    the one before), each held out together. A fold trains on the train split of the other sources,
    calibrates on their val split, and tests every file of its own (both splits). A group of images
    (`Record.group_key`) that spans two sources would leak across the split: it is refused."""
    counts = Counter(source_of(r) for r in records)
    big = sorted(s for s, n in counts.items() if n >= min_files)
    bins: list[list[str]] = []
    for s in sorted((s for s, n in counts.items() if n < min_files), key=_digest):
        if not bins or sum(counts[t] for t in bins[-1]) >= min_files:
            bins.append([])
        bins[-1].append(s)
    if len(bins) > 1 and sum(counts[t] for t in bins[-1]) < min_files:
        last = bins.pop()
        bins[-1] += last
    owners: dict[str, set[str]] = {}
    for r in records:
        owners.setdefault(r.group_key, set()).add(source_of(r))
    if shared := sorted(g for g, s in owners.items() if len(s) > 1):
        raise ValueError(f"group {shared[0]!r} spans sources {sorted(owners[shared[0]])}: hold its sources out "
                         "together or regroup")
    folds = []
    for held in [[s] for s in big] + bins:
        out = set(held)
        rest = [r for r in records if source_of(r) not in out]
        name = held[0] if len(held) == 1 else f"{len(held)} small sources ({held[0]}, ...)"
        folds.append(Fold(name, tuple(held), [r for r in rest if r.split == "train"],
                          [r for r in rest if r.split == "val"], [r for r in records if source_of(r) in out]))
    return folds


def make_folds(records: Sequence[Record], by: str, min_files: int = 40) -> list[Fold]:
    """The folds of protocol `by`: "source" (`min_files` per held-out group) or "family"."""
    if by == "source":
        return source_folds(records, min_files)
    if by == "family":
        return logo_folds(records)
    raise ValueError(f"unknown fold protocol {by!r} (source | family)")


@dataclass
class Scores:
    """A recipe's scores of some records in one view: p_fake, and which it declines to call."""

    p: np.ndarray
    uncertain: np.ndarray | None = None  # bool per record; None: the recipe never abstains

    def called_fake(self, threshold: float) -> np.ndarray:
        fake = self.p > threshold
        return fake if self.uncertain is None else fake & ~self.uncertain


class Recipe(Protocol):
    def fit(self, train: list[Record], calibrate: list[Record]) -> tuple[Any, float]: ...

    def score(self, model: Any, records: list[Record], view: str) -> Scores: ...


@dataclass
class ScoredFold:
    """One fold's test records, the threshold fitted without them, and their scores per view."""

    name: str
    held: tuple[str, ...]
    threshold: float
    test: list[Record]
    scores: dict[str, Scores]

    @property
    def is_fake(self) -> np.ndarray:
        return np.array([r.label == FAKE for r in self.test], dtype=bool)


def score_folds(folds: Sequence[Fold], recipe: Recipe, views: Sequence[str] = VIEWS,
                progress=None) -> list[ScoredFold]:
    """Fit the recipe once per fold and score its test records in each view."""
    out = []
    for fold in folds:
        model, threshold = recipe.fit(fold.train, fold.calibrate)
        out.append(ScoredFold(fold.name, fold.held, float(threshold), list(fold.test),
                              {v: recipe.score(model, fold.test, v) for v in views}))
        if progress:
            progress(out[-1])
    return out


def _rate(mask: np.ndarray) -> float | None:
    return float(mask.mean()) if len(mask) else None


def fold_metrics(fold: ScoredFold, view: str, photos_p: np.ndarray) -> dict[str, float | int | None]:
    """A fold's numbers in one view: its photos called fake (`photo_fpr`) and uncertain, its fakes called
    fake (`recall`) and uncertain, and the AUC of its fakes against `photos_p` (the held-out photos)."""
    s, y = fold.scores[view], fold.is_fake
    fake, unsure = s.called_fake(fold.threshold), s.uncertain if s.uncertain is not None else np.zeros(len(y), bool)
    m: dict[str, float | int | None] = {"photos": int((~y).sum()), "fakes": int(y.sum()),
                                        "photo_fpr": _rate(fake[~y]), "photo_uncertain": _rate(unsure[~y]),
                                        "recall": _rate(fake[y]), "fake_uncertain": _rate(unsure[y]), "auc": None}
    if y.any() and len(photos_p):
        both = np.concatenate([s.p[y], photos_p])
        m["auc"] = roc_auc(both, np.r_[np.ones(int(y.sum()), bool), np.zeros(len(photos_p), bool)])
    m["bal_acc"] = (m["recall"] + 1 - m["photo_fpr"]) / 2 if y.any() and (~y).any() else None
    return m


def _mean(values: list) -> float | None:
    return float(np.mean(values)) if values else None


def summarise(metrics: list[dict]) -> dict[str, float | None]:
    """Means over folds (each fold with at least MIN_SCORED photos, resp. fakes) and the worst photo FPR."""
    ph = [m for m in metrics if m["photos"] >= MIN_SCORED]
    fk = [m for m in metrics if m["fakes"] >= MIN_SCORED and m["auc"] is not None]
    return {"photo_fpr_mean": _mean([m["photo_fpr"] for m in ph]),
            "photo_fpr_worst": max((m["photo_fpr"] for m in ph), default=None),
            "photo_uncertain_mean": _mean([m["photo_uncertain"] for m in ph]),
            "fake_auc_mean": _mean([m["auc"] for m in fk]),
            "recall_mean": _mean([m["recall"] for m in fk]),
            "fake_uncertain_mean": _mean([m["fake_uncertain"] for m in fk]),
            "fake_missed_mean": _mean([1 - m["recall"] - m["fake_uncertain"] for m in fk]),
            "bal_acc_mean": _mean([m["bal_acc"] for m in metrics if m["bal_acc"] is not None]),
            "photo_folds": len(ph), "fake_folds": len(fk)}


@dataclass
class FoldsResult:
    """A recipe's folds under one protocol: per-fold numbers per view, and their summary."""

    by: str
    recipe: str
    folds: list[dict]
    summary: dict[str, dict]
    config: dict = field(default_factory=dict)

    @classmethod
    def of(cls, by: str, recipe: str, scored: Sequence[ScoredFold], config: dict | None = None) -> FoldsResult:
        """Source folds rank a fold's fakes against every photo scored out of its own source; family
        folds against the photos of the fold itself (held out from every family fold's training)."""
        folds = [{"name": f.name, "held": list(f.held), "threshold": f.threshold, "views": {}} for f in scored]
        summary = {}
        views = [v for v in VIEWS if all(v in f.scores for f in scored)]
        for view in views:
            pooled = np.concatenate([f.scores[view].p[~f.is_fake] for f in scored]) if scored else np.empty(0)
            per = [fold_metrics(f, view, pooled if by == "source" else f.scores[view].p[~f.is_fake])
                   for f in scored]
            for row, m in zip(folds, per, strict=True):
                row["views"][view] = m
            summary[view] = summarise(per)
        return cls(by, recipe, folds, summary, dict(config or {}))

    def to_json(self) -> dict:
        return {"schema": SCHEMA, "by": self.by, "recipe": self.recipe, "summary": self.summary,
                "folds": self.folds, "config": self.config}

    @classmethod
    def from_json(cls, d: dict) -> FoldsResult:
        if d.get("schema") != SCHEMA:
            raise ValueError(f"fold results of schema {d.get('schema')!r}; this version reads schema {SCHEMA}")
        return cls(d["by"], d["recipe"], d["folds"], d["summary"], d.get("config", {}))


def merge_results(old: FoldsResult, new: FoldsResult) -> FoldsResult:
    """A recipe measured again on some family folds: its new folds replace or join the old ones and the
    summary covers every fold held (so a long row can be built a few folds at a time). Source folds
    rank fakes against photos pooled over all folds, so only whole source runs are comparable."""
    if old.by != new.by or new.by != "family":
        raise ValueError(f"only family folds merge fold by fold (have {old.by!r} and {new.by!r})")
    folds = {f["name"]: f for f in old.folds} | {f["name"]: f for f in new.folds}
    views = [v for v in VIEWS if all(v in f["views"] for f in folds.values())]
    summary = {v: summarise([f["views"][v] for f in folds.values()]) for v in views}
    return FoldsResult(new.by, new.recipe, list(folds.values()), summary, new.config)


def pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def num(x: float | None) -> str:
    return "-" if x is None else f"{x:.3f}"


def summary_table(results: Sequence[FoldsResult]) -> str:
    """One line per (recipe, protocol): photo FPR mean / worst, photos and fakes uncertain, fake AUC and
    recall, native then circulated."""
    head = ("| recipe | by | folds | view | photo FPR mean | worst | photos uncertain | fake AUC | recall | "
            "fakes uncertain |")
    lines = [head, "|---" * 10 + "|"]
    for r in results:
        for view, s in r.summary.items():
            lines.append(f"| {r.recipe} | {r.by} | {len(r.folds)} | {view} | {pct(s['photo_fpr_mean'])} | "
                         f"{pct(s['photo_fpr_worst'])} | {pct(s['photo_uncertain_mean'])} | {num(s['fake_auc_mean'])} "
                         f"| {pct(s['recall_mean'])} | {pct(s['fake_uncertain_mean'])} |")
    return "\n".join(lines) + "\n"


def fold_table(result: FoldsResult, view: str = "native") -> str:
    """Per fold: what it held out, its photos called fake and uncertain, its fakes' AUC and recall."""
    lines = ["| fold | photos | called fake | uncertain | fakes | AUC | recall | uncertain |", "|---" * 8 + "|"]
    for f in result.folds:
        m = f["views"].get(view)
        if m:
            lines.append(f"| {f['name']} | {m['photos']} | {pct(m['photo_fpr'])} | {pct(m['photo_uncertain'])} | "
                         f"{m['fakes']} | {num(m['auc'])} | {pct(m['recall'])} | {pct(m['fake_uncertain'])} |")
    return "\n".join(lines) + "\n"
