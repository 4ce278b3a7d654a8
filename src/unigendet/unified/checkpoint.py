"""Self-describing checkpoints, written atomically, read without unpickling.

A checkpoint is a run directory (`unigendet.rundir`, the layout every detector run has):

    config.json          version, "kind": "unigendet", name, "model": the ModelConfig (rebuilds the model
                         with no flags), "train": the options it was trained with (when a trainer saved it)
    meta.json            step, data position, anything JSON
    model.safetensors    weights
    ema.safetensors      EMA weights (optional)
    optimizer.safetensors + optimizer.json   optimizer tensors and the rest (optional)
    state.safetensors    other tensors a trainer needs to resume, e.g. RNG states (optional)

It is written under a temporary name and renamed into place, so a crash never
leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file
from torch import nn

from ..rundir import UNIGENDET, read_meta, read_run_config, run_config, write_run
from ..weights import CheckpointError, load_weights, read_weights, tensors_for_saving
from .config import ModelConfig


def save_checkpoint(
    path: str | os.PathLike,
    model: nn.Module | dict[str, torch.Tensor],
    config: ModelConfig,
    *,
    ema: nn.Module | dict[str, torch.Tensor] | None = None,
    optimizer: torch.optim.Optimizer | dict[str, Any] | None = None,
    meta: dict[str, Any] | None = None,
    tensors: dict[str, torch.Tensor] | None = None,
    files: dict[str, nn.Module] | None = None,
    train: dict[str, Any] | None = None,
    json_files: dict[str, Any] | None = None,
    carry: tuple[str, ...] = (),
) -> Path:
    """Write a checkpoint directory atomically. Model, EMA and optimizer are modules or their
    state dicts; `files` adds modules saved as `<name>.safetensors`; `train`, `json_files` and
    `carry` are the run directory's (`rundir.write_run`)."""
    def write(tmp: Path) -> None:
        save_file(tensors_for_saving(_state(model)), str(tmp / "model.safetensors"))
        if ema is not None:
            save_file(tensors_for_saving(_state(ema)), str(tmp / "ema.safetensors"))
        if optimizer is not None:
            opt_tensors, rest = _split_optimizer(_state(optimizer))
            save_file(opt_tensors, str(tmp / "optimizer.safetensors"))
            (tmp / "optimizer.json").write_text(json.dumps(rest))
        if tensors:
            save_file(tensors_for_saving(tensors), str(tmp / "state.safetensors"))
        for name, module in (files or {}).items():
            save_file(tensors_for_saving(module.state_dict()), str(tmp / f"{name}.safetensors"))

    config_json = run_config(UNIGENDET, config.name, {"model": config.to_dict()}, train)
    return write_run(path, config_json, meta, write, json_files, carry)


def load_config(path: str | os.PathLike) -> ModelConfig:
    """The ModelConfig of a checkpoint (older layouts included, see `rundir`)."""
    cfg = read_run_config(path)
    if cfg.get("kind") != UNIGENDET:
        raise CheckpointError(f"{path}/config.json: a {cfg.get('kind')!r} run, not a UniGenDet checkpoint")
    try:
        return ModelConfig.from_dict(cfg["model"])
    except (KeyError, ValueError, TypeError) as e:
        raise CheckpointError(f"{path}/config.json: not a valid model config ({e!r})") from e


def load_model(path: str | os.PathLike, ema: bool = True, device: str | torch.device = "cpu"):
    """Rebuild the model from config.json and load EMA weights when present."""
    from .presets import create_model

    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"{path}: checkpoint directory not found")
    cfg = load_config(path)
    read_meta(path)  # its format version is checked
    model = create_model(cfg)
    file = path / "ema.safetensors" if ema and (path / "ema.safetensors").is_file() else path / "model.safetensors"
    load_weights(model, file)
    return model.to(device).eval()


def save_optimizer(path: str | os.PathLike, optimizer: torch.optim.Optimizer) -> None:
    """An optimizer's state into a directory as `read_optimizer` reads it (tensors in safetensors)."""
    tensors, rest = _split_optimizer(optimizer.state_dict())
    save_file(tensors, str(Path(path) / "optimizer.safetensors"))
    (Path(path) / "optimizer.json").write_text(json.dumps(rest))


def read_optimizer(path: str | os.PathLike) -> dict[str, Any]:
    """The optimizer state dict saved in a checkpoint; parameter keys as saved (indices
    or fully qualified names)."""
    path = Path(path)
    rest = json.loads((path / "optimizer.json").read_text())
    tensors = read_weights(path / "optimizer.safetensors")
    state = {}
    for pid, entries in rest["state"].items():
        key = int(pid) if pid.isdigit() else pid
        state[key] = {k: tensors[v["tensor"]] if isinstance(v, dict) else v for k, v in entries.items()}
    groups = [{k: tuple(v) if isinstance(v, list) and k != "params" else v for k, v in g.items()}
              for g in rest["param_groups"]]  # JSON turned tuples (betas) into lists
    return {"state": state, "param_groups": groups}


def load_optimizer(optimizer: torch.optim.Optimizer, path: str | os.PathLike) -> None:
    optimizer.load_state_dict(read_optimizer(path))


def _state(obj) -> dict:
    return obj if isinstance(obj, dict) else obj.state_dict()


def _split_optimizer(sd: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    tensors: dict[str, torch.Tensor] = {}
    state: dict[str, dict[str, Any]] = {}
    for pid, entries in sd["state"].items():
        state[str(pid)] = {}
        for k, v in entries.items():
            if isinstance(v, torch.Tensor):
                name = f"state.{pid}.{k}"
                tensors[name] = v.detach().contiguous().clone()
                state[str(pid)][k] = {"tensor": name}
            else:
                state[str(pid)][k] = v
    return tensors, {"state": state, "param_groups": sd["param_groups"]}
