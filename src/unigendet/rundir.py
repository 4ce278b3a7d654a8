"""The run directory: the one on-disk layout of everything this package saves, a detector of any kind
and a UniGenDet checkpoint alike. `write_run` writes one atomically; `read_run_config` and `read_meta`
read one.

    config.json        {"format_version": 1, "kind": KIND, "name": NAME, ...the kind's own fields...,
                        "train": the options it was trained with (when a trainer saved it)}
                       (UniGenDet's own field is "model": its ModelConfig, which rebuilds the network)
    meta.json          what the run records beside it: step, data position, metrics (any JSON)
    NAME.safetensors   weights, one file per module; never a pickle
    other files        JSON files a kind asks for, and files carried over from the run directory replaced

Older layouts are recognised here, once, and read as this one: a UniGenDet checkpoint whose
config.json was its flat ModelConfig (with or without a "kind") and whose format version was in
meta.json.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .weights import CheckpointError, atomic_directory

FORMAT_VERSION = 1
UNIGENDET = "unigendet"  # the kind of a UniGenDet checkpoint


def run_config(kind: str, name: str, fields: dict[str, Any], train: dict | None = None) -> dict[str, Any]:
    """config.json's object: version, kind and name first, the kind's fields, the training options."""
    reserved = {"format_version", "kind", "name", "train"} & set(fields)
    if reserved:
        raise ValueError(f"a {kind} run's own fields may not be named {sorted(reserved)}")
    config = {"format_version": FORMAT_VERSION, "kind": kind, "name": name, **fields}
    if train is not None:
        config["train"] = train
    return config


def write_run(run_dir: str | os.PathLike, config: dict[str, Any], meta: dict | None = None,
              write: Callable[[Path], None] | None = None, json_files: dict[str, Any] | None = None,
              carry: tuple[str, ...] = ()) -> Path:
    """Write the run directory atomically (a crash leaves the old one, or none, never half of one):
    config.json, meta.json, whatever `write(tmp)` puts in the new directory (weights), `json_files`,
    and the files named in `carry` copied from the directory being replaced."""
    run_dir = Path(run_dir)
    with atomic_directory(run_dir) as tmp:
        if write is not None:
            write(tmp)
        for name, value in {"meta.json": meta or {}, **(json_files or {})}.items():
            (tmp / name).write_text(json.dumps(value, indent=2, sort_keys=True))
        for name in carry:
            if (run_dir / name).is_file():
                shutil.copy2(run_dir / name, tmp / name)
        (tmp / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True))
    return run_dir


def read_run_config(run_dir: str | os.PathLike) -> dict[str, Any]:
    """config.json in today's layout (older ones converted), its version checked."""
    f = Path(run_dir) / "config.json"
    if not f.is_file():
        raise CheckpointError(f"{run_dir}: no config.json; is this a run or checkpoint directory?")
    try:
        config = json.loads(f.read_text())
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{f}: not valid JSON ({e})") from e
    if not isinstance(config, dict):
        raise CheckpointError(f"{f}: not a JSON object")
    if "format_version" not in config and isinstance(config.get("llm"), dict):  # a flat UniGenDet config
        kind = config.pop("kind", UNIGENDET)
        version = _stored_meta(Path(run_dir)).get("format_version", FORMAT_VERSION)
        config = {"format_version": version, "kind": kind, "name": config.get("name", ""), "model": config}
    if config.get("format_version", FORMAT_VERSION) > FORMAT_VERSION:
        raise CheckpointError(f"{f}: format version {config['format_version']} is newer than this code")
    return config


def read_meta(run_dir: str | os.PathLike) -> dict[str, Any]:
    """meta.json ({} when there is none); a format version kept there by older checkpoints is dropped."""
    meta = _stored_meta(Path(run_dir))
    if meta.pop("format_version", FORMAT_VERSION) > FORMAT_VERSION:
        raise CheckpointError(f"{run_dir}/meta.json: format version is newer than this code")
    return meta


def _stored_meta(run_dir: Path) -> dict[str, Any]:
    f = run_dir / "meta.json"
    try:
        meta = json.loads(f.read_text()) if f.is_file() else {}
    except json.JSONDecodeError as e:
        raise CheckpointError(f"{f}: not valid JSON ({e})") from e
    return meta if isinstance(meta, dict) else {}
