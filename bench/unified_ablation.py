"""UniGenDet ablations side by side, one run, built-in corpus, tiny preset.

1. Detection with the symbiotic latent tokens (SMSA, the paper's layout) vs latent-free:
   two GDUF runs from the same pre-trained, frozen ViT (`vit-pretrain`), same seed and steps;
   cls-head accuracy at 0.5, AUC and AP on the val and test splits.
2. Generation after DIGA vs after the same number of flow-only steps (DIGA with align
   weight 0), both from the SMSA GDUF checkpoint: Frechet and kernel distance on
   EfficientNet-Lite0 features between images generated from the test reals' captions
   and those reals, and the validation flow loss.

    python bench/unified_ablation.py [--data runs/data] [--out runs/ablation] [--gduf-steps 300] [--diga-steps 100]

Minutes on 2 CPU cores; every number comes from this run.
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

from unigendet.backbones import create_backbone
from unigendet.data.readers import read_source
from unigendet.evaluation.generation import generation_report, image_features
from unigendet.labels import FAKE
from unigendet.metrics import detection_report
from unigendet.unified.pipeline import UniGenDetPipeline
from unigendet_train.config import DIGAConfig, TrainConfig
from unigendet_train.data import load_bank
from unigendet_train.unified import run_unified, score_bank
from unigendet_train.vit_pretrain import ViTPretrainConfig, run_vit_pretrain


def checkpoint(run: Path) -> Path:
    return run / "checkpoints" / (run / "checkpoints" / "latest").read_text().strip()




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


def generation_rows(runs: dict[str, Path], records, steps: int) -> dict[str, dict]:
    backbone, pre = create_backbone("efficientnet-lite0")
    reals = [r for r in records if r.split == "test" and r.label != FAKE and r.caption]
    rows = {}
    for name, run in runs.items():
        pipe = UniGenDetPipeline.from_pretrained(run)
        bank = load_bank(reals, pipe.config.image_size, pipe.codec)
        real = image_features(bank.images, backbone, pre)
        gen = pipe.generate([r.caption for r in reals], steps=steps, seed=0)
        rows[name] = generation_report(image_features(gen, backbone, pre), real, "effnet")
        rows[name]["val_mse"] = json.loads((run / "metrics.json").read_text())["val_mse"]
    return rows


def table(rows: dict[str, dict], cols: list[str]) -> str:
    w = max(len(k) for k in rows) + 2
    lines = ["".ljust(w) + "".join(c.rjust(16) for c in cols)]
    for k, r in rows.items():
        lines.append(k.ljust(w) + "".join(f"{r.get(c, float('nan')):16.4f}" for c in cols))
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="runs/data")
    ap.add_argument("--out", default="runs/ablation")
    ap.add_argument("--vit-steps", type=int, default=800)
    ap.add_argument("--gduf-steps", type=int, default=300)
    ap.add_argument("--diga-steps", type=int, default=100)
    ap.add_argument("--gen-steps", type=int, default=20, help="sampling steps per generated image")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(min(2, torch.get_num_threads()))
    out, t0 = Path(args.out), time.time()
    records = read_source(args.data, strict=True)
    vit = run_vit_pretrain(ViTPretrainConfig(data=args.data, out=str(out / "vit"), steps=args.vit_steps,
                                             seed=args.seed, progress=False))
    common = dict(data=args.data, steps=args.gduf_steps, seed=args.seed, progress=False,
                  ckpt_every=args.gduf_steps, init=vit["checkpoint"], freeze_vit=True)
    run_unified(TrainConfig(out=str(out / "gduf-smsa"), **common))
    run_unified(TrainConfig(out=str(out / "gduf-latent-free"), smsa=False, **common))
    gduf = str(checkpoint(out / "gduf-smsa"))
    for name, w in (("diga", 0.5), ("flow-only", 0.0)):
        run_unified(DIGAConfig(data=args.data, out=str(out / name), init=gduf, steps=args.diga_steps,
                               align_weight=w, seed=args.seed, progress=False, ckpt_every=args.diga_steps))
    det = detection_rows({"GDUF SMSA": out / "gduf-smsa", "GDUF latent-free": out / "gduf-latent-free"}, records)
    gen = generation_rows({"GDUF": out / "gduf-smsa", "GDUF + flow-only": out / "flow-only",
                           "GDUF + DIGA": out / "diga"}, records, args.gen_steps)
    print(f"# {' '.join(shlex.quote(a) for a in sys.argv)}  ({time.time() - t0:.0f} s)")
    print(f"ViT pre-training probe val accuracy: {vit['val_acc']:.3f}\n")
    print("Detection (cls head, fake = positive):")
    print(table(det, ["acc", "acc_real", "acc_fake", "auc", "ap"]))
    print("\nGeneration (lower is better; effnet = EfficientNet-Lite0 features):")
    print(table(gen, ["frechet_effnet", "kernel_effnet", "val_mse"]))
    (out / "ablation.json").write_text(json.dumps({"vit": vit, "detection": det, "generation": gen}, indent=2))


if __name__ == "__main__":
    main()
