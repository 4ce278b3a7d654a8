"""UniGenDet ablations side by side, one run, built-in corpus, tiny preset.

One chain as `make demo` runs it - ViT pre-training, the codec, text-to-image pre-training - then:

1. Detection with the symbiotic latent tokens (SMSA, the paper's layout) vs latent-free: two GDUF
   runs from the same checkpoint, same seed and steps; cls-head accuracy at 0.5, AUC and AP on
   the val and test splits.
2. Generation after DIGA vs after the same number of flow-only steps (DIGA with align weight 0),
   both from the SMSA GDUF checkpoint, for several seeds (the seed drives the training batches,
   the time and noise draws and the sampling noise): Frechet and kernel distance on
   EfficientNet-Lite0 features and prompt adherence against crops held out from the training
   photos (`unigendet eval generate`), mean and spread over seeds, beside the references.

    python bench/unified_ablation.py [--data runs/data] [--out runs/ablation] [--seeds 0 1 2]

About 15 minutes on 2 CPU cores; every number comes from this run.
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np
import torch

from unigendet.data.readers import read_source
from unigendet.evaluation.run import EvalGenerateConfig, eval_generate
from unigendet.labels import FAKE
from unigendet.metrics import detection_report
from unigendet.unified.pipeline import UniGenDetPipeline
from unigendet.weights import resolve_checkpoint
from unigendet_train.codec import CodecConfig, run_codec
from unigendet_train.config import DIGAConfig, GDUFConfig, T2IConfig
from unigendet_train.data import load_bank
from unigendet_train.demo import GDUF_AFTER_T2I
from unigendet_train.unified import run_unified, score_bank
from unigendet_train.vit_pretrain import ViTPretrainConfig, run_vit_pretrain

FD = "frechet_efficientnet-lite0"
KD = "kernel_efficientnet-lite0"


def detection_rows(runs: dict[str, Path], records) -> dict[str, dict]:
    rows = {}
    for name, run in runs.items():
        pipe = UniGenDetPipeline.from_pretrained(run)
        for split in ("val", "test"):
            bank = load_bank([r for r in records if r.split == split], pipe.config.image_size, pipe.codec,
                             view=pipe.config.detect_view)
            p = score_bank(pipe.model, pipe.builder, bank)
            rows[f"{name} / {split}"] = detection_report(p, np.array(bank.labels) == FAKE)
    return rows


def table(rows: dict[str, dict], cols: list[str]) -> str:
    w = max(len(k) for k in rows) + 2
    lines = ["".ljust(w) + "".join(c.rjust(16) for c in cols)]
    for k, r in rows.items():
        lines.append(k.ljust(w) + "".join(f"{r.get(c, float('nan')):16.4f}" for c in cols))
    return "\n".join(lines)


def spread(per_seed: list[dict[str, dict]], name: str) -> dict[str, float]:
    out = {}
    for k in (FD, KD, "adherence"):
        vals = np.array([rows[name][k] for rows in per_seed])
        out[k], out[f"{k}_std"] = float(vals.mean()), float(vals.std())
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="runs/data")
    ap.add_argument("--out", default="runs/ablation")
    ap.add_argument("--vit-steps", type=int, default=600)
    ap.add_argument("--codec-steps", type=int, default=600)
    ap.add_argument("--t2i-steps", type=int, default=800)
    ap.add_argument("--gduf-steps", type=int, default=200)
    ap.add_argument("--diga-steps", type=int, default=100)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--prompts", type=int, default=48, help="held-out captions (2 images each)")
    args = ap.parse_args(argv)
    torch.set_num_threads(min(2, torch.get_num_threads()))
    out, t0 = Path(args.out), time.time()
    records = read_source(args.data, strict=True)
    vit = run_vit_pretrain(ViTPretrainConfig(data=args.data, out=str(out / "vit"), steps=args.vit_steps,
                                             progress=False))
    run_codec(CodecConfig(data=args.data, out=str(out / "codec"), steps=args.codec_steps, progress=False))
    run_unified(T2IConfig(data=args.data, out=str(out / "t2i"), init=str(vit.checkpoint), codec=str(out / "codec"),
                          steps=args.t2i_steps, ckpt_every=args.t2i_steps, eval_every=args.t2i_steps,
                          progress=False))
    common = dict(data=args.data, steps=args.gduf_steps, progress=False, ckpt_every=args.gduf_steps,
                  init=str(resolve_checkpoint(out / "t2i")), freeze_vit=True, **GDUF_AFTER_T2I)
    run_unified(GDUFConfig(out=str(out / "gduf-smsa"), **common))
    run_unified(GDUFConfig(out=str(out / "gduf-latent-free"), smsa=False, **common))
    gduf = resolve_checkpoint(out / "gduf-smsa")
    det = detection_rows({"GDUF SMSA": out / "gduf-smsa", "GDUF latent-free": out / "gduf-latent-free"}, records)
    per_seed = []
    for seed in args.seeds:
        runs = {}
        for name, w in (("DIGA", 0.5), ("flow-only", 0.0)):
            runs[name] = out / f"{name.lower()}-seed{seed}"
            run_unified(DIGAConfig(data=args.data, out=str(runs[name]), init=str(gduf), steps=args.diga_steps,
                                   align_weight=w, seed=seed, progress=False, ckpt_every=args.diga_steps))
        ev = eval_generate(EvalGenerateConfig(
            checkpoints=[str(resolve_checkpoint(out / "t2i")), str(gduf), str(runs["DIGA"]), str(runs["flow-only"])],
            data=args.data, out=str(out / f"eval-generate-seed{seed}"), max_prompts=args.prompts, seed=seed))
        names = list(ev["rows"])
        per_seed.append(dict(zip(["t2i", "GDUF", "GDUF + DIGA", "GDUF + flow-only", *names[4:]],
                                 ev["rows"].values(), strict=True)))
    gen = {name: spread(per_seed, name) for name in per_seed[0]}
    print(f"# {' '.join(shlex.quote(a) for a in sys.argv)}  ({time.time() - t0:.0f} s)")
    print(f"ViT pre-training probe val accuracy: {vit.metrics['val_acc']:.3f}\n")
    print("Detection (cls head, fake = positive):")
    print(table(det, ["acc", "acc_real", "acc_fake", "auc", "ap"]))
    print(f"\nGeneration over seeds {args.seeds} (mean, std; Frechet/kernel: lower is better):")
    print(table(gen, [FD, f"{FD}_std", KD, f"{KD}_std", "adherence", "adherence_std"]))
    (out / "ablation.json").write_text(json.dumps({"vit": vit, "detection": det, "generation": gen,
                                                   "per_seed": per_seed, "seeds": args.seeds}, indent=2))


if __name__ == "__main__":
    main()
