"""UniGenDet in the wild: the leave-one-generator-family-out table on wild-train and CNNDetection,
with the shipped detector's recipe as a row of the same run.

Each UniGenDet row is a GDUF variant (config fields: the understanding path, SMSA) started from a
text-to-image checkpoint (`--init`, e.g. the demo's runs/t2i) and trained on a fold's detection
records (label-balanced) mixed with text-to-image samples of the built-in corpus (`--corpus`).
Folds, calibration halves and the CNNDetection procedure are those of bench/wild_detection.py:
per family, train without it, fit the balanced-accuracy threshold on the other families' val
images and half of the val reals, test its fakes against the other half; CNNDetection: train on
the whole train split, threshold on val. The verdict is the cls head's p_fake of the EMA weights.
Prepared views are cached (`--cache`), so folds and seeds share the encoder's work.

    python bench/unigendet_wild.py --init runs/t2i --corpus runs/data --out runs/unigendet-wild

Writes OUT/table.md and OUT/results.json after every row.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import hashlib
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from unigendet.data.readers import read_source
from unigendet.evaluation.families import logo_folds
from unigendet.evaluation.folds import Scores
from unigendet.labels import FAKE
from unigendet.metrics import balanced_threshold
from unigendet.unified.pipeline import UniGenDetPipeline
from unigendet_train.checkpoints import step_checkpoint
from unigendet_train.config import DIGAConfig, GDUFConfig
from unigendet_train.folds import recipe_for
from unigendet_train.tokens import load_token_bank
from unigendet_train.unified import detect_bank, run_unified
from wild_detection import SHARED, measure, recipes, save, table


@dataclasses.dataclass(frozen=True)
class Variant:
    fields: dict  # GDUF config fields
    diga_steps: int = 0  # then DIGA from each fold's GDUF run (the DIGA ablation)


FORENSIC = dict(understanding="tiny-forensic", smsa=True)
VARIANTS = {
    "UniGenDet, forensic encoder, SMSA": Variant(FORENSIC),
    "UniGenDet, forensic encoder, SMSA, then DIGA": Variant(FORENSIC, diga_steps=100),
    "UniGenDet, forensic encoder, latent-free": Variant(dict(FORENSIC, smsa=False)),
    "UniGenDet, NaViT (high-pass input), SMSA": Variant(dict(understanding=None, smsa=True)),
}


def write_manifest(path: Path, train, val) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    with (path / "manifest.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["path", "label", "split", "generator", "group"])
        for split, records in (("train", train), ("val", val)):
            for r in records:
                w.writerow([str(Path(r.path).resolve()), "fake" if r.label == FAKE else "real", split, r.generator,
                            r.group_key])
    return path


class UniGenDetRow:
    """GDUF runs are kept in `work` under a key of their config and data, so a DIGA row starts from
    the GDUF runs of the row before it (a paired ablation) instead of training them again."""

    def __init__(self, base: GDUFConfig, work: Path, diga_steps: int = 0):
        self.base, self.work, self.diga_steps = base, work, diga_steps

    def fit(self, train, cal) -> tuple[UniGenDetPipeline, float]:
        """GDUF on `train` (with `cal` as its val split), then DIGA when asked; the balanced-accuracy
        threshold on `cal`."""
        key = hashlib.sha1(json.dumps([self.base.to_dict(), sorted(str(r.path) for r in train),
                                       sorted(str(r.path) for r in cal)], default=str).encode()).hexdigest()[:12]
        data = write_manifest(self.work / f"data-{key}", train, cal)
        cfg = self.base.replace(det_data=str(data), out=str(self.work / f"gduf-{key}"), ckpt_every=self.base.steps)
        ckpt = step_checkpoint(cfg.out, cfg.steps)  # present once the run has finished
        if not ckpt.is_dir():
            run_unified(cfg)
        if self.diga_steps:
            # DIGA's own defaults (its lr among them); the data, encoder cache and run settings carry over
            diga = DIGAConfig(data=cfg.data, det_data=cfg.det_data, cache=cfg.cache, views=cfg.views, seed=cfg.seed,
                              progress=cfg.progress, report=cfg.report, init=str(ckpt),
                              out=str(self.work / f"diga-{key}"), steps=self.diga_steps, ckpt_every=self.diga_steps,
                              det_per_step=8, t2i_per_step=4, warmup=10)
            run_unified(diga)
            ckpt = step_checkpoint(diga.out, diga.steps)
        pipe = UniGenDetPipeline.from_pretrained(ckpt)
        return pipe, balanced_threshold(self.score(pipe, cal).p, np.array([r.label == FAKE for r in cal]))

    def score(self, pipe: UniGenDetPipeline, records, view: str = "native") -> Scores:
        """The cls head's p_fake of the images as they are (the rows are measured natively only)."""
        if pipe.config.vit.frozen:
            bank = load_token_bank(records, pipe.builder, pipe.codec, 1, self.base.seed, self.base.cache)
            return Scores(np.array([d.p_fake for d in detect_bank(pipe.model, pipe.builder, bank)]))
        from unigendet.data.imageio import open_image

        return Scores(np.array([d.p_fake for d in pipe.detect_images([open_image(r.path) for r in records])]))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(SHARED / "data" / "wild-train"))
    ap.add_argument("--cnn", default=str(SHARED / "data" / "cnndetection-ranking"))
    ap.add_argument("--init", default="runs/t2i", help="text-to-image checkpoint or run the generator starts from")
    ap.add_argument("--corpus", default="runs/data", help="built-in corpus: the text-to-image samples")
    ap.add_argument("--steps", type=int, default=300)
    ap.add_argument("--diga-steps", type=int, default=0, help="DIGA steps of the DIGA rows (0: the variant's)")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0])
    ap.add_argument("--only", action="append", default=[], help="run only rows whose name contains this")
    ap.add_argument("--folds", type=int, default=0, help="only the first N folds (0: all), for a quick look")
    ap.add_argument("--no-shipped", action="store_true", help="leave out the shipped detector's recipe")
    ap.add_argument("--cache", default="runs/token-cache")
    ap.add_argument("--out", default="runs/unigendet-wild")
    args = ap.parse_args(argv)
    t0 = time.time()
    pool = read_source(args.data, strict=True)
    folds = logo_folds(pool)[: args.folds or None]
    train = [r for r in pool if r.split == "train"]
    val = [r for r in pool if r.split == "val"]
    cnn = read_source(args.cnn, strict=True) if Path(args.cnn).exists() else []
    out = Path(args.out)
    results: dict = {}
    if not args.no_shipped:
        name = next(n for n in recipes(None, None) if "(shipped)" in n)
        cfg = dataclasses.replace(recipes(None, None)[name], data=args.data)
        results[f"shipped recipe: {name}"] = measure(name, recipe_for(cfg), folds, train, val, cnn,
                                                     dataclasses.asdict(cfg), views=("native",))
        save(out, results)
    base = GDUFConfig(preset="tiny", data=args.corpus, init=args.init, steps=args.steps,
                       det_per_step=16, t2i_per_step=4, lr=5e-4, warmup=20, eval_every=0, log_every=50,
                       progress=False, report=False, cache=args.cache)
    with tempfile.TemporaryDirectory(dir=out.parent if out.parent.exists() else None) as work:
        for name, v in VARIANTS.items():
            if args.only and not any(s in name for s in args.only):
                continue
            for seed in args.seeds:
                key = f"{name} (seed {seed})"
                diga_steps = v.diga_steps and (args.diga_steps or v.diga_steps)
                row = UniGenDetRow(base.replace(seed=seed, **v.fields), Path(work), diga_steps)
                config = {"steps": args.steps, "seed": seed, "diga_steps": diga_steps, **v.fields}
                results[key] = measure(key, row, folds, train, val, cnn, config, views=("native",))
                save(out, results)
    (out / "meta.json").write_text(json.dumps({"folds": [f.name for f in folds], "seconds": time.time() - t0,
                                               "init": args.init, "corpus": args.corpus}, indent=2))
    print(table(results))
    print(f"{time.time() - t0:.0f} s")


if __name__ == "__main__":
    main()
