"""Stage 0 for the small presets: pre-train the understanding ViT as a forensic encoder.

At full scale the ViT starts from SigLIP; the small presets start from nothing, and
GDUF's few thousand detection samples are not enough for a fresh ViT to find
generator traces (its cls accuracy stays at chance). This stage trains the ViT alone
(mean-pooled tokens -> a linear probe) on label-balanced native-resolution crops,
which is cheap, and writes a full UniGenDet checkpoint - ViT trained, everything else
freshly initialised - for `unigendet train gduf --init`. Single process.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from unigendet.data.readers import read_source
from unigendet.unified.packing import FULL, Sample, Split
from unigendet.unified.presets import create_model, get_config
from unigendet.unified.samples import SampleBuilder
from unigendet.unified.tokenizer import get_tokenizer

from .checkpoints import save_train_checkpoint
from .data import load_crops, records_of_split
from .log import RunLogger
from .sampler import StepSampler, sample_rng
from .schedule import lr_at
from .stages import StageConfig, StageResult, register_stage


@dataclass(frozen=True)
class ViTPretrainConfig(StageConfig):
    stage: str = "vit-pretrain"
    preset: str = "tiny"
    out: str = "runs/vit"
    steps: int = 800
    batch: int = 32
    lr: float = 1e-3
    warmup: int = 50
    weight_decay: float = 0.0
    eval_every: int = 200
    progress: bool = True



def pooled(model, builder: SampleBuilder, images: list[torch.Tensor]) -> torch.Tensor:
    """Mean of each image's final ViT tokens, (B, vit hidden)."""
    batch = builder.pack([Sample([Split(FULL, vit=builder.vit_tokens(x))]) for x in images])
    tokens = model.vit_model(batch.vit_patches, batch.vit_pos_ids, batch.vit_lens)
    return torch.stack([t.mean(0) for t in tokens.split(batch.vit_lens)])


@torch.no_grad()
def accuracy(model, head, builder, bank) -> float:
    p = torch.cat([head(pooled(model, builder, [bank.crop(i) for i in range(s, min(s + 64, len(bank)))]))
                   for s in range(0, len(bank), 64)]).argmax(1)
    return float((p.numpy() == np.array(bank.labels)).mean())


@register_stage("vit-pretrain", ViTPretrainConfig)
def run_vit_pretrain(cfg: ViTPretrainConfig) -> StageResult:
    torch.manual_seed(cfg.seed)
    model = create_model(get_config(cfg.preset))
    mc = model.config
    builder = SampleBuilder(mc, get_tokenizer(mc.tokenizer))
    records = read_source(cfg.data, strict=True)
    train = load_crops(records_of_split(records, "train"), mc.image_size)
    val = load_crops(records_of_split(records, "val"), mc.image_size)
    head = torch.nn.Linear(mc.vit.hidden_size, 2)
    params = [*model.vit_model.parameters(), *head.parameters()]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    sampler = StepSampler(train.labels, len(train), cfg.batch, cfg.seed, balanced=True)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    log = RunLogger(out, cfg.steps, progress=cfg.progress, fresh=True)
    history = []
    for step in range(cfg.steps):
        for g in opt.param_groups:
            g["lr"] = lr_at(step, cfg.lr, cfg.warmup, cfg.steps, "cosine")
        idx = sampler.indices(step)
        x = [train.crop(i, sample_rng(cfg.seed, step, j)) for j, i in enumerate(idx)]
        y = torch.tensor([train.labels[i] for i in idx])  # class index = label (FAKE 0, REAL 1)
        loss = F.cross_entropy(head(pooled(model, builder, x)), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        row = {"loss": loss.item()}
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            row["val_acc"] = accuracy(model, head, builder, val)
        history.append(row)
        log.log(step, row)
        log.advance()
    log.close()
    ckpt = save_train_checkpoint(out, cfg.steps, model, mc, model, None, {}, files={"vit_probe": head},
                                 train=cfg.to_dict())
    metrics = {"val_acc": history[-1]["val_acc"], "first_loss": history[0]["loss"], "last_loss": history[-1]["loss"]}
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2))
    return StageResult(out, ckpt, metrics)
