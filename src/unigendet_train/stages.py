"""The registry of training stages: name -> (frozen config class, run function).

`unigendet train <stage> --field value ...` builds the stage's config from its
dataclass fields, so a new option is a new field, never a new flag by hand.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

STAGES: dict[str, tuple[type, Callable[[Any], dict]]] = {}


def register_stage(name: str, config_cls: type):
    def wrap(fn: Callable[[Any], dict]) -> Callable[[Any], dict]:
        STAGES[name] = (config_cls, fn)
        return fn

    return wrap


def load_stages() -> dict[str, tuple[type, Callable[[Any], dict]]]:
    """Import the modules that register stages (lazily: training code only when training)."""
    from . import anomaly, baselines, ensemble, gendet, npr, unified, vit_pretrain  # noqa: F401  (registration)

    return STAGES
