"""In-the-wild detection: the leave-one-generator-family-out table on wild-train, and CNNDetection.

Every row is a `unigendet train forensic` recipe (a config variant). Per held-out family, the
head is fitted on wild-train's train split without that family, calibrated (Platt scaling and
the balanced-accuracy threshold) on the other families' val images and half of the val reals,
and tested on the family's fakes against the other half of the val reals (folds and halves:
`unigendet.evaluation.families.logo_folds`). The CNNDetection column is the shipped procedure:
fit on the whole train split, calibrate on the whole val split, then score
../shared/data/cnndetection-ranking (each generator's fakes against all reals). Nothing here is
selected on CNNDetection. `--baseline RUN` adds already trained detectors (e.g. the demo's
runs/detector) as rows scored on the same test sets, without refitting.

    python bench/wild_detection.py --out runs/wild-bench [--baseline runs/detector ...]

Writes OUT/table.md and OUT/results.json. Features are cached under --cache.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import numpy as np

from unigendet.data.readers import read_source
from unigendet.detectors import load_detector
from unigendet.evaluation.families import logo_folds
from unigendet.labels import FAKE
from unigendet.metrics import (
    average_precision,
    balanced_accuracy,
    balanced_threshold,
    expected_calibration_error,
    roc_auc,
)
from unigendet_train.forensic import ForensicConfig, ViewFeatures, calibrated_p, fit_calibrated

SHARED = Path(__file__).resolve().parents[2] / "shared"
NO_AUG = dict(views=1, jpeg_prob=0.0, blur_prob=0.0, flip=False, rot90=False, jitter=0.0)


def recipes(taef2: Path | None, corpus: Path | None) -> dict[str, ForensicConfig]:
    base = ForensicConfig()
    rows = {
        "taps, no augmentation": dataclasses.replace(base, backbones="efficientnet-lite0-taps", **NO_AUG),
        "taps, aligned augmentation": dataclasses.replace(base, backbones="efficientnet-lite0-taps"),
        "taps + residual stats, aligned augmentation": dataclasses.replace(
            base, backbones="efficientnet-lite0-taps,residual-stats"),
    }
    rows["high-pass taps + residual stats, aligned augmentation"] = dataclasses.replace(
        base, backbones="efficientnet-lite0-taps-hp,residual-stats")
    rows["taps + high-pass taps + residual stats, aligned augmentation (shipped)"] = base
    if taef2 is not None:
        rows["+ TAEF2 reconstruction pairs"] = dataclasses.replace(base, recon=str(taef2))
    if corpus is not None:
        rows["+ built-in corpus mixed in"] = dataclasses.replace(base, extra=str(corpus))
    return rows


def metrics(p: np.ndarray, is_fake: np.ndarray, threshold: float) -> dict[str, float]:
    return {"auc": roc_auc(p, is_fake), "ap": average_precision(p, is_fake),
            "bal_acc": balanced_accuracy(p, is_fake, threshold),
            "ece": expected_calibration_error(p, is_fake)}


def per_generator_auc(p: np.ndarray, records) -> dict[str, float]:
    is_fake = np.array([r.label == FAKE for r in records])
    out = {}
    for g in sorted({r.generator for r in records if r.label == FAKE}):
        m = ~is_fake | np.array([r.generator == g for r in records])
        out[g] = roc_auc(p[m], is_fake[m])
    return out


class Row:
    """One recipe: fit on some records, calibrate on others, score any."""

    def __init__(self, cfg: ForensicConfig):
        self.cfg, self.feats = cfg, ViewFeatures(cfg)
        self.recon = ViewFeatures(cfg, recon=True) if cfg.recon else None
        self.extra = [r for r in read_source(cfg.extra) if r.split == "train"] if cfg.extra else []

    def fit(self, train, cal):
        head, threshold, _ = fit_calibrated(self.cfg, self.feats, train + self.extra, cal, self.recon)
        return head, threshold

    def score(self, head, records) -> np.ndarray:
        return calibrated_p(head, self.feats, records)


def evaluate_row(name, score_fold, score_cnn, folds, cnn) -> dict:
    per_family = {}
    for fold in folds:
        p, threshold = score_fold(fold)
        per_family[fold.family] = metrics(p, np.array([r.label == FAKE for r in fold.test]), threshold)
    out = {"logo": per_family, "logo_mean": {k: float(np.mean([m[k] for m in per_family.values()]))
                                             for k in ("auc", "ap", "bal_acc", "ece")}}
    if cnn:
        p, threshold = score_cnn()
        gens = per_generator_auc(p, cnn)
        out["cnn"] = {"per_generator_auc": gens, "mean_auc": float(np.mean(list(gens.values()))),
                      **metrics(p, np.array([r.label == FAKE for r in cnn]), threshold)}
    print(f"{name}: LOGO AUC {out['logo_mean']['auc']:.3f} bal.acc {out['logo_mean']['bal_acc']:.3f}"
          + (f"; CNNDetection AUC {out['cnn']['mean_auc']:.3f}" if cnn else ""), flush=True)
    return out


def evaluate_recipe(name, row, folds, train, val, cnn) -> dict:
    """`evaluate_row` for a row with `fit(train, cal) -> (model, threshold)` and `score(model, records)`:
    per fold, fit without the family and calibrate on its calibration set; for CNNDetection, fit on
    the whole train split and calibrate on val."""

    def fold_scores(fold):
        model, threshold = row.fit(fold.train, fold.calibrate)
        return row.score(model, fold.test), threshold

    def cnn_scores():
        model, threshold = row.fit(train, val)
        return row.score(model, cnn), threshold

    return evaluate_row(name, fold_scores, cnn_scores, folds, cnn)


def table(results: dict) -> str:
    fams = sorted(next(iter(results.values()))["logo"])
    lines = ["| recipe | " + " | ".join(fams) + " | LOGO mean AUC | AP | bal. acc | ECE | CNNDet. AUC | bal. acc |",
             "|---" * (len(fams) + 7) + "|"]
    for name, r in results.items():
        m, c = r["logo_mean"], r.get("cnn", {})
        cells = [f"{r['logo'][f]['auc']:.2f}" for f in fams]
        cells += [f"{m['auc']:.3f}", f"{m['ap']:.3f}", f"{m['bal_acc']:.3f}", f"{m['ece']:.3f}",
                  f"{c['mean_auc']:.3f}" if c else "-", f"{c['bal_acc']:.3f}" if c else "-"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def save(out: Path, results: dict) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    (out / "table.md").write_text(table(results))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(SHARED / "data" / "wild-train"))
    ap.add_argument("--cnn", default=str(SHARED / "data" / "cnndetection-ranking"))
    ap.add_argument("--taef2", default=str(SHARED / "weights" / "taef2"))
    ap.add_argument("--corpus", default="runs/data", help="built-in corpus for the mixed row (skipped if absent)")
    ap.add_argument("--baseline", action="append", default=[], help="a trained detector run to add as a row")
    ap.add_argument("--only", action="append", default=[], help="run only recipes whose name contains this")
    ap.add_argument("--cache", default="runs/forensic-cache")
    ap.add_argument("--out", default="runs/wild-bench")
    ap.add_argument("--merge", action="store_true", help="add to OUT/results.json instead of replacing it")
    args = ap.parse_args(argv)
    t0 = time.time()
    pool = read_source(args.data, strict=True)
    folds = logo_folds(pool)
    train = [r for r in pool if r.split == "train"]
    val = [r for r in pool if r.split == "val"]
    cnn = read_source(args.cnn, strict=True) if Path(args.cnn).exists() else []
    taef2 = Path(args.taef2) if (Path(args.taef2) / "taef2_encoder.pth").is_file() else None
    corpus = Path(args.corpus) if (Path(args.corpus) / "manifest.csv").is_file() else None
    out = Path(args.out)
    results = json.loads((out / "results.json").read_text()) if args.merge and (out / "results.json").is_file() else {}
    for name, cfg in recipes(taef2, corpus).items():
        if args.only and not any(s in name for s in args.only):
            continue
        cfg = dataclasses.replace(cfg, data=args.data, cache=args.cache)
        results[name] = evaluate_recipe(name, Row(cfg), folds, train, val, cnn)
        results[name]["config"] = dataclasses.asdict(cfg)
        save(out, results)  # after every row: a stopped run keeps what it measured
    for run in args.baseline:
        det = load_detector(run)
        p = dict(zip([str(r.path) for r in pool + cnn], det.predict([str(r.path) for r in pool + cnn]), strict=True))

        def scores_of(records, p=p):
            return np.array([p[str(r.path)] for r in records])

        def fit_threshold(records, scores_of=scores_of):
            return balanced_threshold(scores_of(records), np.array([r.label == FAKE for r in records]))

        def fold_base(fold, scores_of=scores_of, fit_threshold=fit_threshold):
            return scores_of(fold.test), fit_threshold(fold.calibrate)

        def cnn_base(scores_of=scores_of, fit_threshold=fit_threshold):
            return scores_of(cnn), fit_threshold(val)

        results[f"{det.kind} ({run}, built-in data only)"] = evaluate_row(run, fold_base, cnn_base, folds, cnn)
    save(out, results)
    print(table(results))
    print(f"{time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
