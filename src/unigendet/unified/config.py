"""Frozen model configuration.

A `ModelConfig` fully describes a network: it is written as `config.json` next to
every checkpoint and rebuilds the model with no other flags. Named presets live
in `unigendet.unified.presets`.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class LLMConfig:
    """The decoder-only language model (both experts share these dimensions)."""

    vocab_size: int = 264
    hidden_size: int = 128
    num_layers: int = 4
    num_heads: int = 4
    num_kv_heads: int = 2
    head_dim: int = 32
    intermediate_size: int = 344
    rope_theta: float = 10_000.0
    rms_norm_eps: float = 1e-6
    qkv_bias: bool = True  # Qwen2 has biases on q/k/v, none on o
    tie_word_embeddings: bool = False


@dataclass(frozen=True)
class ViTConfig:
    """NaViT-style vision encoder (SigLIP layout) for the understanding path."""

    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    intermediate_size: int = 256
    patch_size: int = 8
    max_patches_per_side: int = 16
    layer_norm_eps: float = 1e-6
    input_filter: str = "none"  # none | residual: the image minus its 3x3 local mean (see images.py)
    # "navit": the trained ViT above reads the image; another name is a frozen encoder (unified.encoders) whose
    # `encoder_dim`-wide tokens enter through the connector (the ViT fields above are then unused)
    encoder: str = "navit"
    encoder_dim: int = 0

    @property
    def frozen(self) -> bool:
        return self.encoder != "navit"

    @property
    def token_dim(self) -> int:
        """Width of one image row entering the understanding path."""
        return self.encoder_dim if self.frozen else 3 * self.patch_size**2


@dataclass(frozen=True)
class LatentConfig:
    """The generation path: codec latents cut into patches of `patch_size`."""

    codec: str = "pixel"  # a name in unigendet.codecs.base.CODECS
    channels: int = 48  # codec latent channels
    downsample: int = 4  # codec spatial downsampling factor
    width: int | None = None  # convolution width of a codec the project trains (None: the codec's default)
    patch_size: int = 2  # latent patch side; a token is `channels * patch**2` wide
    max_latent_side: int = 16  # side of the latent position table, in tokens
    timestep_freq_dim: int = 256

    @property
    def token_dim(self) -> int:
        return self.channels * self.patch_size**2

    @property
    def pixels_per_token(self) -> int:
        return self.downsample * self.patch_size


@dataclass(frozen=True)
class ModelConfig:
    name: str = "tiny"
    llm: LLMConfig = field(default_factory=LLMConfig)
    vit: ViTConfig = field(default_factory=ViTConfig)
    latent: LatentConfig = field(default_factory=LatentConfig)
    tokenizer: str = "byte"  # a name understood by unigendet.unified.tokenizer.get_tokenizer
    image_size: int = 64  # default generation resolution (latent path)
    vit_image_size: int = 64  # default ViT input side (understanding path)
    diga_layer: int = 1  # DIGA aligns hidden states after the first k layers (full scale: 8 of 28)
    smsa: bool = True  # detection samples carry the clean latents (False: the latent-free ablation)
    detect_view: str = "resize"  # how an image under test becomes image_size px: resize | crop (native pixels)
    cls_head: bool = True
    projector: bool = True

    def __post_init__(self) -> None:
        llm = self.llm
        if llm.num_heads % llm.num_kv_heads:
            raise ValueError("num_heads must be a multiple of num_kv_heads")
        if not 1 <= self.diga_layer <= llm.num_layers:
            raise ValueError(f"diga_layer {self.diga_layer} outside 1..{llm.num_layers}")
        if self.image_size % self.latent.pixels_per_token:
            raise ValueError(f"image_size must be a multiple of {self.latent.pixels_per_token} px")
        if self.vit.input_filter not in ("none", "residual"):
            raise ValueError(f"vit.input_filter must be 'none' or 'residual', not {self.vit.input_filter!r}")
        if self.detect_view not in ("resize", "crop"):
            raise ValueError(f"detect_view must be 'resize' or 'crop', not {self.detect_view!r}")
        if self.vit.frozen and self.vit.encoder_dim <= 0:
            raise ValueError(f"the frozen encoder {self.vit.encoder!r} needs its token width in vit.encoder_dim")
        if self.vit_image_size % self.vit.patch_size:
            raise ValueError(f"vit_image_size must be a multiple of the {self.vit.patch_size} px patch")

    @property
    def detect_side(self) -> int:
        """Side of the view of an image under test: a frozen encoder reads `vit_image_size` native
        pixels (the clean latents then see that view resized to `image_size`)."""
        return self.vit_image_size if self.vit.frozen else self.image_size

    def replace(self, **changes: Any) -> ModelConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown ModelConfig fields: {sorted(unknown)}")
        d = dict(d)
        d["llm"] = LLMConfig(**d.get("llm", {}))
        d["vit"] = ViTConfig(**d.get("vit", {}))
        d["latent"] = LatentConfig(**d.get("latent", {}))
        return cls(**d)
