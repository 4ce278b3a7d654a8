"""UniGenDet: one model that generates images from text and detects generated images."""

from .config import LatentConfig, LLMConfig, ModelConfig, ViTConfig
from .registry import create_model, get_config, list_models

__version__ = "0.1.0"
__all__ = ["LLMConfig", "LatentConfig", "ModelConfig", "ViTConfig", "create_model", "get_config", "list_models"]
