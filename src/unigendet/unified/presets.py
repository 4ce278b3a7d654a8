"""Named model presets. The registry drives the CLI (`unigendet models`) and the
tests, which build and run every preset except the full-scale one."""

from __future__ import annotations

from collections.abc import Callable

import torch

from .config import LatentConfig, LLMConfig, ModelConfig, ViTConfig
from .encoders import encoder_dim

PRESETS: dict[str, Callable[[], ModelConfig]] = {}


def register(fn: Callable[[], ModelConfig]) -> Callable[[], ModelConfig]:
    PRESETS[fn().name] = fn
    return fn


@register
def tiny() -> ModelConfig:
    """Trains its whole loop on 2 CPU cores in minutes; 64 px. It generates in the latent space of
    the project's own autoencoder (4x downsampling, 4 channels; `unigendet train codec` fits it to
    the built-in photos). Detection looks at native-resolution crops (resizing to 64 px would erase
    the artefacts) through a fixed high-pass (a from-scratch ViT this small does not find them
    under content)."""
    return ModelConfig(name="tiny", detect_view="crop", vit=ViTConfig(input_filter="residual"),
                       latent=LatentConfig(codec="conv-vae", channels=4, downsample=4, width=32, max_latent_side=16))


@register
def tiny_forensic() -> ModelConfig:
    """The tiny model with the shipped detector's frozen forensic network as its understanding
    encoder: a native 256-px crop becomes 4 x 4 tile tokens of layer statistics (see
    `unigendet.unified.encoders`); the clean latents see the crop at 64 px."""
    base = tiny()
    return base.replace(name="tiny-forensic", vit_image_size=256,
                        vit=ViTConfig(encoder="forensic", encoder_dim=encoder_dim("forensic")))


@register
def small() -> ModelConfig:
    return ModelConfig(
        name="small",
        llm=LLMConfig(hidden_size=256, num_layers=6, num_heads=8, num_kv_heads=2, head_dim=32, intermediate_size=688),
        vit=ViTConfig(
            hidden_size=128, num_layers=4, num_heads=4, intermediate_size=512, patch_size=8, max_patches_per_side=16,
            input_filter="residual",
        ),
        latent=LatentConfig(codec="pixel", channels=48, downsample=4, max_latent_side=16),
        image_size=64,
        diga_layer=2,
        detect_view="crop",
    )


@register
def base() -> ModelConfig:
    return ModelConfig(
        name="base",
        llm=LLMConfig(
            hidden_size=768, num_layers=12, num_heads=12, num_kv_heads=4, head_dim=64, intermediate_size=2048
        ),
        vit=ViTConfig(
            hidden_size=384, num_layers=6, num_heads=6, intermediate_size=1536, patch_size=16, max_patches_per_side=32,
            input_filter="residual",
        ),
        latent=LatentConfig(codec="conv-vae", channels=16, downsample=8, max_latent_side=32),
        image_size=256,
        vit_image_size=224,
        diga_layer=4,
        detect_view="crop",
    )


@register
def bagel_7b_mot() -> ModelConfig:
    """BAGEL-7B-MoT dimensions (Qwen2.5-7B x 2 experts, SigLIP so400m/14, FLUX VAE)."""
    return ModelConfig(
        name="bagel-7b-mot",
        tokenizer="qwen2",
        llm=LLMConfig(
            vocab_size=152064,
            hidden_size=3584,
            num_layers=28,
            num_heads=28,
            num_kv_heads=4,
            head_dim=128,
            intermediate_size=18944,
            rope_theta=1_000_000.0,
            rms_norm_eps=1e-6,
        ),
        vit=ViTConfig(
            hidden_size=1152,
            num_layers=26,
            num_heads=16,
            intermediate_size=4304,
            patch_size=14,
            max_patches_per_side=70,
        ),
        latent=LatentConfig(codec="flux-vae", channels=16, downsample=8, max_latent_side=64),
        image_size=1024,
        vit_image_size=980,
        diga_layer=8,
    )


def list_models() -> list[str]:
    return list(PRESETS)


def get_config(name: str, **overrides) -> ModelConfig:
    if name not in PRESETS:
        raise KeyError(f"unknown preset {name!r}; available: {', '.join(PRESETS)}")
    cfg = PRESETS[name]()
    return cfg.replace(**overrides) if overrides else cfg


def create_model(name_or_config: str | ModelConfig, device: str | torch.device | None = None):
    """Build a model from a preset name or a config (use device='meta' to count without allocating)."""
    from .model import UniGenDet

    cfg = get_config(name_or_config) if isinstance(name_or_config, str) else name_or_config
    with torch.device(device or "cpu"):
        return UniGenDet(cfg)
