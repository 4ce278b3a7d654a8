"""`unigendet eval folds`: a forensic recipe on held-out folds (by source or by family).

The protocol (folds, scores, summaries, the results schema) is `unigendet.evaluation.folds`; this
module is the recipe it fits once per fold: `FrozenRecipe` fits the head on cached features of
frozen networks (seconds a fold), `TunedRecipe` trains the whole detector (10-25 minutes a fold on
2 cores). Writes OUT/folds.json (the schema), OUT/table.md and OUT/scores.csv (every test image's
out-of-fold p_fake per view, for later analysis).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from unigendet.data.degrade import get_degradation
from unigendet.data.imageio import open_image
from unigendet.data.readers import read_source
from unigendet.data.records import Record
from unigendet.evaluation.folds import (
    FoldsResult,
    ScoredFold,
    Scores,
    fold_table,
    make_folds,
    score_folds,
    summary_table,
)
from unigendet.models.novelty import abstains, novelty_scores

from .forensic import fit_detector
from .forensic_config import CIRCULATED, ForensicConfig
from .forensic_features import ViewFeatures
from .forensic_fit import fit_calibrated


def extra_records(cfg: ForensicConfig) -> list[Record]:
    """The extra source's train split, which joins every fit (e.g. regenerated copies of the photos)."""
    return [r for r in read_source(cfg.extra, strict=True) if r.split == "train"] if cfg.extra else []


class FrozenRecipe:
    """A recipe with frozen networks: fit and score from the feature cache."""

    def __init__(self, cfg: ForensicConfig):
        self.cfg, self.extra = cfg, extra_records(cfg)
        self.feats = {"native": ViewFeatures(cfg), "circulated": ViewFeatures(cfg, protocol=CIRCULATED)}

    def fit(self, train: list[Record], calibrate: list[Record]):
        fitted = fit_calibrated(self.cfg, self.feats["native"], train + self.extra, calibrate)
        return fitted, fitted.threshold

    def score(self, fitted, records: list[Record], view: str) -> Scores:
        x = self.feats[view](records, 1, augmented=False)
        p = fitted.p(x)
        unsure = None
        if fitted.novelty is not None:
            unsure = abstains(p, novelty_scores(fitted.novelty, x), fitted.threshold, fitted.novelty_threshold)
        return Scores(p, unsure)


class TunedRecipe:
    """A recipe that fine-tunes the networks: each fit is a whole training run, and scoring runs the
    tuned detector on the images (with its own abstention rule)."""

    def __init__(self, cfg: ForensicConfig):
        self.cfg, self.extra = cfg, extra_records(cfg)

    def fit(self, train: list[Record], calibrate: list[Record]):
        detector, _ = fit_detector(self.cfg, train + self.extra, calibrate)
        return detector, detector.threshold

    def score(self, detector, records: list[Record], view: str) -> Scores:
        degrade = get_degradation(CIRCULATED if view == "circulated" else "")
        found = detector.crop_scores([degrade(open_image(r.path)) for r in records])
        return Scores(np.array([c.p_fake for c in found]), np.array([c.novel for c in found], dtype=bool))


def recipe_for(cfg: ForensicConfig):
    return TunedRecipe(cfg) if cfg.tune_epochs else FrozenRecipe(cfg)


@dataclass(frozen=True)
class FoldsConfig(ForensicConfig):
    """Leave-one-source-out (or -family-out) folds of a forensic recipe: fit without each held-out
    part, score it at the threshold the recipe fitted, summarise photo FPR, abstention and AUC."""

    by: str = "source"  # source | family
    min_files: int = 40  # source folds: sources with fewer files are held out in groups of at least this many
    recipe_name: str = "forensic"  # the row's name in tables
    out: str = "runs/folds"


def write_scores(path: Path, scored: list[ScoredFold]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        views = list(scored[0].scores) if scored else []
        w.writerow(["path", "label", "generator", "source", "fold", "threshold"]
                   + [f"{k}_{v}" for v in views for k in ("p", "uncertain")])
        for f in scored:
            for i, r in enumerate(f.test):
                row = [str(r.path), "fake" if f.is_fake[i] else "real", r.generator, r.source, f.name,
                       f"{f.threshold:.6f}"]
                for v in views:
                    s = f.scores[v]
                    row += [f"{s.p[i]:.6f}", "" if s.uncertain is None else int(s.uncertain[i])]
                w.writerow(row)


def run_folds(cfg: FoldsConfig) -> FoldsResult:
    t0 = time.time()
    pool = read_source(cfg.data, strict=True)
    folds = make_folds(pool, cfg.by, cfg.min_files)
    recipe = recipe_for(ForensicConfig(**{f.name: getattr(cfg, f.name) for f in dataclasses.fields(ForensicConfig)}))

    def said(f: ScoredFold) -> None:
        y = f.is_fake
        s = f.scores["native"]
        print(f"[folds] {f.name}: {int((~y).sum())} photos, {int(y.sum())} fakes, threshold {f.threshold:.3f}, "
              f"photos called fake {s.called_fake(f.threshold)[~y].mean() if (~y).any() else float('nan'):.1%} "
              f"({time.time() - t0:.0f} s)", flush=True)

    scored = score_folds(folds, recipe, progress=said)
    result = FoldsResult.of(cfg.by, cfg.recipe_name, scored, dataclasses.asdict(cfg))
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "folds.json").write_text(json.dumps(result.to_json(), indent=2))
    (out / "table.md").write_text(summary_table([result]) + "\n" + fold_table(result) + "\n"
                                  + fold_table(result, "circulated"))
    write_scores(out / "scores.csv", scored)
    return result
