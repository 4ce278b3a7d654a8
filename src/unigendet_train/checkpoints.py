"""Training checkpoints: `out/checkpoints/step-NNNNNN/` plus an atomically replaced `latest` pointer."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import torch

from unigendet.rundir import read_meta
from unigendet.unified.checkpoint import read_optimizer, save_checkpoint
from unigendet.weights import load_weights, read_weights

from .parallel import is_sharded, load_full_optimizer_state, load_full_state


def rng_tensors() -> dict[str, torch.Tensor]:
    state = {"torch": torch.get_rng_state()}
    np_state = np.random.get_state()
    state["numpy_keys"] = torch.from_numpy(np_state[1].astype(np.int64))
    state["numpy_pos"] = torch.tensor([np_state[2]], dtype=torch.int64)
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def restore_rng(state: dict[str, torch.Tensor]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(("MT19937", state["numpy_keys"].numpy().astype(np.uint32), int(state["numpy_pos"][0]), 0, 0.0))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])


def step_checkpoint(out: str | Path, step: int) -> Path:
    """Where a run saves its checkpoint of `step` (the run's `latest` pointer names the newest)."""
    return Path(out) / "checkpoints" / f"step-{step:06d}"


def save_train_checkpoint(out: Path, step: int, model, config, ema, optimizer, meta: dict, keep: int = 2,
                          files: dict | None = None, train: dict | None = None) -> Path:
    """Model, EMA and optimizer are modules or full state dicts (see `parallel`); `train`: the options the
    run was started with (config.json's "train", as every run directory records them)."""
    root = Path(out) / "checkpoints"
    path = save_checkpoint(step_checkpoint(out, step), model, config, ema=ema, optimizer=optimizer,
                           meta={"step": step, "data_position": step, **meta}, tensors=rng_tensors(), files=files,
                           train=train)
    tmp = root / "latest.tmp"
    tmp.write_text(path.name)
    os.replace(tmp, root / "latest")
    for old in sorted(root.glob("step-*"))[:-keep]:
        shutil.rmtree(old)
    return path


def resume_from(path: Path, model, ema, optimizer) -> int:
    """Restore model, EMA, optimizer (FQN-keyed) and RNG, on every rank; returns the step
    to continue from."""
    for module, file in ((model, "model.safetensors"), (ema, "ema.safetensors")):
        if module is None:
            continue
        if is_sharded(module):
            load_full_state(module, read_weights(path / file))
        else:
            load_weights(module, path / file)  # names what is missing or mis-shaped
    load_full_optimizer_state(model, optimizer, read_optimizer(path))
    restore_rng(read_weights(path / "state.safetensors"))
    return int(read_meta(path)["step"])
