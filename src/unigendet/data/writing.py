"""Writers a kill cannot corrupt: a file appears whole or not at all, and a folder being built
carries a mark until it is complete, so no reader takes a half-built dataset for a whole one."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from .records import DataError, Record

INCOMPLETE = ".incomplete"  # present in a dataset folder while it is being built
_BUILDING: set[Path] = set()  # folders this process is building


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """A temporary name beside `path` to write to; renamed to `path` when the block ends without error."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextmanager
def building(folder: str | os.PathLike) -> Iterator[Path]:
    """Mark `folder` incomplete while the block runs (a kill leaves the mark; a rerun clears it).
    Nested blocks on one folder leave the mark to the outermost."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    key = folder.resolve()
    outermost = key not in _BUILDING
    if outermost:
        (folder / INCOMPLETE).write_text("being built; a kill leaves this mark\n")
        _BUILDING.add(key)
    try:
        yield folder
    finally:
        if outermost:
            _BUILDING.discard(key)
    if outermost:  # reached only when the block ended without error
        (folder / INCOMPLETE).unlink()


def check_complete(folder: str | os.PathLike) -> None:
    """Raise DataError when `folder` is a dataset whose build was interrupted or is under way
    elsewhere (this process may read what it is building)."""
    if (Path(folder) / INCOMPLETE).exists() and Path(folder).resolve() not in _BUILDING:
        raise DataError(Path(folder), "its build was interrupted (it holds part of the images): build it again")


def write_manifest_csv(out: Path, records: Sequence[Record], columns: Sequence[str]) -> None:
    """`out/manifest.csv` with these columns (paths relative to `out`), written whole or not at all."""
    with atomic_file(out / "manifest.csv") as tmp, tmp.open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        w.writeheader()
        for r in records:
            w.writerow(r.to_row(out))
