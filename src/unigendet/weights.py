"""Weights and run directories on disk, for every model family: safetensors only (nothing is
unpickled), strict loading with clear errors, and directories written atomically."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint is missing, truncated or does not fit the model."""


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a fresh temporary directory beside `path`; when the block succeeds it takes
    `path`'s place in one rename (an existing `path` is swapped out only then)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        yield tmp
        old = None
        if path.exists():
            old = path.with_name(f".{path.name}.old-{os.getpid()}")
            path.rename(old)
        tmp.rename(path)
        if old is not None:
            shutil.rmtree(old)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """A checkpoint directory, or a training run directory (its `checkpoints/latest`)."""
    path = Path(path)
    pointer = path / "checkpoints" / "latest"
    if pointer.is_file():
        path = pointer.parent / pointer.read_text().strip()
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such checkpoint directory")
    return path


def read_weights(file: str | os.PathLike) -> dict[str, torch.Tensor]:
    try:
        return load_file(str(file))
    except FileNotFoundError:
        raise CheckpointError(f"{file}: file not found") from None
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{file}: unreadable or truncated safetensors file ({e})") from e


def load_weights(model: nn.Module, file: str | os.PathLike) -> None:
    """Load weights strictly: every key present, none extra, every shape equal."""
    state = read_weights(file)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and state[k].shape != v.shape
    ]
    problems = []
    if missing:
        problems.append(f"{len(missing)} missing keys, e.g. {missing[:3]}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected keys, e.g. {unexpected[:3]}")
    if wrong:
        problems.append(f"{len(wrong)} shape mismatches, e.g. {wrong[:3]}")
    if problems:
        raise CheckpointError(f"{file} does not fit the model: " + "; ".join(problems))
    model.load_state_dict(state)


def save_weights(module: nn.Module | dict[str, torch.Tensor], file: str | os.PathLike) -> None:
    """A module's (or a state dict's) tensors to one safetensors file."""
    state = module if isinstance(module, dict) else module.state_dict()
    save_file(tensors_for_saving(state), str(file))


def tensors_for_saving(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    # safetensors refuses shared storage (tied weights): store contiguous copies
    return {k: v.detach().contiguous().clone() for k, v in state.items()}
