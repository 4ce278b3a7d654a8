"""What a detector training run leaves behind, and the metrics it reports.

A run directory (read back by `unigendet.detectors.load_detector`):

    config.json          {"kind": ..., "format_version": ..., ...}: rebuilds the detector with no flags
    meta.json            anything JSON (seed, sizes, timings)
    <name>.safetensors   one file per module
    metrics.json         train / val metrics and the loss curves
    log.jsonl            one JSON row per logged value, streamed while training

The directory is assembled under a temporary name and renamed into place; files named in
`carry` (the streamed log) are copied over from the directory being replaced.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file
from torch import nn

from unigendet.checkpoint import atomic_directory
from unigendet.detectors import FORMAT_VERSION


def save_module_checkpoint(
    path: str | os.PathLike,
    modules: dict[str, nn.Module],
    config_json: dict[str, Any],
    meta: dict[str, Any] | None = None,
    json_files: dict[str, Any] | None = None,
    carry: tuple[str, ...] = ("log.jsonl",),
) -> Path:
    """Write `path/` atomically: config.json, meta.json, `<name>.safetensors` per module, extra JSON files."""
    if "kind" not in config_json:
        raise ValueError("config_json needs a 'kind' (the detector loader to use)")
    path = Path(path)
    with atomic_directory(path) as tmp:
        for name, module in modules.items():
            state = {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}
            save_file(state, str(tmp / f"{name}.safetensors"))
        for name, value in (json_files or {}).items():
            (tmp / name).write_text(json.dumps(value, indent=2, sort_keys=True))
        (tmp / "meta.json").write_text(json.dumps(meta or {}, indent=2, sort_keys=True))
        for name in carry:
            if (path / name).is_file():
                shutil.copy2(path / name, tmp / name)
        cfg = {"format_version": FORMAT_VERSION, **config_json}
        (tmp / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True))
    return path


def seed_everything(seed: int) -> torch.Generator:
    """Seed torch and numpy; returns a torch Generator for data order."""
    torch.manual_seed(seed)
    np.random.seed(seed)
    return torch.Generator().manual_seed(seed)
