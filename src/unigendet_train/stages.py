"""The registry of training stages: name -> Stage(frozen config class, run function).

Every stage has one shape: a frozen config dataclass derived from `StageConfig` (the fields every
stage shares: data, out, seed), a run function registered with `@register_stage(name, Config)`,
and a `StageResult`. `unigendet train <stage> --field value ...` builds the stage's config from
its dataclass fields, so a new option is a new field, never a new flag by hand. Stage modules
register themselves on import; `catalogue.load_stages` imports them all.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple


@dataclass(frozen=True)
class StageConfig:
    """The fields every stage shares."""

    data: str = "runs/data"  # any layout the readers accept; stages use its train (and val) split
    out: str = "runs/stage"  # the run directory (each stage sets its own default)
    seed: int = 0

    def replace(self, **kw) -> StageConfig:
        return dataclasses.replace(self, **kw)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class LocalStageConfig(StageConfig):
    """A stage that runs in one process on one device (the unified stages take theirs from the launcher)."""

    device: str = "cpu"


@dataclass(frozen=True)
class StageResult:
    """What a stage returns: the run directory it wrote, the checkpoint that loads what it trained
    (a later stage's `--init`, `detect --checkpoint`) and its headline metrics."""

    out: Path
    checkpoint: Path
    metrics: dict[str, Any]

    @classmethod
    def of_run(cls, out: str | Path, metrics: dict[str, Any]) -> StageResult:
        """A detector run directory, which is its own checkpoint."""
        return cls(Path(out), Path(out), metrics)

    def to_dict(self) -> dict[str, Any]:
        return {"out": str(self.out), "checkpoint": str(self.checkpoint), "metrics": self.metrics}


def split_metrics(metrics: dict[str, dict[str, float]], keys: tuple[str, ...] = ("acc", "ap")) -> dict[str, float]:
    """{"train": {...}, "val": {...}} -> {"train_acc": ..., "val_ap": ...} for the headline keys."""
    return {f"{s}_{k}": v for s in ("train", "val") if s in metrics for k, v in metrics[s].items() if k in keys}


class Stage(NamedTuple):
    config: type
    run: Callable[[Any], StageResult]


STAGES: dict[str, Stage] = {}


def register_stage(name: str, config_cls: type):
    """Decorator: register `fn` as stage `name`, configured by `config_cls`; returns `fn` unchanged."""
    def wrap(fn: Callable[[Any], StageResult]) -> Callable[[Any], StageResult]:
        if name in STAGES and STAGES[name].run is not fn:
            raise ValueError(f"stage {name!r} is already registered")
        STAGES[name] = Stage(config_cls, fn)
        return fn

    return wrap
