"""Weights and run directories on disk, for every model family: safetensors only (nothing is
unpickled), strict loading with clear errors, directories written atomically, and the one reading
of a checkpoint string (`resolve_checkpoint`)."""

from __future__ import annotations

import contextlib
import hashlib
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


SHIPPED_ROOT = Path(__file__).resolve().parent / "shipped"  # the package's trained runs (package data)
SHIPPED_DEFAULT = "wild"  # the detector `detect`, `serve` and the Python API use when none is named


def shipped_path(name: str | None = None) -> Path:
    """The run directory of a detector the package ships (default: SHIPPED_DEFAULT)."""
    path = SHIPPED_ROOT / (name or SHIPPED_DEFAULT)
    if not (path / "config.json").is_file():
        raise CheckpointError(f"the package holds no shipped detector {name or SHIPPED_DEFAULT!r} (looked in {path})")
    return path


def latest_checkpoint(run: str | os.PathLike) -> Path | None:
    """A training run's newest checkpoint (its `checkpoints/latest` pointer); None when it has none."""
    pointer = Path(run) / "checkpoints" / "latest"
    if not pointer.is_file():
        return None
    path = pointer.parent / pointer.read_text().strip()
    if not path.is_dir():
        raise CheckpointError(f"{pointer} points to missing {path}")
    return path


def resolve_checkpoint(spec: str | os.PathLike) -> Path:
    """The directory a checkpoint string names; every command and loader reads one through here.

    "shipped" or "shipped:NAME": a run directory the package ships; a training run directory: its
    latest checkpoint; any other directory (a detector run, a `step-N` checkpoint, a released
    UniGenDet directory): itself."""
    text = str(spec)
    if text == "shipped" or text.startswith("shipped:"):
        return shipped_path(text.partition(":")[2] or None)
    path = latest_checkpoint(spec) or Path(spec)
    if not path.is_dir():
        raise CheckpointError(f"{path}: no such checkpoint directory")
    return path


def checkpoint_digest(path: str | os.PathLike) -> str:
    """A short name for a checkpoint directory's contents (its config and weight files): results
    computed with it can be cached under this name and are recomputed when the weights change."""
    h = hashlib.sha1()
    for f in sorted(Path(path).glob("*")):
        if f.is_file() and f.suffix in (".json", ".safetensors"):
            h.update(f.name.encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


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
