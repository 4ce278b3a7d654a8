"""A disk cache of backbone features keyed by image content.

Layout under `root`:
    <key>/key.json                  what the key hashes: backbone name, weights fingerprint, preprocessing
    <key>/shard-00000.safetensors   tensor "features" (N, D) float32
    <key>/shard-00000.json          {"keys": [sha256 of each image file's bytes, in row order]}

An entry is keyed by the sha256 of the file's bytes, so a renamed copy hits and an edited file misses.
Each file is written to a temporary name and renamed; the sidecar goes last, so a shard counts only
once its sidecar exists, and leftover temporary files are ignored. One writer per key directory.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Sequence
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

from ..data.imageio import ImageError, open_image
from ..progress import progress_bar
from .base import Backbone, Preprocess

CACHE_FORMAT = 1  # part of every cache key: bump when the stored layout changes
_SIDECAR = re.compile(r"shard-(\d{5})\.json")


def cache_key(backbone: Backbone, preprocess: Preprocess) -> str:
    """Short hash of everything that determines a feature besides the image."""
    return hashlib.sha256(json.dumps(_key_fields(backbone, preprocess), sort_keys=True).encode()).hexdigest()[:16]


def _key_fields(backbone: Backbone, preprocess: Preprocess) -> dict:
    return {
        "format": CACHE_FORMAT,
        "backbone": backbone.name,
        "weights_sha256": backbone.fingerprint(),
        "preprocess": preprocess.describe(),
    }


def _read_bytes(path: Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise ImageError(path, f"cannot read ({e.strerror or type(e).__name__})") from None


def _keys_hash(keys: list[str]) -> str:
    return hashlib.sha256("\n".join(keys).encode()).hexdigest()


def _write_atomic(path: Path, write) -> None:
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    write(tmp)
    os.replace(tmp, path)


class FeatureCache:
    """Extract backbone features once per image content and reuse them from disk."""

    def __init__(self, root: str | os.PathLike, backbone: Backbone, preprocess: Preprocess, shard_rows: int = 4096):
        self.backbone, self.preprocess, self.shard_rows = backbone, preprocess, shard_rows
        self.dir = Path(root) / cache_key(backbone, preprocess)
        self.dir.mkdir(parents=True, exist_ok=True)
        key_file = self.dir / "key.json"
        if not key_file.exists():
            text = json.dumps(_key_fields(backbone, preprocess), indent=1, sort_keys=True)
            _write_atomic(key_file, lambda p: p.write_text(text))
        self._index: dict[str, tuple[int, int]] = {}  # content sha256 -> (shard, row)
        self._next_shard = 0
        for sidecar in sorted(self.dir.iterdir()):
            m = _SIDECAR.fullmatch(sidecar.name)
            if m:
                shard = int(m.group(1))
                for row, key in enumerate(json.loads(sidecar.read_text())["keys"]):
                    self._index.setdefault(key, (shard, row))
                self._next_shard = max(self._next_shard, shard + 1)
        self._hits = self._misses = 0

    def __len__(self) -> int:
        return len(self._index)

    def stats(self) -> dict[str, int]:
        """Requests served from the cache (hits) and images extracted (misses) since construction."""
        return {"hits": self._hits, "misses": self._misses}

    def features(
        self, paths: Sequence[str | os.PathLike], batch_size: int = 32, progress: bool = False
    ) -> torch.Tensor:
        """Features (N, D) float32 on CPU for `paths`, in order; only images not yet cached are run."""
        keys = [hashlib.sha256(_read_bytes(Path(p))).hexdigest() for p in paths]
        todo: dict[str, Path] = {}  # distinct uncached contents, first path that has each
        for key, p in zip(keys, paths):
            if key not in self._index:
                todo.setdefault(key, Path(p))
        fresh = self._extract(todo, batch_size, progress) if todo else {}
        self._misses += len(todo)
        self._hits += len(keys) - len(todo)
        out = torch.empty(len(keys), self.backbone.feature_dim)
        by_shard: dict[int, list[tuple[int, int]]] = {}
        for i, key in enumerate(keys):
            if key in fresh:
                out[i] = fresh[key]
            else:
                shard, row = self._index[key]
                by_shard.setdefault(shard, []).append((i, row))
        for shard, pairs in by_shard.items():
            rows = self._load_shard(shard)
            out[[i for i, _ in pairs]] = rows[[r for _, r in pairs]]
        return out

    @torch.no_grad()
    def _extract(self, todo: dict[str, Path], batch_size: int, progress: bool) -> dict[str, torch.Tensor]:
        """Run the backbone over `todo` in batches; every `shard_rows` rows become a shard on disk."""
        items = list(todo.items())
        starts = range(0, len(items), batch_size)
        if progress:
            starts = progress_bar(starts, desc=f"features ({self.backbone.name})", unit="batch")
        fresh: dict[str, torch.Tensor] = {}
        pending: list[str] = []
        for s in starts:
            batch = []
            for key, path in items[s : s + batch_size]:
                data = _read_bytes(path)
                if hashlib.sha256(data).hexdigest() != key:
                    raise ImageError(path, "file changed while its features were being extracted")
                batch.append(self.preprocess(open_image(data, name=str(path))))
            feats = self.backbone(torch.stack(batch).to(self.backbone.device)).float().cpu()
            for (key, _), f in zip(items[s : s + batch_size], feats):
                fresh[key] = f
                pending.append(key)
            if len(pending) >= self.shard_rows or s + batch_size >= len(items):
                self._write_shard(pending, torch.stack([fresh[k] for k in pending]))
                pending = []
        return fresh

    def _write_shard(self, keys: list[str], feats: torch.Tensor) -> None:
        shard = self._next_shard
        name = f"shard-{shard:05d}"
        meta = {"keys_sha256": _keys_hash(keys)}
        _write_atomic(self.dir / f"{name}.safetensors", lambda p: save_file({"features": feats.contiguous()}, p, meta))
        _write_atomic(self.dir / f"{name}.json", lambda p: p.write_text(json.dumps({"keys": keys})))
        for row, key in enumerate(keys):
            self._index.setdefault(key, (shard, row))
        self._next_shard += 1

    def _load_shard(self, shard: int) -> torch.Tensor:
        """A shard's features, checked against its sidecar (rows, width, and the keys' hash)."""
        name = f"shard-{shard:05d}"
        keys = json.loads((self.dir / f"{name}.json").read_text())["keys"]
        with safe_open(self.dir / f"{name}.safetensors", framework="pt") as f:
            meta, feats = f.metadata() or {}, f.get_tensor("features")
        expect = (len(keys), self.backbone.feature_dim)
        if tuple(feats.shape) != expect or meta.get("keys_sha256") != _keys_hash(keys):
            raise ValueError(
                f"{self.dir / name}: tensor {tuple(feats.shape)} disagrees with its sidecar (two writers?)"
            )
        return feats
