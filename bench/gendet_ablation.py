"""GenDet ablation (the paper's Tables 1-2 rows) beside the UnivFD linear probe, in one run.

Trains on the corpus's train split, on cached EfficientNet-Lite0 features, with each stage's
default config (`unigendet train gendet|linear-probe --help`), for several seeds; prints val and test
accuracy (threshold 0.5) and AP (fake = positive) as mean +- std over seeds, then test accuracy per
generator. `--cnn` adds the CNNDetection baseline (fine-tunes the CNN: minutes per seed on 2 cores).

    python bench/gendet_ablation.py [--data runs/data] [--cache runs/features] [--seeds 0 1 2] [--cnn]

The built-in corpus (`unigendet data build` -> runs/data) has ~400 train, 120 val, 144 test images,
so one seed's test accuracy moves in steps of 0.7 points and seeds disagree by several points.
Threads: 1 by default; these models are tiny and, on the 2-vCPU development VM, 2 threads next to
any other load are many times slower (libgomp spin-waits).
"""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import statistics
import sys
import time
from collections import defaultdict

import numpy as np
import torch

from unigendet.metrics import detection_metrics
from unigendet.models.gendet import VARIANTS
from unigendet_train.baselines import CNNConfig, LinearProbeConfig, fit_cnn, fit_linear_probe
from unigendet_train.features import cached_features
from unigendet_train.gendet import GenDetTrainConfig, fit_gendet, score_features

SPLITS = ("train", "val", "test")


def run_feature_methods(data: dict, seed: int) -> dict[str, tuple[dict[str, np.ndarray], float]]:
    """method -> ({split: p_fake}, training seconds) for the four GenDet variants and the linear probe."""
    x, y, _ = data["train"]
    out = {}
    for variant in VARIANTS:
        t0 = time.perf_counter()
        model, _ = fit_gendet(GenDetTrainConfig(variant=variant, seed=seed), x, y)
        secs = time.perf_counter() - t0
        out[f"gendet {variant}"] = ({s: score_features(model, f).numpy() for s, (f, _, _) in data.items()}, secs)
    t0 = time.perf_counter()
    probe, _ = fit_linear_probe(LinearProbeConfig(seed=seed), x, y)
    secs = time.perf_counter() - t0
    with torch.no_grad():
        out["linear probe"] = ({s: torch.sigmoid(probe(f)).numpy() for s, (f, _, _) in data.items()}, secs)
    return out


def run_cnn(data: dict, data_dir: str, seed: int) -> tuple[dict[str, np.ndarray], float]:
    _, _, train = data["train"]
    t0 = time.perf_counter()
    det, _ = fit_cnn(CNNConfig(data=data_dir, seed=seed), [r.path for r in train],
                     torch.tensor([r.label for r in train]))
    secs = time.perf_counter() - t0
    return {s: det.predict([r.path for r in recs]) for s, (_, _, recs) in data.items()}, secs


def fmt(values: list[float]) -> str:
    mean = 100 * statistics.fmean(values)
    return f"{mean:5.1f}" + (f" +-{100 * statistics.stdev(values):4.1f}" if len(values) > 1 else "")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="runs/data")
    ap.add_argument("--cache", default="runs/features")
    ap.add_argument("--backbone", default="efficientnet-lite0")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--cnn", action="store_true", help="add the CNNDetection baseline (slow)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)

    # Features of every split, once
    t0 = time.perf_counter()
    data, _ = cached_features(args.data, args.backbone, None, args.cache, "cpu", SPLITS)
    missing = {"train", "val", "test"} - set(data)
    if missing:
        raise SystemExit(f"{args.data}: no {sorted(missing)} split")
    print(f"data {args.data}: " + ", ".join(f"{s} {len(data[s][1])}" for s in SPLITS)
          + f"; features ({args.backbone}) in {time.perf_counter() - t0:.1f}s; torch threads {args.threads}")

    # Train every method for every seed
    results: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for seed in args.seeds:
        methods = run_feature_methods(data, seed)
        if args.cnn:
            methods["cnn (CNNDetection)"] = run_cnn(data, args.data, seed)
        for name, (scores, secs) in methods.items():
            results[name]["seconds"].append(secs)
            for split in ("val", "test"):
                m = detection_metrics(scores[split], data[split][1].numpy())
                results[name][f"{split}_acc"].append(m["acc"])
                results[name][f"{split}_ap"].append(m["ap"])
            labels, recs = data["test"][1].numpy(), data["test"][2]
            for gen in sorted({r.generator for r in recs}):
                idx = np.array([r.generator == gen for r in recs])
                results[name][f"gen:{gen}"].append(detection_metrics(scores["test"][idx], labels[idx])["acc"])
        print(f"seed {seed} done", file=sys.stderr)

    # Report
    n = len(args.seeds)
    print(f"\nmean +- std over {n} seed{'s' * (n > 1)} {args.seeds}; accuracy at p_fake > 0.5; AP with fake positive")
    cols = ("val_acc", "val_ap", "test_acc", "test_ap")
    print(f"{'method':<20}" + "".join(f"{c:>14}" for c in cols) + f"{'train s':>9}")
    for name, r in results.items():
        print(f"{name:<20}" + "".join(f"{fmt(r[c]):>14}" for c in cols) + f"{statistics.fmean(r['seconds']):9.1f}")
    gens = sorted(k[4:] for k in next(iter(results.values())) if k.startswith("gen:"))
    print("\ntest accuracy per generator (reals paired with each generator included)")
    print(f"{'method':<20}" + "".join(f"{g[:22]:>24}" for g in gens))
    for name, r in results.items():
        print(f"{name:<20}" + "".join(f"{fmt(r['gen:' + g]):>24}" for g in gens))
    defaults = {k: v for k, v in dataclasses.asdict(GenDetTrainConfig()).items()
                if k not in ("data", "out", "cache", "backbone_path", "device", "seed", "variant")}
    print(f"\nGenDet config: {defaults}")
    given = sys.argv[1:] if argv is None else argv
    print("reproduce: .venv/bin/python bench/gendet_ablation.py " + " ".join(shlex.quote(a) for a in given))


if __name__ == "__main__":
    main()
