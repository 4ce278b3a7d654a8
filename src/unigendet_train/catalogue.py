"""Every training stage by name; the stage modules are imported on the first call, so that
importing the command line does not import the training code."""

from __future__ import annotations

from .stages import STAGES, Stage


def load_stages() -> dict[str, Stage]:
    """Import the modules that register stages and return the registry: name -> Stage."""
    from . import anomaly, baselines, ensemble, gendet, npr, unified, vit_pretrain  # noqa: F401  (registration)

    return STAGES
