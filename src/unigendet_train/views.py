"""Views of training images, made once and kept: one naming, one random stream, one on-disk table.

A view of an image is named `path#view` (the path resolved, so one image has one key however it
was named), and view v of an image is drawn from its own random stream `view_rng(seed, path, v)`,
so any subset of the records (a split, a fold) gets the same views. A `ViewTable` keeps named
tensor fields of such rows in one safetensors file per view recipe; new rows are appended and the
file is written under a temporary name and renamed, so a killed run leaves the previous table;
builders save every `SAVE_EVERY` new rows, so a killed build resumes from its last save.
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

SAVE_EVERY = 512  # new rows between saves of a table being built


def view_key(path: str | Path, view: int) -> str:
    return f"{Path(path).resolve()}#{view}"


def view_rng(seed: int, path: str | Path, view: int) -> random.Random:
    """The random stream of one view of one image (the path as the records name it)."""
    digest = hashlib.sha1(f"{seed}|{path}|{view}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


def recipe_key(recipe: dict) -> str:
    """A short name for everything that changes a view's rows (the table's file name)."""
    return hashlib.sha1(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


class ViewTable:
    """Rows of named tensor fields keyed by view name, in `file` (None: in memory only)."""

    def __init__(self, file: str | Path | None, fields: tuple[str, ...]):
        self.file, self.fields = (Path(file) if file is not None else None), fields
        self.index: dict[str, int] = {}
        self.parts: dict[str, list[torch.Tensor]] = {f: [] for f in fields}
        self.meta: dict = {}
        self.changed, self.unsaved = False, 0
        if self.file is not None and self.file.is_file():
            with safe_open(str(self.file), framework="pt") as f:
                stored = json.loads(f.metadata()["table"])
                for name in fields:
                    self.parts[name].append(f.get_tensor(name))
            self.index = {k: i for i, k in enumerate(stored["keys"])}
            self.meta = stored["meta"]

    def __contains__(self, key: str) -> bool:
        return key in self.index

    def missing(self, keys: Iterable[str]) -> list[str]:
        """The keys not in the table yet, each once, in order."""
        return [k for k in dict.fromkeys(keys) if k not in self.index]

    def add(self, keys: list[str], **rows: torch.Tensor) -> None:
        if set(rows) != set(self.fields):
            raise ValueError(f"a row of this table has the fields {self.fields}, got {sorted(rows)}")
        start = len(self.index)
        self.index.update({k: start + i for i, k in enumerate(keys)})
        for name, value in rows.items():
            self.parts[name].append(value)
        self.changed = True
        self.unsaved += len(keys)

    def checkpoint(self) -> None:
        """Save when `SAVE_EVERY` rows were added since the last save (a long build keeps its work)."""
        if self.unsaved >= SAVE_EVERY:
            self.save()

    def rows(self, keys: list[str]) -> dict[str, torch.Tensor]:
        """The fields of the rows named by `keys`, in that order."""
        at = torch.tensor([self.index[k] for k in keys], dtype=torch.long)
        out = {}
        for name in self.fields:
            if len(self.parts[name]) > 1:
                self.parts[name] = [torch.cat(self.parts[name])]
            out[name] = self.parts[name][0][at]
        return out

    def save(self) -> None:
        """Write the table when rows were added (to a temporary name, then renamed)."""
        if self.file is None or not self.changed:
            return
        tensors = {name: torch.cat(self.parts[name]).contiguous() for name in self.fields}
        self.parts = {name: [t] for name, t in tensors.items()}
        table = {"keys": sorted(self.index, key=self.index.get), "meta": self.meta}
        self.file.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.file.with_name(self.file.name + ".tmp")
        save_file(tensors, str(tmp), metadata={"table": json.dumps(table)})
        tmp.replace(self.file)
        self.changed, self.unsaved = False, 0
