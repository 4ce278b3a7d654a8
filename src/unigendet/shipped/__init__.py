"""Trained detectors that ship inside the package (each folder is a detector run directory with
its model card, MODEL_CARD.md). A checkpoint string "shipped" or "shipped:NAME" names one
(`unigendet.weights.resolve_checkpoint`)."""

from __future__ import annotations

import os

from ..weights import CheckpointError, shipped_path

DETECTOR_ENV = "UNIGENDET_DETECTOR"  # a detector run to use when none is named
SHIPPED = "shipped"  # the checkpoint string of the package's own default detector (weights.SHIPPED_DEFAULT)

__all__ = ["DETECTOR_ENV", "SHIPPED", "default_checkpoint", "default_detector", "load_default_detector",
           "shipped_path"]


def load_default_detector(device: str = "cpu", runtime: str = "auto"):
    """The shipped in-the-wild detector, loaded (`runtime`: what runs its networks, see
    `unigendet.backbones.runtime`)."""
    from ..detectors import load_detector

    return load_detector(shipped_path(), device=device, runtime=runtime)


def default_checkpoint() -> str:
    """The checkpoint string used when none is named: $UNIGENDET_DETECTOR, else "shipped" (which each
    machine resolves to its own installed copy)."""
    return os.environ.get(DETECTOR_ENV) or SHIPPED


def default_detector() -> str:
    """The detector used when none is named, as a path: $UNIGENDET_DETECTOR, else the shipped one."""
    if default_checkpoint() != SHIPPED:
        return default_checkpoint()
    try:
        return str(shipped_path())
    except CheckpointError as e:
        raise CheckpointError(f"{e}: pass --checkpoint RUN (a run `unigendet train` or `make demo` wrote), "
                              f"or set {DETECTOR_ENV}=RUN") from None
