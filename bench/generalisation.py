"""The generalisation ablation table: which detector generalises to generators it never saw?

Run after `make demo` (it builds runs/data and runs/data-rich; missing corpora are built
here). Every row is a project component trained only on built-in corpora (`unigendet data build`):

    default   the `make demo` corpus (4 fake processes)
    rich      --generator-set rich: + nearest/bilinear/bicubic upsamplers and three more
              autoencoder families, 30% of pairs through one shared JPEG, 16 crops per photo

Model selection uses half "b" of the rich corpus's val photos only (`photo_half`); ensembles are
stacked on half "a". Nothing reported is tuned on the reported sets:

    CNNDetection  ../shared/data/cnndetection-ranking (10 GAN-era generators, 20 + 20 each)
    held-out      --generator-set heldout --only-split test --size 192 --crops-per-photo 24: photos of
                  the test split and fake processes no training corpus uses (Real-ESRGAN animevideov3 x3/x4,
                  Lanczos x3)

    python bench/unified_ablation.py                                  # UniGenDet rows (optional)
    python bench/generalisation.py --out runs/generalisation          # ~1 h on 2 CPU cores
    python bench/generalisation.py --out runs/generalisation --reuse  # re-evaluate trained rows

Writes OUT/table.md (the tables of docs/results-history.md) and OUT/results.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from unigendet.corpus.build import PRESETS, CorpusConfig, build_corpus
from unigendet.data.readers import read_source
from unigendet.data.records import photo_half
from unigendet.detectors import load_detector, use_feature_cache
from unigendet.evaluation.detection import evaluate_detector, score_report
from unigendet.labels import FAKE
from unigendet.metrics import calibrate_threshold
from unigendet_train.catalogue import load_stages

SHARED = Path(__file__).resolve().parents[2] / "shared"


@dataclass(frozen=True)
class Row:
    name: str
    stage: str
    data: str  # "default" | "rich"
    options: dict = field(default_factory=dict)
    group: str = ""


def rows(taef2: str | None) -> list[Row]:
    out = [
        Row("linear probe, EfficientNet (baseline)", "linear-probe", "default", {}, "baselines"),
        Row("spectrum probe = linear probe, residual-stats (baseline)", "linear-probe", "default",
            {"backbone": "residual-stats"}, "baselines"),
        Row("linear probe, EfficientNet", "linear-probe", "rich", {}, "richer data"),
        Row("linear probe, residual-stats", "linear-probe", "rich", {"backbone": "residual-stats"}, "richer data"),
    ]
    for backbone in ("efficientnet-lite0", "residual-stats"):
        for variant in ("teacher", "ts-real", "ts-fakes", "full"):
            out.append(Row(f"GenDet {variant}, {backbone}", "gendet", "rich",
                           {"variant": variant, "backbone": backbone}, "GenDet rows"))
    out += [
        Row("one-class Gaussian, residual-stats", "oneclass", "rich", {"backbone": "residual-stats"},
            "real images only"),
        Row("one-class Gaussian, EfficientNet", "oneclass", "rich", {"backbone": "efficientnet-lite0"},
            "real images only"),
        Row("reconstruction error, conv-vae trained on reals", "recon", "rich", {}, "real images only"),
    ]
    if taef2:
        out.append(Row("reconstruction error, TAEF2", "recon", "rich", {"codec": "taef2", "codec_path": taef2},
                       "real images only"))
    out += [
        Row("NPR residual net", "npr", "default", {"epochs": 30}, "native-resolution residuals"),
        Row("NPR residual net", "npr", "rich", {"epochs": 20}, "native-resolution residuals"),
        Row("NPR residual net, blur+JPEG augmentation (p 0.1 each)", "npr", "rich",
            {"epochs": 20, "blur_prob": 0.1, "jpeg_prob": 0.1}, "native-resolution residuals"),
    ]
    return out


def slug(row: Row) -> str:
    s = "".join(c if c.isalnum() else "-" for c in f"{row.stage}-{row.data}-{row.name.lower()}")
    return "-".join(filter(None, s.split("-")))[:80]


def ensure_corpora(out: Path, default: str, rich: str) -> dict[str, str]:
    corpora = {"default": default, "rich": rich, "heldout": str(out / "data-heldout")}
    for name, path in corpora.items():
        cfg = CorpusConfig(out=path, **PRESETS[name])
        if not (Path(cfg.out) / "manifest.csv").is_file():
            print(f"[bench] building the {name} corpus in {cfg.out}", flush=True)
            build_corpus(cfg, progress=False)
    return corpora


def train(row: Row, run: Path, corpora: dict[str, str], cache: Path) -> float:
    config_cls, fn = load_stages()[row.stage]
    fields = {"data": corpora[row.data], "out": str(run), **row.options}
    if "cache" in config_cls.__dataclass_fields__:
        fields["cache"] = str(cache)
    t0 = time.perf_counter()
    fn(config_cls(**fields))
    return time.perf_counter() - t0


def evaluate(run: Path, sets: dict[str, list], select: list, cache: Path) -> dict:
    """Selection-half means, and each reported set at the threshold calibrated on that half
    (the selection half is scored once)."""
    detector = use_feature_cache(load_detector(run), cache)
    sel = evaluate_detector(detector, select)
    threshold = calibrate_threshold(sel.scores, [r.label == FAKE for r in select])
    out = {"name": detector.name, "select": sel.report["mean"]}
    for name, records in sets.items():
        rep = score_report(detector.predict([str(r.path) for r in records]), records, threshold)
        out[name] = {"mean": rep["mean"], "threshold": threshold,
                     "per_generator": {g: r["auc"] for g, r in rep["per_generator"].items()}}
    return out


def smoothness_cue(sets: dict[str, list]) -> str:
    """Diagnostic, no training: per-generator AUC of "smoother = fake" (minus the fine-texture
    energy, the cue every upsampling-made fake in the built-in corpora carries)."""
    from PIL import Image

    from unigendet.corpus.texts import hf_energy

    lines = ["| set | " + "per-generator AUC of -texture energy" + " | mean |", "|---|---|---|"]
    for name, records in sets.items():
        scores = -np.array([hf_energy(Image.open(r.path).convert("RGB")) for r in records])
        rep = score_report(scores, records)
        per = ", ".join(f"{g} {pct(v['auc'])}" for g, v in sorted(rep["per_generator"].items()))
        lines.append(f"| {name} | {per} | {pct(rep['mean']['auc'])} |")
    return "\n".join(lines) + "\n"


def pct(x: float) -> str:
    return "-" if x is None or not np.isfinite(x) else f"{100 * x:.1f}"


def tables(results: dict, order: list[str], winner: str) -> str:
    lines = ["| group | row | train data | select AUC (val b) | CNNDet AUC | CNNDet AP | CNNDet acc@0.5 | "
             "CNNDet acc@val-thr | held-out AUC |", "|---" * 9 + "|"]
    for key in order:
        r = results[key]
        c, h = r["cnndetection"]["mean"], r.get("heldout", {}).get("mean", {})
        mark = "**" if key == winner else ""
        lines.append(f"| {r['group']} | {mark}{r['row']}{mark} | {r['data']} | {pct(r['select']['auc'])} | "
                     f"{pct(c['auc'])} | {pct(c['ap'])} | {pct(c['acc'])} | {pct(c.get('acc_calibrated', c['acc']))} | "
                     f"{pct(h.get('auc'))} |")
    gens = sorted(results[order[0]]["cnndetection"]["per_generator"])
    lines += ["", "CNNDetection ROC-AUC per generator:", "",
              "| row | train data | " + " | ".join(gens) + " | mean |", "|---" * (len(gens) + 3) + "|"]
    for key in order:
        r = results[key]
        per = r["cnndetection"]["per_generator"]
        lines.append(f"| {r['row']} | {r['data']} | " + " | ".join(pct(per[g]) for g in gens) +
                     f" | {pct(r['cnndetection']['mean']['auc'])} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    # Setup
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/generalisation")
    p.add_argument("--default-data", default="runs/data")
    p.add_argument("--rich-data", default="runs/data-rich", help="`make demo` builds it with the rich preset")
    p.add_argument("--cnndetection", default=str(SHARED / "data/cnndetection-ranking/manifest.csv"))
    p.add_argument("--taef2", default=str(SHARED / "weights/taef2"))
    p.add_argument("--unified", nargs="*", default=["runs/ablation/gduf-smsa", "runs/ablation/gduf-latent-free"],
                   help="trained UniGenDet runs to add as rows (bench/unified_ablation.py writes these)")
    p.add_argument("--ensemble-top", type=int, default=3)
    p.add_argument("--reuse", action="store_true", help="keep rows already trained under --out")
    a = p.parse_args(argv)
    out, cache = Path(a.out), Path(a.out) / "features"
    taef2 = a.taef2 if (Path(a.taef2) / "taef2_encoder.pth").is_file() else None
    corpora = ensure_corpora(out, a.default_data, a.rich_data)
    rich = read_source(corpora["rich"])
    select = photo_half([r for r in rich if r.split == "val"], "b")
    sets = {"cnndetection": read_source(a.cnndetection), "heldout": read_source(corpora["heldout"])}
    print(f"[bench] select on {len(select)} val images; report on " +
          ", ".join(f"{k} {len(v)}" for k, v in sets.items()), flush=True)

    # Train and evaluate every row
    results, order = {}, []
    todo = [(r, out / "rows" / slug(r)) for r in rows(taef2)]
    todo += [(Row(f"UniGenDet {Path(u).name}", "unified", "default", {}, "UniGenDet"), Path(u))
             for u in a.unified if (Path(u) / "config.json").is_file() or (Path(u) / "checkpoints").is_dir()]
    for row, run in todo:
        secs = None
        if row.stage != "unified" and not (a.reuse and (run / "config.json").is_file()):
            secs = train(row, run, corpora, cache)
        t0 = time.perf_counter()
        res = evaluate(run, sets, select, cache)
        key = slug(row)
        results[key] = {"row": row.name, "group": row.group, "data": row.data, "run": str(run),
                        "train_seconds": secs, "eval_seconds": round(time.perf_counter() - t0, 1), **res}
        order.append(key)
        print(f"[bench] {row.name} ({row.data}): select {pct(res['select']['auc'])}, CNNDetection "
              f"{pct(res['cnndetection']['mean']['auc'])}, held-out {pct(res['heldout']['mean']['auc'])}", flush=True)

    # Ensemble of the best rows on the selection half, stacked on the other half
    best = sorted(order, key=lambda k: -results[k]["select"]["auc"])[: a.ensemble_top]
    ens_run = out / "rows" / "ensemble"
    config_cls, fn = load_stages()["ensemble"]
    fn(config_cls(members=tuple(results[k]["run"] for k in best), data=corpora["rich"], half="a", out=str(ens_run),
                  cache=str(cache), name=f"ensemble of the top {len(best)}"))
    res = evaluate(ens_run, sets, select, cache)
    results["ensemble"] = {"row": f"ensemble (top {len(best)} by select AUC, stacked on val half a)",
                           "group": "ensemble + calibration", "data": "rich", "run": str(ens_run),
                           "members": [results[k]["row"] for k in best], **res}
    order.append("ensemble")

    # Report: the winner is the best row on the selection half
    winner = max(order, key=lambda k: results[k]["select"]["auc"])
    md = tables(results, order, winner)
    md += "\nDiagnostic (no training): how well smoothness alone marks fakes\n\n"
    md += smoothness_cue({"select (val b)": select, **sets})
    (out / "table.md").write_text(md)
    (out / "results.json").write_text(json.dumps({"winner": winner, "order": order, "rows": results}, indent=2,
                                                 default=float))
    print(md)
    print(f"[bench] selected on val half b: {results[winner]['row']} ({results[winner]['run']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
