"""`unigendet eval detect` and `unigendet eval generate`: load, score, tabulate, plot, report."""

from __future__ import annotations

import datetime
import json
import platform
import shlex
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.degrade import GENIMAGE_DEGRADATIONS
from ..data.readers import read_source
from ..data.records import Record
from ..labels import FAKE
from .detection import degradation_sweep, evaluate_detector
from .report import (
    degradation_table,
    per_generator_table,
    plot_curves,
    plot_histograms,
    plot_tsne,
    summary_table,
    text_table,
    write_report,
)


def run_meta() -> dict:
    return {"command": " ".join(shlex.quote(a) for a in ["unigendet", *sys.argv[1:]]),
            "date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M"),
            "machine": f"{platform.machine()}, {platform.system()} {platform.release()}, "
                       f"{_cpu_name()}, python {platform.python_version()}"}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def select(records: list[Record], split: str | None) -> list[Record]:
    """`split` None: the source's test split when it has one, else every record."""
    if split is None:
        split = "test" if any(r.split == "test" for r in records) else ""
    chosen = [r for r in records if r.split == split] if split else list(records)
    if not chosen:
        raise ValueError(f"no records in split {split!r}")
    return chosen


def read_calibration(spec: str | None, records: list[Record]) -> list[Record]:
    """SOURCE or SOURCE:split (a SOURCE alone: its val split when it has one, else all of it);
    no spec: the evaluated source's val split, if any."""
    if spec is None:
        return [r for r in records if r.split == "val"]
    source, split = (spec, None) if Path(spec).exists() else spec.rpartition(":")[::2]
    cal = read_source(source, strict=True)
    if split is None:
        split = "val" if any(r.split == "val" for r in cal) else ""
    cal = [r for r in cal if not split or r.split == split]
    if not cal:
        raise ValueError(f"no calibration records in {spec!r}")
    return cal


@dataclass(frozen=True)
class EvalDetectConfig:
    """`unigendet eval detect`: detectors side by side with the field's protocol."""

    checkpoints: list[str]  # a training run or checkpoint directory (any detector kind); repeatable
    data: str  # manifest CSV, GenImage/UFD folders or FakeClue JSON
    out: str  # the report folder (metrics.json, table.md, report.html)
    split: str | None = None  # default: the test split when the source has one, else all
    calibrate_on: str | None = field(default=None, metadata={"help": (
        "SOURCE[:split] whose accuracy-maximising threshold is reported beside 0.5 (default: the source's val split)")})
    degrade: tuple[str, ...] | None = None  # 'all' or GenImage specs such as jpeg65 blur3 down64
    explain: bool = False  # UniGenDet: also write and score text verdicts
    cache: str | None = None  # feature cache folder for frozen-backbone detectors
    tsne: int = 400  # images in the t-SNE plots (0: none)
    device: str = "cpu"


def eval_detect(a: EvalDetectConfig) -> dict:
    from ..detectors import load_detector, use_feature_cache

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    every = read_source(a.data, strict=True)
    records = select(every, a.split)
    calibration = read_calibration(a.calibrate_on, every)
    specs = list(a.degrade or ())
    specs = list(GENIMAGE_DEGRADATIONS) if specs == ["all"] else specs
    results, detectors = [], []
    for ckpt in a.checkpoints:
        det = use_feature_cache(load_detector(ckpt, device=a.device), a.cache)
        res = evaluate_detector(det, records, calibration, explain=a.explain)
        if specs:
            res.degraded = degradation_sweep(det, records, specs, res.threshold, workdir=out)
        results.append(res)
        detectors.append(det)
        m = res.report["mean"]
        print(f"[eval] {res.name}: mean AUC {100 * m.get('auc', float('nan')):.1f}, "
              f"AP {100 * m.get('ap', float('nan')):.1f}, acc {100 * m['acc']:.1f}", flush=True)
    _name_uniquely(results, a.checkpoints)
    images = plot_curves(results, records, out) + [plot_histograms(results, records, out)]
    if a.tsne:
        rng = np.random.default_rng(0)
        idx = np.sort(rng.choice(len(records), min(a.tsne, len(records)), replace=False))
        sub = [records[i] for i in idx]
        for res, det in zip(results, detectors, strict=True):
            feats = det.features([str(r.path) for r in sub])
            images.append(plot_tsne(feats, sub, f"t-SNE: {res.name} representation",
                                    out / f"tsne-{_slug(res.name)}.png"))
    meta = run_meta() | {"data": a.data, "n_images": len(records),
                         "n_fake": sum(r.label == FAKE for r in records),
                         "calibration": a.calibrate_on or ("val split" if calibration else "none (0.5)")}
    sections = [("Means over generators (%)", summary_table(results)),
                ("ROC-AUC per generator (%)", per_generator_table(results, "auc")),
                ("AP per generator (%)", per_generator_table(results, "ap")),
                ("Accuracy at 0.5 per generator (%)", per_generator_table(results, "acc")),
                ("Mean AUC under GenImage degradations (%)", degradation_table(results, "auc")),
                ("Written verdicts and explanations (%)", text_table(results))]
    write_report(out, "Detection evaluation", sections, images, meta)
    metrics = {"meta": meta, "detectors": {r.name: {"checkpoint": c, "threshold": r.threshold, **r.report,
                                                    "degraded": r.degraded}
                                           for r, c in zip(results, a.checkpoints, strict=True)}}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    (out / "table.md").write_text("\n\n".join(f"## {h}\n\n{t}" for h, t in sections if t) + "\n")
    return metrics


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)


def _name_uniquely(results, checkpoints) -> None:
    names = [r.name for r in results]
    for r, c in zip(results, checkpoints, strict=True):
        if names.count(r.name) > 1:
            r.name = f"{r.name} ({Path(c).name})"


@dataclass(frozen=True)
class EvalGenerateConfig:
    """`unigendet eval generate`: generators side by side against held-out real images, with the
    noise ceiling and the codec floor measured in the same run."""

    checkpoints: list[str]  # a UniGenDet run or checkpoint directory; repeatable
    data: str  # real images with captions
    out: str  # the report folder (metrics.json, table.md, report.html, sample grids)
    split: str = "heldout"  # heldout: crops of the training photos kept from text-to-image training; or a split
    per_prompt: int = 2  # images per prompt (diversity needs >= 2)
    max_prompts: int = 64
    steps: int = 30  # flow-matching sampling steps
    shift: float = 3.0  # timestep shift of the sampling schedule
    guidance: float = 4.0  # classifier-free guidance scale
    seed: int = 0
    backbone: str = "efficientnet-lite0"  # the feature extractor of the distances and of prompt adherence
    device: str = "cpu"


def generation_references(data: str, split: str) -> tuple[list[Record], list[Record]]:
    """(the reals whose captions prompt and which are compared with, the captioned train reals)."""
    from ..data.generation import generation_split

    records = read_source(data, strict=True)
    train, held = generation_split(records)
    reals = held if split == "heldout" else [r for r in select(records, split) if r.label != FAKE and r.caption]
    if not reals:
        raise ValueError(f"{data}: no captioned real images in {split!r} to compare with")
    return reals, train


def eval_generate(a: EvalGenerateConfig) -> dict:
    """Prompts are the captions of the chosen reals (by default crops held out from the training
    photos); those reals are the reference set. Rows: each checkpoint, then references measured
    the same way - the codec's reconstructions of the reals (the floor a generator decoding
    through that codec works against), the training crops of the same photos (what copying the
    training set scores) and per-pixel noise images (the ceiling)."""
    import dataclasses

    import torch

    from ..backbones import create_backbone
    from ..data.imageio import open_image
    from ..images import detection_input, save_image
    from ..unified.flow import Guidance
    from ..unified.pipeline import UniGenDetPipeline
    from .generation import generation_report, image_features, noise_images

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    reals, train = generation_references(a.data, a.split)
    reals = reals[:a.max_prompts]
    classes = [r.group_key for r in reals]
    prompts = [r.caption for r in reals for _ in range(a.per_prompt)]
    prompt_classes = [c for c in classes for _ in range(a.per_prompt)]
    groups = [i // a.per_prompt for i in range(len(prompts))]
    backbone, pre = create_backbone(a.backbone, device=a.device)
    slug = _slug(a.backbone)
    guidance = dataclasses.replace(Guidance(), scale=a.guidance)
    rows, grids, size, real_feats, first_codec = {}, [], None, None, None
    for ckpt in a.checkpoints:
        pipeline = UniGenDetPipeline.from_pretrained(ckpt, device=a.device)
        if size is None:
            size, first_codec = pipeline.config.image_size, pipeline.codec
            real_images = torch.stack([detection_input(open_image(r.path), size, "resize") for r in reals])
            real_feats = image_features(real_images, backbone, pre)
        elif pipeline.config.image_size != size:
            raise ValueError(f"{ckpt}: generates {pipeline.config.image_size} px, the first checkpoint {size} px")
        gen = pipeline.generate(prompts, size=size, steps=a.steps, shift=a.shift, guidance=guidance, seed=a.seed)
        name = _unique(_run_name(ckpt) or pipeline.name, rows)
        rows[name] = generation_report(image_features(gen, backbone, pre), real_feats, slug, groups=groups,
                                       classes=prompt_classes, real_classes=classes)
        grid = out / f"samples-{name}.png"
        save_image(_grid(torch.cat([real_images[:8, None], gen[: 8 * a.per_prompt].view(
            -1, a.per_prompt, *gen.shape[1:])], dim=1).flatten(0, 1), a.per_prompt + 1), grid)
        grids.append(grid)
    recon = first_codec.eval().reconstruct(real_images)
    train_same = [r for r in train if r.group_key in set(classes)]
    references = {"codec reconstructions": (recon, classes),
                  "noise": (noise_images(len(prompts), size, a.seed), prompt_classes)}
    if len(train_same) >= 2:
        train_images = torch.stack([detection_input(open_image(r.path), size, "resize") for r in train_same])
        references["training crops"] = (train_images, [r.group_key for r in train_same])
    for name, (images, cls) in references.items():
        rows[f"reference: {name}"] = generation_report(image_features(images, backbone, pre), real_feats, slug,
                                                       classes=cls, real_classes=classes)
    table = generation_table(rows, slug)
    (out / "table.md").write_text(table + "\n")
    meta = run_meta() | {"checkpoints": a.checkpoints, "data": a.data, "split": a.split, "prompts": len(reals),
                         "classes": len(set(classes)), "per_prompt": a.per_prompt, "steps": a.steps,
                         "shift": a.shift, "guidance": a.guidance, "seed": a.seed}
    write_report(out, "Generation", [("Against the held-out real images", table)], grids, meta)
    metrics = {"meta": meta, "rows": rows}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    print(table)
    return metrics


def _run_name(path: str) -> str:
    """A checkpoint's row name: its run folder for RUN/checkpoints/step-N, else its own folder."""
    p = Path(path).resolve()
    return p.parents[1].name if p.parent.name == "checkpoints" else p.name


def _unique(name: str, taken) -> str:
    k, base = 2, name
    while name in taken:
        name, k = f"{base}-{k}", k + 1
    return name


def generation_table(rows: dict[str, dict], slug: str) -> str:
    lines = ["| images | Frechet distance | kernel distance (x1000) | prompt adherence (top-1) | chance | n |",
             "|---|---|---|---|---|---|"]
    for name, m in rows.items():
        lines.append(f"| {name} | {m[f'frechet_{slug}']:.1f} | {1000 * m[f'kernel_{slug}']:.2f} | "
                     f"{100 * m['adherence']:.1f}% | {100 * m['chance']:.1f}% | {m['n_generated']} |")
    return "\n".join(lines)


def _grid(images, per_row: int):
    """(N, 3, S, S) -> one image with `per_row` images per row (one prompt per row)."""
    import torch

    rows = [torch.cat(list(images[i:i + per_row]), dim=2) for i in range(0, len(images), per_row)]
    return torch.cat(rows, dim=1)
