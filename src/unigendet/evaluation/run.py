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
from ..shipped import resolve
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
    from ..detectors import load_detector

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    every = read_source(a.data, strict=True)
    records = select(every, a.split)
    calibration = read_calibration(a.calibrate_on, every)
    specs = list(a.degrade or ())
    specs = list(GENIMAGE_DEGRADATIONS) if specs == ["all"] else specs
    results, detectors = [], []
    for ckpt in a.checkpoints:
        det = load_detector(resolve(ckpt), device=a.device)
        res = evaluate_detector(det, records, calibration, cache_root=a.cache, explain=a.explain)
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
            feats = det.features([str(r.path) for r in sub], cache_root=a.cache)
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
    """`unigendet eval generate`: generation quality against held-out real images."""

    checkpoint: str  # a UniGenDet run or checkpoint directory
    data: str  # real images with captions (reals of the chosen split)
    out: str  # the report folder (metrics.json, samples.png)
    split: str | None = None  # default: the test split when the source has one, else all
    per_prompt: int = 2  # images per prompt (diversity needs >= 2)
    max_prompts: int = 64
    steps: int = 30  # flow-matching sampling steps
    shift: float = 3.0  # timestep shift of the sampling schedule
    guidance: float = 4.0  # classifier-free guidance scale
    seed: int = 0
    backbone: str = "efficientnet-lite0"  # the feature extractor of the Frechet and kernel distances
    device: str = "cpu"


def eval_generate(a: EvalGenerateConfig) -> dict:
    """Prompts are the captions of the chosen split's real images; those reals are the
    reference set (held out from training when the split is)."""
    import dataclasses

    import torch

    from ..backbones import create_backbone
    from ..data.imageio import open_image
    from ..images import detection_view, save_image
    from ..unified.flow import Guidance
    from ..unified.pipeline import UniGenDetPipeline
    from .generation import generation_report, image_features

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    reals = [r for r in select(read_source(a.data, strict=True), a.split) if r.label != FAKE and r.caption]
    if not reals:
        raise ValueError(f"{a.data}: no real images with captions to compare with")
    reals = reals[:a.max_prompts]
    pipeline = UniGenDetPipeline.from_pretrained(a.checkpoint, device=a.device)
    size = pipeline.config.image_size
    prompts = [r.caption for r in reals for _ in range(a.per_prompt)]
    guidance = dataclasses.replace(Guidance(), scale=a.guidance)
    gen = pipeline.generate(prompts, size=size, steps=a.steps, shift=a.shift,
                          guidance=guidance, seed=a.seed)
    backbone, pre = create_backbone(a.backbone, device=a.device)
    real_images = torch.stack([detection_view(open_image(r.path), size, "resize") for r in reals])
    report = generation_report(image_features(gen, backbone, pre), image_features(real_images, backbone, pre),
                               _slug(a.backbone), groups=[i // a.per_prompt for i in range(len(prompts))])
    grid = _grid(gen[: 8 * a.per_prompt], a.per_prompt)
    save_image(grid, out / "samples.png")
    meta = run_meta() | {"checkpoint": a.checkpoint, "data": a.data, "prompts": len(reals),
                         "per_prompt": a.per_prompt, "steps": a.steps, "shift": a.shift, "guidance": a.guidance}
    metrics = {"meta": meta, **report}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    for k, v in report.items():
        print(f"[eval] {k}: {v:.4f}" if isinstance(v, float) else f"[eval] {k}: {v}")
    return metrics


def _grid(images, per_row: int):
    """(N, 3, S, S) -> one image with `per_row` images per row (one prompt per row)."""
    import torch

    rows = [torch.cat(list(images[i:i + per_row]), dim=2) for i in range(0, len(images), per_row)]
    return torch.cat(rows, dim=1)
