"""UniGenDet: one model that generates images from text and detects generated images."""

from .unified.config import LatentConfig, LLMConfig, ModelConfig, ViTConfig
from .unified.presets import create_model, get_config, list_models

__version__ = "0.1.0"
__all__ = ["LLMConfig", "LatentConfig", "ModelConfig", "ViTConfig", "create_model", "get_config", "list_models"]
