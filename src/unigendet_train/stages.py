"""The registry of training stages: name -> Stage(frozen config class, run function).

`unigendet train <stage> --field value ...` builds the stage's config from its
dataclass fields, so a new option is a new field, never a new flag by hand.
Stage modules register themselves on import; `catalogue.load_stages` imports them all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple


class Stage(NamedTuple):
    config: type
    run: Callable[[Any], dict]


STAGES: dict[str, Stage] = {}


def register_stage(name: str, config_cls: type):
    """Decorator: register `fn` as stage `name`, configured by `config_cls`; returns `fn` unchanged."""
    def wrap(fn: Callable[[Any], dict]) -> Callable[[Any], dict]:
        STAGES[name] = Stage(config_cls, fn)
        return fn

    return wrap
