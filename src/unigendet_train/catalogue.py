"""Every training stage by name; the stage modules are imported on the first call, so that
importing the command line does not import the training code."""

from __future__ import annotations

from .stages import STAGES, Stage

STAGE_MODULES = ("baselines", "codec", "ensemble", "forensic", "gendet", "npr", "oneclass", "recon", "unified",
                 "vit_pretrain")


def load_stages() -> dict[str, Stage]:
    """Import the modules that register stages and return the registry: name -> Stage."""
    import importlib

    for name in STAGE_MODULES:
        importlib.import_module(f"{__package__}.{name}")
    return STAGES
