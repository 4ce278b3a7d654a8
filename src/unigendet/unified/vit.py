"""NaViT-style ViT (SigLIP layout) and the MLP connector into the LLM width.

Images of any size are cut into patches (`unigendet.unified.patches`) and packed;
each image attends only to itself. Parameter names follow the transformers
SigLIP vision model (`vision_model.embeddings...`, `vision_model.encoder.layers.N...`),
with the patch embedding stored as a Linear, as in BAGEL's checkpoint.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import ViTConfig


class SiglipAttention(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        d = cfg.hidden_size
        self.num_heads = cfg.num_heads
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(d, d) for _ in range(4))

    def forward(self, x: torch.Tensor, lens: list[int]) -> torch.Tensor:
        n, d = x.shape
        h = self.num_heads
        q, k, v = (p(x).view(n, h, d // h).transpose(0, 1) for p in (self.q_proj, self.k_proj, self.v_proj))
        outs, start = [], 0
        for m in lens:
            sl = slice(start, start + m)
            outs.append(F.scaled_dot_product_attention(q[None, :, sl], k[None, :, sl], v[None, :, sl])[0])
            start += m
        return self.out_proj(torch.cat(outs, dim=1).transpose(0, 1).reshape(n, d))


class SiglipMLP(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.fc1 = nn.Linear(cfg.hidden_size, cfg.intermediate_size)
        self.fc2 = nn.Linear(cfg.intermediate_size, cfg.hidden_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class SiglipEncoderLayer(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.layer_norm1 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.self_attn = SiglipAttention(cfg)
        self.layer_norm2 = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)
        self.mlp = SiglipMLP(cfg)

    def forward(self, x: torch.Tensor, lens: list[int]) -> torch.Tensor:
        x = x + self.self_attn(self.layer_norm1(x), lens)
        return x + self.mlp(self.layer_norm2(x))


class SiglipEmbeddings(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.patch_embedding = nn.Linear(3 * cfg.patch_size**2, cfg.hidden_size)
        self.position_embedding = nn.Embedding(cfg.max_patches_per_side**2, cfg.hidden_size)

    def forward(self, patches: torch.Tensor, position_ids: torch.Tensor) -> torch.Tensor:
        return self.patch_embedding(patches) + self.position_embedding(position_ids)


class SiglipEncoder(nn.Module):
    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.layers = nn.ModuleList(SiglipEncoderLayer(cfg) for _ in range(cfg.num_layers))


class SiglipVisionModel(nn.Module):
    """Embeddings, the kept layers, post_layernorm.

    Full scale keeps 26 of SigLIP's 27 layers (the penultimate layer's output),
    then applies post_layernorm, as BAGEL does.
    """

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.embeddings = SiglipEmbeddings(cfg)
        self.encoder = SiglipEncoder(cfg)
        self.post_layernorm = nn.LayerNorm(cfg.hidden_size, eps=cfg.layer_norm_eps)

    def forward(self, patches: torch.Tensor, position_ids: torch.Tensor, lens: list[int]) -> torch.Tensor:
        x = self.embeddings(patches, position_ids)
        for layer in self.encoder.layers:
            x = layer(x, lens)
        return self.post_layernorm(x)


class SiglipNaViT(nn.Module):
    """Wrapper so names read `vit_model.vision_model.*` as in BAGEL."""

    def __init__(self, cfg: ViTConfig):
        super().__init__()
        self.vision_model = SiglipVisionModel(cfg)

    def forward(self, patches: torch.Tensor, position_ids: torch.Tensor, lens: list[int]) -> torch.Tensor:
        return self.vision_model(patches, position_ids, lens)


class MLPConnector(nn.Module):
    """ViT width -> LLM width: fc1, GELU(tanh), fc2."""

    def __init__(self, in_dim: int, out_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(in_dim, out_dim)
        self.fc2 = nn.Linear(out_dim, out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))
