"""Loading large checkpoints without holding them twice.

The model is built on the meta device (no memory), then every tensor is read on its
own from the safetensors file(s) - plain reads at the offsets the header gives, no
memory map, so no file pages stay resident - checked against the model's shape, cast,
placed on its device and assigned. Peak memory is the loaded model plus about one
tensor, not model + state dict (and about one tensor of host memory when the model
lives on a GPU).

Accepted layouts: one `.safetensors` file; a directory with `model.safetensors.index.json`
(sharded, as written by `transformers`/`huggingface_hub`); a directory with one
`ema.safetensors` or `model.safetensors` (BAGEL's and this project's checkpoints, EMA
preferred). Shape mismatches are always an error; missing and unexpected keys are errors
unless `strict=False`. `fill_from` names a base checkpoint that supplies the missing keys
(the public UniGenDet evaluation fills a fine-tuned checkpoint's gaps from BAGEL's
`ema.safetensors`); the report lists what was filled.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..weights import CheckpointError

DeviceMap = dict[str, str | torch.device]  # name prefix -> device ("" matches everything)


@dataclass
class LoadReport:
    loaded: int = 0
    filled: list[str] = field(default_factory=list)  # taken from `fill_from`
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)

    def summary(self) -> str:
        parts = [f"{self.loaded} tensors loaded"]
        for name, items in (("filled from the base", self.filled), ("missing", self.missing),
                            ("unexpected", self.unexpected), ("shape mismatches", self.mismatched)):
            if items:
                parts.append(f"{len(items)} {name}, e.g. {items[:3]}")
        return "; ".join(parts)


_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
           "BOOL": torch.bool}


class SafetensorsFile:
    """The header of a .safetensors file and tensor-by-tensor reads (little-endian hosts)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        size = self.path.stat().st_size
        with self.path.open("rb") as f:
            head = f.read(8)
            n = int.from_bytes(head, "little") if len(head) == 8 else -1
            if n < 2 or 8 + n > size:
                raise CheckpointError(f"{self.path}: not a safetensors file (bad header length)")
            try:
                header = json.loads(f.read(n))
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                raise CheckpointError(f"{self.path}: unreadable safetensors header ({e})") from e
        header.pop("__metadata__", None)
        self.start, self.entries = 8 + n, header
        for k, e in header.items():
            begin, end = e["data_offsets"]
            if e["dtype"] not in _DTYPES:
                raise CheckpointError(f"{self.path}: {k} has unsupported dtype {e['dtype']}")
            if self.start + end > size:
                raise CheckpointError(f"{self.path}: truncated ({k} ends past the end of the file)")

    def names(self) -> list[str]:
        return list(self.entries)

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.entries[name]["shape"])

    def read(self, name: str, fh) -> torch.Tensor:
        e = self.entries[name]
        begin, end = e["data_offsets"]
        buf = torch.empty(end - begin, dtype=torch.uint8)
        fh.seek(self.start + begin)
        if fh.readinto(buf.numpy()) != end - begin:
            raise CheckpointError(f"{self.path}: short read for {name}")
        return buf.view(_DTYPES[e["dtype"]]).reshape(e["shape"])


def shard_files(path: str | os.PathLike) -> dict[str, Path]:
    """tensor name -> file holding it, for any accepted layout."""
    path = Path(path)
    if path.is_file():
        files = [path]
    elif (path / "model.safetensors.index.json").is_file():
        index = json.loads((path / "model.safetensors.index.json").read_text())
        try:
            return {k: path / v for k, v in index["weight_map"].items()}
        except (KeyError, AttributeError) as e:
            raise CheckpointError(f"{path}/model.safetensors.index.json has no weight_map") from e
    elif (path / "ema.safetensors").is_file():
        files = [path / "ema.safetensors"]
    elif (path / "model.safetensors").is_file():
        files = [path / "model.safetensors"]
    else:
        raise CheckpointError(f"{path}: no .safetensors file, index, ema.safetensors or model.safetensors")
    return {k: f for f in files for k in SafetensorsFile(f).names()}


def device_for(name: str, device_map: DeviceMap | None, default: str | torch.device) -> torch.device:
    """The device of the longest matching prefix in `device_map` (else `default`)."""
    best = None
    for prefix, dev in (device_map or {}).items():
        if name.startswith(prefix) and (best is None or len(prefix) > len(best[0])):
            best = (prefix, dev)
    return torch.device(best[1] if best else default)


def _assign(model: nn.Module, name: str, tensor: torch.Tensor) -> None:
    module_name, _, attr = name.rpartition(".")
    module = model.get_submodule(module_name) if module_name else model
    if attr in module._parameters:
        old = module._parameters[attr]
        module._parameters[attr] = nn.Parameter(tensor, requires_grad=old.requires_grad)
    elif attr in module._buffers:
        module._buffers[attr] = tensor
    else:
        raise CheckpointError(f"{name} is neither a parameter nor a buffer of the model")


@torch.no_grad()
def stream_into(model: nn.Module, path: str | os.PathLike, dtype: torch.dtype | None = torch.bfloat16,
                device: str | torch.device = "cpu", device_map: DeviceMap | None = None,
                fill_from: str | os.PathLike | None = None, strict: bool = True,
                on_tensor: Callable[[str], None] | None = None) -> LoadReport:
    """Fill a (meta-device) model tensor by tensor. `dtype` casts floating tensors (None keeps
    the checkpoint's); `on_tensor` is called after each (for progress or memory sampling)."""
    expected = model.state_dict(keep_vars=True)
    report = LoadReport()
    sources = shard_files(path)
    report.unexpected = sorted(set(sources) - set(expected))
    todo = {k: sources[k] for k in expected if k in sources}
    if fill_from is not None:
        base = shard_files(fill_from)
        report.filled = sorted(k for k in expected if k not in sources and k in base)
        todo.update({k: base[k] for k in report.filled})
    report.missing = sorted(set(expected) - set(todo))
    by_file: dict[Path, list[str]] = {}
    for k, f in todo.items():
        by_file.setdefault(f, []).append(k)
    for f, names in by_file.items():
        sf = SafetensorsFile(f)
        with f.open("rb") as fh:
            for k in names:
                shape = sf.shape(k)
                if shape != tuple(expected[k].shape):
                    report.mismatched.append(f"{k}: checkpoint {shape} vs model {tuple(expected[k].shape)}")
                    continue
                t = sf.read(k, fh)
                if dtype is not None and t.is_floating_point():
                    t = t.to(dtype)
                _assign(model, k, t.to(device_for(k, device_map, device)))
                report.loaded += 1
                if on_tensor is not None:
                    on_tensor(k)
    if report.mismatched or (strict and (report.missing or report.unexpected)):
        raise CheckpointError(f"{path} does not fit the model: {report.summary()}")
    return report


def load_large(config, path: str | os.PathLike, **kw):
    """Build `config`'s UniGenDet on the meta device and stream the checkpoint into it.
    Returns (model in eval mode, LoadReport)."""
    from .presets import create_model

    model = create_model(config, device="meta")
    report = stream_into(model, path, **kw)
    still_meta = [n for n, p in model.state_dict().items() if p.is_meta]
    if still_meta:
        raise CheckpointError(f"{len(still_meta)} tensors were not loaded (strict=False left them empty), "
                              f"e.g. {still_meta[:3]}")
    return model.eval(), report
