"""Trained detectors that ship inside the package (each folder is a detector run directory with
its model card, MODEL_CARD.md)."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path

DETECTOR_ENV = "UNIGENDET_DETECTOR"  # a detector run to use when none is named
DEFAULT = "wild"  # the default detector of `unigendet detect`, `unigendet serve` and the Python API


def shipped_path(name: str | None = None) -> Path:
    """The run directory of a shipped detector (default: DEFAULT)."""
    name = name or DEFAULT
    path = Path(str(resources.files(__name__).joinpath(name)))
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"the package holds no shipped detector {name!r} (looked in {path})")
    return path


def resolve(checkpoint: str) -> str:
    """"shipped" (or "shipped:NAME") names a shipped detector; anything else is a path, unchanged."""
    if checkpoint == "shipped" or checkpoint.startswith("shipped:"):
        return str(shipped_path(checkpoint.partition(":")[2] or None))
    return checkpoint


def load_default_detector(device: str = "cpu"):
    """The shipped in-the-wild detector, loaded."""
    from ..detectors import load_detector

    return load_detector(shipped_path(), device=device)


def default_detector() -> str:
    """The detector used when none is named: $UNIGENDET_DETECTOR, else the shipped one."""
    if os.environ.get(DETECTOR_ENV):
        return os.environ[DETECTOR_ENV]
    try:
        return str(shipped_path())
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{e}: pass --checkpoint RUN (a run `unigendet train` or `make demo` wrote), "
                                f"or set {DETECTOR_ENV}=RUN") from None
