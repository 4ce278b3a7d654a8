"""The UniGenDet stages on the unified model: text-to-image pre-training, GDUF and DIGA (what each
stage trains is its task class, `unigendet_train.tasks`). `run_unified` builds the model, codec and
data banks, trains with the loop and reports the final EMA model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from unigendet.data.generation import generation_split
from unigendet.data.readers import read_source
from unigendet.detectors import load_detector
from unigendet.labels import FAKE
from unigendet.unified.checkpoint import load_model
from unigendet.unified.model import swap_understanding
from unigendet.unified.pipeline import UniGenDetPipeline, codec_for, tokenizer_for
from unigendet.unified.presets import create_model, get_config
from unigendet.unified.samples import SampleBuilder
from unigendet.weights import checkpoint_digest, latest_checkpoint, resolve_checkpoint

from .card import unigendet_card
from .config import DIGAConfig, GDUFConfig, T2IConfig, UnifiedConfig
from .data import Banks, ImageBank, load_bank, records_of_split
from .dist import DistInfo, cleanup, init_distributed
from .loop import Trainer
from .stages import StageResult, register_stage
from .tasks import DIGATask, GDUFTask, T2ITask, UnifiedTask, detect_bank
from .tokens import load_token_bank, teacher_evidence

__all__ = ["build_run", "detect_bank", "run_unified", "score_bank", "unified_stage"]

TASKS: dict[type[UnifiedConfig], type[UnifiedTask]] = {}  # a unified stage's config class -> what it trains


def unified_stage(name: str, config_cls: type[UnifiedConfig], task_cls: type[UnifiedTask]) -> None:
    """Declare a stage on the unified model, once: its name (`unigendet train NAME`), its options (a config
    class of its own) and what it trains (its task). `run_unified(config_cls(...))` then runs it."""
    if TASKS.get(config_cls, task_cls) is not task_cls:
        raise ValueError(f"{config_cls.__name__} already configures another unified stage")
    TASKS[config_cls] = task_cls
    register_stage(name, config_cls)(run_unified)


def task_of(cfg: UnifiedConfig) -> type[UnifiedTask]:
    """The task a stage's config runs (its exact class: a subclass is another stage)."""
    if type(cfg) not in TASKS:
        raise ValueError(f"{type(cfg).__name__} configures no unified stage (known: "
                         f"{', '.join(c.__name__ for c in TASKS)}); declare it with unified_stage()")
    return TASKS[type(cfg)]


def score_bank(model, builder: SampleBuilder, bank: ImageBank) -> np.ndarray:
    """The cls head's p_fake for every image of a bank."""
    return np.array([r.p_fake for r in detect_bank(model, builder, bank)])


def build_run(cfg: UnifiedConfig, dist: DistInfo) -> tuple[torch.nn.Module, object, UnifiedTask]:
    """Model, codec, data banks and the stage's task."""
    task_cls = task_of(cfg)  # an undeclared config fails before anything is built
    init = resolve_checkpoint(cfg.init) if cfg.init else None  # a checkpoint, or a run (its latest)
    if init:
        model = load_model(init, ema=True, device=dist.device).train()
    else:
        model = create_model(get_config(cfg.preset, diga_layer=cfg.diga_layer or get_config(cfg.preset).diga_layer))
        model = model.to(dist.device)
    if cfg.understanding:
        model = swap_understanding(model, get_config(cfg.understanding)).train()
    if cfg.smsa is not None:  # a layout choice, not a weight: the same parameters serve both
        model.config = model.config.replace(smsa=cfg.smsa)
    mc = model.config
    codec = codec_for(mc, Path(cfg.codec) if cfg.codec else init)
    if not (cfg.codec or init) and codec.learned:
        raise ValueError(f"the {mc.name} preset generates through a {mc.latent.codec} codec that is trained, not "
                         "given: train it with `unigendet train codec --data DATA --out RUN` and pass --codec RUN")
    codec.eval().requires_grad_(False)
    builder = SampleBuilder(mc, tokenizer_for(mc, init))
    banks = load_banks(cfg, task_cls, model, builder, codec, init, dist)
    return model, codec, task_cls(cfg, model, builder, codec, banks, dist)


def load_banks(cfg: UnifiedConfig, task_cls: type[UnifiedTask], model, builder: SampleBuilder, codec, init,
               dist: DistInfo) -> Banks:
    """The stage's detection bank, the captioned photos (and their mirror images) for text-to-image
    samples, and the validation banks; a frozen encoder reads prepared views (see `tokens`)."""
    mc = model.config
    records = read_source(cfg.data, strict=True)
    det_records = read_source(cfg.det_data, strict=True) if cfg.det_data else records
    train, val = records_of_split(det_records, "train"), records_of_split(det_records, "val")
    log = (lambda done, n: print(f"views {done}/{n}", flush=True)) if cfg.progress and dist.main else None
    det, scale = task_cls.detection_bank(cfg, model, builder, codec, train, init, log)
    if mc.vit.frozen:
        valb = load_token_bank(val, builder, codec, 1, cfg.seed, cfg.cache, progress=log)
        valb.scale = scale
    if cfg.evidence_prompt and not cfg.explains:
        raise ValueError("--evidence-prompt gives the explained detector's evidence: it needs --explains")
    if cfg.explains:
        if not mc.vit.frozen:
            raise ValueError("--explains states another detector's reasons for prepared views: it needs a frozen "
                             "understanding encoder (--understanding tiny-forensic)")
        teacher = load_detector(cfg.explains)
        name = f"{teacher.kind}-{checkpoint_digest(resolve_checkpoint(cfg.explains))}"
        for bank in (det, valb):
            bank.teacher = teacher_evidence(bank, teacher, name, builder.cfg.detect_side, cfg.seed, cfg.cache,
                                            progress=log)
            bank.ask_evidence = cfg.evidence_prompt
    gen_train, gen_held = generation_split(records)
    if not gen_train:
        raise ValueError(f"{cfg.data}: no captioned real images in the train split for text-to-image samples")
    t2i = mirrored(load_bank(gen_train, mc.image_size, codec), codec)
    if not mc.vit.frozen:
        valb = load_bank(val, mc.image_size, codec, view=mc.detect_view)
    val_gen = load_bank(gen_held or [r for r in val if r.label != FAKE], mc.image_size, codec)
    return Banks(det, t2i, valb, val_gen, scale)


@torch.no_grad()
def mirrored(bank: ImageBank, codec) -> ImageBank:
    """The bank and its left-right mirror images (a mirrored photo is a photo too)."""
    flipped = bank.images.flip(-1)
    latents = torch.cat([codec.encode(flipped[i:i + 64]) for i in range(0, len(flipped), 64)])
    return ImageBank(bank.records * 2, torch.cat([bank.images, flipped]), torch.cat([bank.latents, latents]))


def run_unified(cfg: UnifiedConfig) -> StageResult:
    # Setup
    dist = init_distributed()
    torch.manual_seed(cfg.seed)
    model, codec, task = build_run(cfg, dist)
    # Train
    params = task.trainable(model)
    meta = run_meta(cfg, task)
    trainer = Trainer(model, task, cfg, dist, params=params, extra_files=lambda: {"codec": codec},
                      extra_meta=lambda: meta)
    history = trainer.fit()
    # Report
    metrics = {}
    ema = trainer.eval_model()
    if dist.main:
        metrics = task.evaluate(ema, explain=True) if cfg.report else {}
        metrics.update(first_loss=history[0]["loss"] if history else None,
                       last_loss=history[-1]["loss"] if history else None, steps=cfg.steps)
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
        (Path(cfg.out) / "metrics.json").write_text(json.dumps(metrics, indent=2))
        if cfg.ship:
            ship(cfg, ema, codec, task, metrics)
    cleanup()
    return StageResult(Path(cfg.out), latest_checkpoint(cfg.out) or Path(cfg.out), metrics)


def run_meta(cfg: UnifiedConfig, task: UnifiedTask) -> dict:
    """What a checkpoint records of how its answers were written: the cue scale, the explained detector."""
    meta = {"cue_scale": json.loads(task.cue_scale.to_json())} if task.cue_scale else {}
    if cfg.explains:
        meta["explains"], meta["evidence_prompt"] = cfg.explains, cfg.evidence_prompt
    return meta


def ship(cfg: UnifiedConfig, ema, codec, task: UnifiedTask, metrics: dict) -> Path:
    """The final EMA model as a shippable directory: weights, codec, config, cue scale, model card."""
    meta = run_meta(cfg, task)
    out = UniGenDetPipeline(ema, codec).save_pretrained(cfg.ship, meta={"metrics": metrics, **meta})
    det = task.det if task.det is not None else task.val
    (out / "MODEL_CARD.md").write_text(unigendet_card(cfg, ema.config, det.records, task.val.records, metrics))
    out.chmod(0o755)  # readable by every user of an installed package
    for f in out.iterdir():
        f.chmod(0o644)
    return out


unified_stage("t2i", T2IConfig, T2ITask)
unified_stage("gduf", GDUFConfig, GDUFTask)
unified_stage("diga", DIGAConfig, DIGATask)
