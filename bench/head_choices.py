"""Choices of the in-the-wild head, over the leave-one-family-out folds of wild-train, with the
choice also made per fold without looking at the fold.

The candidates: the logistic regression's C (how strongly it is regularised), and how the training
rows are weighted. "class" weighs each class half, every image alike (the shipped fit); "family"
also gives each generator family an equal share of the fake class, "sqrt family" a share growing
with the square root of its size; "+ source" does the same for the reals by source repository.

Per held-out family and candidate, the head is fitted and calibrated as in `bench/wild_detection.py`
(circulation p 0.5, threshold at 5% photo FPR) and tested on the native and circulated views. The
"nested" row picks a candidate inside each fold's training split only: the fold's training families
are dealt into three groups; each group in turn is left out of the fit, and its training fakes are
scored against the fold's calibration photos, native and circulated. The best mean AUC wins.
Features come from the bench's cache (`runs/forensic-cache`), so a run takes minutes once the wild
bench has run.

    python bench/head_choices.py [--backbones efficientnet-lite0-taps,...] [--c 0.001 ...] [--weighting family ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections import Counter
from pathlib import Path

import numpy as np
import torch

from unigendet.data.readers import read_source
from unigendet.evaluation.families import family_of, logo_folds
from unigendet.labels import FAKE
from unigendet.metrics import balanced_accuracy, false_positive_rate, roc_auc
from unigendet.models.linear_fit import fit_linear, platt
from unigendet_train.forensic_config import CIRCULATED, ForensicConfig
from unigendet_train.forensic_features import ViewFeatures
from unigendet_train.forensic_fit import photo_threshold

SHARED = Path(__file__).resolve().parents[2] / "shared"
CS = (0.001, 0.003, 0.01, 0.03, 0.1)
WEIGHTINGS = ("class", "family", "sqrt family", "family + source", "sqrt family + source")


def row_weights(records, weighting: str) -> np.ndarray | None:
    """Per-record weights for `fit_linear` (which then balances the classes); None for "class"."""
    if weighting not in WEIGHTINGS:
        raise ValueError(f"weighting must be one of {WEIGHTINGS}, not {weighting!r}")
    if weighting == "class":
        return None

    def stratum(r):
        return family_of(r.generator) if r.label == FAKE else r.source

    n = Counter(stratum(r) for r in records)
    power = 0.5 if weighting.startswith("sqrt") else 1.0
    return np.array([n[stratum(r)] ** -power if r.label == FAKE or weighting.endswith("source") else 1.0
                     for r in records])


def family_groups(families: list[str], k: int = 3) -> list[set[str]]:
    """The families dealt, in sorted order, into k groups (fewer when there are fewer families)."""
    names = sorted(families)
    return [set(names[i::k]) for i in range(min(k, len(names)))]


class Features:
    """Cached rows of the recipe's features: augmented training views, centre crops as they are and
    circulated."""

    def __init__(self, cfg: ForensicConfig, train, scored):
        self.cfg = cfg
        self.views = cfg.views
        self.train_x = ViewFeatures(cfg)(train, cfg.views, augmented=True)
        self.native = ViewFeatures(cfg)(scored, 1, augmented=False)
        self.circulated = ViewFeatures(cfg, protocol=CIRCULATED)(scored, 1, augmented=False)
        self.train_row = {str(r.path): i for i, r in enumerate(train)}
        self.scored_row = {str(r.path): i for i, r in enumerate(scored)}

    def fit(self, records, choice: tuple[float, str]):
        c, weighting = choice
        rows = np.array([self.train_row[str(r.path)] for r in records])
        rows = (rows[:, None] * self.views + np.arange(self.views)).ravel()
        w = row_weights(records, weighting)
        return fit_linear(self.train_x[rows], np.repeat([r.label == FAKE for r in records], self.views), c,
                        self.cfg.seed, None if w is None else np.repeat(w, self.views))

    @torch.no_grad()
    def logits(self, head, records, circulated: bool = False, calibrated: bool = False) -> np.ndarray:
        x = (self.circulated if circulated else self.native)[[self.scored_row[str(r.path)] for r in records]]
        z = head(torch.from_numpy(x)) if calibrated else head.raw(torch.from_numpy(x))
        return z.numpy().astype(np.float64)


def p_fake(feats: Features, head, records, circulated: bool = False) -> np.ndarray:
    return 1 / (1 + np.exp(-feats.logits(head, records, circulated, calibrated=True)))


def inner_score(feats: Features, fold, choice) -> float:
    """Mean AUC (native and circulated) over the fold's training families left out a group at a time."""
    photos = [r for r in fold.calibrate if r.label != FAKE]
    families = {family_of(r.generator) for r in fold.train if r.label == FAKE}
    scores = []
    for group in family_groups(sorted(families)):
        def out(r, group=group):
            return r.label == FAKE and family_of(r.generator) in group
        head = feats.fit([r for r in fold.train if not out(r)], choice)
        test = [r for r in fold.train if out(r)] + photos
        y = np.array([r.label == FAKE for r in test])
        scores += [roc_auc(feats.logits(head, test, circulated=q), y) for q in (False, True)]
    return float(np.mean(scores))


def fold_metrics(feats: Features, fold, choice, max_fpr: float) -> dict[str, float]:
    head = feats.fit(fold.train, choice)
    threshold = platt(head, feats.logits(head, fold.calibrate), np.array([r.label == FAKE for r in fold.calibrate]))
    photos = [r for r in fold.calibrate if r.label != FAKE]
    threshold = photo_threshold(threshold, [p_fake(feats, head, photos, q) for q in (False, True)], max_fpr)
    y = np.array([r.label == FAKE for r in fold.test])
    out = {}
    for view, q in (("native", False), ("circulated", True)):
        p = p_fake(feats, head, fold.test, q)
        out |= {f"{view}_auc": roc_auc(p, y), f"{view}_bal_acc": balanced_accuracy(p, y, threshold),
                f"{view}_fpr": false_positive_rate(p, y, threshold)}
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(SHARED / "data" / "wild-train"))
    ap.add_argument("--backbones", default=ForensicConfig.backbones)
    ap.add_argument("--c", type=float, action="append", default=[], help=f"values of C (default {CS})")
    ap.add_argument("--weighting", action="append", default=[],
                    help=f"row weightings, each at the recipe's C (default {WEIGHTINGS})")
    ap.add_argument("--cache", default="runs/forensic-cache")
    ap.add_argument("--out", default="runs/head-choices.json")
    args = ap.parse_args(argv)
    cfg = dataclasses.replace(ForensicConfig(), data=args.data, cache=args.cache, backbones=args.backbones,
                              circulate_prob=0.5, max_fpr=0.05)
    pool = read_source(cfg.data, strict=True)
    scored = [r for r in pool if r.label == FAKE] + [r for r in pool if r.label != FAKE and r.split == "val"]
    feats = Features(cfg, [r for r in pool if r.split == "train"], scored)
    rows: dict[str, dict[str, list[float]]] = {}
    choices = {f"C {c}, class": (c, "class") for c in args.c or CS}
    choices |= {f"C {cfg.c}, {w}": (cfg.c, w) for w in args.weighting or WEIGHTINGS}
    chosen = {}
    for fold in logo_folds(pool):
        inner = {name: inner_score(feats, fold, choice) for name, choice in choices.items()}
        chosen[fold.name] = max(choices, key=inner.__getitem__)
        measured = {name: fold_metrics(feats, fold, choice, cfg.max_fpr) for name, choice in choices.items()}
        for name, m in [*measured.items(), ("nested", measured[chosen[fold.name]])]:
            for k, v in m.items():
                rows.setdefault(name, {}).setdefault(k, []).append(v)
        print(f"{fold.name}: chose {chosen[fold.name]}", flush=True)
    means = {name: {k: float(np.mean(v)) for k, v in m.items()} for name, m in rows.items()}
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"backbones": cfg.backbones, "chosen": chosen, "means": means}, indent=1))
    keys = list(next(iter(means.values())))
    print("| head | " + " | ".join(keys) + " |\n|---|" + "---|" * len(keys))
    for name, m in means.items():
        print(f"| {name} | " + " | ".join(f"{m[k]:.3f}" for k in keys) + " |")


if __name__ == "__main__":
    main()
