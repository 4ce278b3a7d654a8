"""Frozen image backbones (a registry of name -> (model, preprocess)), the hand-made low-level
features registered as one of them, and the on-disk feature cache."""

from . import lowlevel, taps  # noqa: F401  (register "residual-stats" and the taps backbones)
from .base import Backbone, Preprocess, create_backbone, list_backbones, native_crop, register_backbone
from .cache import FeatureCache

__all__ = ["Backbone", "FeatureCache", "Preprocess", "create_backbone", "list_backbones", "native_crop",
           "register_backbone"]
