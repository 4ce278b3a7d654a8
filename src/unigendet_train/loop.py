"""The training loop shared by the UniGenDet stages.

A task supplies each rank's micro-batches and the loss weights; the loop does the
rest: AdamW with warmup, gradient accumulation, DDP, bf16 autocast, clipping, EMA,
logging, evaluation and atomic, resumable checkpoints. Losses are normalised by
their global counts (see `unigendet.unified.losses`), so one process and N processes with
the same global batch compute the same loss. Nothing here catches a failing step:
an exception stops the run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel as DDP

from unigendet.unified.losses import loss_counts, packed_loss_sums
from unigendet.unified.packing import PackedBatch
from unigendet.weights import latest_checkpoint

from .checkpoints import resume_from, save_train_checkpoint
from .config import UnifiedConfig
from .dist import DistInfo, all_reduce_sum, barrier
from .ema import EMA
from .log import RunLogger
from .parallel import full_optimizer_state, full_state, is_sharded, wrap
from .schedule import lr_at


class Task(Protocol):
    weights: dict[str, float]
    align_layer: int | None  # the layer whose states the loss captures and aligns (None: none)

    def batch(self, step: int, micro: int) -> PackedBatch: ...

    def evaluate(self, model: nn.Module) -> dict[str, float]: ...


class LossModule(nn.Module):
    """Wraps the model so the whole loss computation is one forward (what DDP sees)."""

    def __init__(self, model: nn.Module, align_layer: int | None):
        super().__init__()
        self.model, self.align_layer = model, align_layer

    def forward(self, batch: PackedBatch) -> dict[str, torch.Tensor]:
        return packed_loss_sums(self.model, batch, self.align_layer)


@dataclass
class Trainer:
    model: nn.Module
    task: Task
    cfg: UnifiedConfig
    dist: DistInfo
    params: list[nn.Parameter] | None = None  # what trains (default: every parameter requiring grad)
    extra_files: Callable[[], dict] = field(default=lambda: {})  # more modules to checkpoint
    extra_meta: Callable[[], dict] = field(default=lambda: {})  # more entries of each checkpoint's meta.json

    def __post_init__(self) -> None:
        cfg = self.cfg
        self.out = Path(cfg.out)
        wanted = {id(p) for p in (self.params or [p for p in self.model.parameters() if p.requires_grad])}
        for p in self.model.parameters():
            p.requires_grad_(id(p) in wanted)
        on_gpu = self.dist.device.type == "cuda"
        bf16 = bool(cfg.bf16 if cfg.bf16 is not None else (on_gpu and torch.cuda.is_bf16_supported()))
        self.autocast = dict(device_type=self.dist.device.type, dtype=torch.bfloat16, enabled=bf16)
        self.ema = EMA(self.model, cfg.ema_decay)
        self.wrapped = wrap(LossModule(self.model, self.task.align_layer), self.model, self.ema.model,
                            cfg.parallel, self.dist, bf16, cfg.activation_checkpointing)
        params = [p for p in self.model.parameters() if p.requires_grad]  # FSDP replaced the objects
        self.optimizer = torch.optim.AdamW(params, lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay)
        self.token_dim = self.model.config.latent.token_dim
        self.history: list[dict[str, float]] = []

    # -- one optimisation step ----------------------------------------------
    def step(self, step: int) -> dict[str, float]:
        cfg, dev = self.cfg, self.dist.device
        lr = lr_at(step, cfg.lr, cfg.warmup, cfg.steps, cfg.schedule)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        micro = [self.task.batch(step, m).to(dev) for m in range(cfg.accum)]
        names = list(self.task.weights)
        local = torch.zeros(len(names), dtype=torch.float64)
        for b in micro:
            c = loss_counts(b, self.token_dim)
            local += torch.tensor([float(c.get(k, 0)) for k in names], dtype=torch.float64)
        counts = dict(zip(names, all_reduce_sum(local.to(dev)).cpu().tolist(), strict=True))
        sums = torch.zeros(len(names), dtype=torch.float64, device=dev)
        self.model.train()
        for m, b in enumerate(micro):
            sync = m == len(micro) - 1 or not isinstance(self.wrapped, DDP)
            with (contextlib.nullcontext() if sync else self.wrapped.no_sync()), torch.autocast(**self.autocast):
                parts = self.wrapped(b)
                loss = sum(self.task.weights[k] * v / counts[k] for k, v in parts.items() if counts.get(k))
                (loss * self.dist.world).backward()
            for i, k in enumerate(names):
                if k in parts:
                    sums[i] += parts[k].detach().double()
        norm = torch.nn.utils.clip_grad_norm_([p for g in self.optimizer.param_groups for p in g["params"]],
                                              cfg.grad_clip)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.ema.update(self.model, step)
        sums = all_reduce_sum(sums).cpu().tolist()
        row = {k: s / counts[k] for k, s in zip(names, sums, strict=True) if counts[k]}
        row["loss"] = sum(self.task.weights[k] * v for k, v in row.items())
        norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm
        return {**row, "lr": lr, "grad_norm": float(norm)}

    # -- the run --------------------------------------------------------------
    def fit(self) -> list[dict[str, float]]:
        cfg = self.cfg
        start = 0
        ckpt = latest_checkpoint(self.out) if cfg.resume else None
        if ckpt is not None:
            start = resume_from(ckpt, self.model, self.ema.model, self.optimizer)
        log = RunLogger(self.out, cfg.steps, enabled=self.dist.main, start_step=start, progress=cfg.progress)
        try:
            for step in range(start, cfg.steps):
                row = self.step(step)
                self.history.append({"step": step, **row})
                if step % cfg.log_every == 0 or step == cfg.steps - 1:
                    log.log(step, row)
                log.advance()
                done = step + 1
                if cfg.eval_every and (done % cfg.eval_every == 0 or done == cfg.steps):
                    ema = self.eval_model()
                    if self.dist.main:
                        log.log(done, self.task.evaluate(ema), kind="eval")
                    barrier()
                if done % cfg.ckpt_every == 0 or done == cfg.steps:
                    self.save(done)
        finally:
            log.close()
        return self.history

    def eval_model(self) -> nn.Module | None:
        """The EMA weights as a plain module on the main rank (a collective when sharded)."""
        if not is_sharded(self.ema.model):
            return self.ema.model
        state = full_state(self.ema.model)
        if not self.dist.main:
            return None
        from unigendet.unified.presets import create_model

        plain = create_model(self.model.config)
        plain.load_state_dict(state)
        return plain.to(self.dist.device).eval()

    def save(self, step: int) -> None:
        # Gathering is collective; only the main rank writes.
        model, ema = full_state(self.model), full_state(self.ema.model)
        optimizer = full_optimizer_state(self.model, self.optimizer)
        if self.dist.main:
            save_train_checkpoint(self.out, step, model, self.model.config, ema, optimizer, self.extra_meta(),
                                  keep=self.cfg.keep_checkpoints, files=self.extra_files(), train=self.cfg.to_dict())
        barrier()
