"""Small building blocks shared by the language model, ViT and latent path."""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        dtype = x.dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


class SwiGLU(nn.Module):
    """Qwen2 MLP: down(silu(gate(x)) * up(x))."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.gate_proj = nn.Linear(dim, hidden, bias=False)
        self.up_proj = nn.Linear(dim, hidden, bias=False)
        self.down_proj = nn.Linear(hidden, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


def rope_cos_sin(
    positions: torch.Tensor, head_dim: int, theta: float, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables of shape (L, head_dim) for integer `positions` of shape (L,)."""
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=positions.device).float() / head_dim))
    freqs = positions.float()[:, None] * inv_freq[None, :]
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x of shape (L, heads, head_dim) by the (L, head_dim) tables."""
    x1, x2 = x.chunk(2, dim=-1)
    rotated = torch.cat([-x2, x1], dim=-1)
    return x * cos[:, None, :] + rotated * sin[:, None, :]


def sincos_2d_table(dim: int, side: int) -> torch.Tensor:
    """Fixed 2-D sin-cos position table of shape (side*side, dim), row-major.

    Half of the channels encode the row, half the column (MAE / DiT convention).
    Position id of (row, col) is `row * side + col`.
    """
    if dim % 4:
        raise ValueError("sin-cos table width must be a multiple of 4")
    omega = 1.0 / 10000 ** (np.arange(dim // 4, dtype=np.float64) / (dim / 4.0))
    grid = np.arange(side, dtype=np.float64)
    rows, cols = np.meshgrid(grid, grid, indexing="ij")

    def embed(pos: np.ndarray) -> np.ndarray:
        out = np.einsum("m,d->md", pos.reshape(-1), omega)
        return np.concatenate([np.sin(out), np.cos(out)], axis=1)

    table = np.concatenate([embed(rows), embed(cols)], axis=1)
    return torch.from_numpy(table).float()


class PositionTable(nn.Module):
    """A non-trainable 2-D sin-cos table indexed by flattened position ids."""

    def __init__(self, dim: int, side: int):
        super().__init__()
        self.side = side
        # stored in checkpoints (as BAGEL does) but never trained
        self.pos_embed = nn.Parameter(torch.empty(side * side, dim), requires_grad=False)
        if self.pos_embed.device.type != "meta":
            with torch.no_grad():
                self.pos_embed.copy_(sincos_2d_table(dim, side))

    def forward(self, position_ids: torch.Tensor) -> torch.Tensor:
        return self.pos_embed[position_ids]


class TimestepEmbedder(nn.Module):
    """DiT timestep embedding: sinusoidal features of t, then a 2-layer MLP."""

    def __init__(self, dim: int, freq_dim: int = 256, max_period: float = 10_000.0):
        super().__init__()
        self.freq_dim = freq_dim
        self.max_period = max_period
        self.mlp = nn.Sequential(nn.Linear(freq_dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def frequencies(self, t: torch.Tensor) -> torch.Tensor:
        half = self.freq_dim // 2
        freqs = torch.exp(-math.log(self.max_period) * torch.arange(half, device=t.device).float() / half)
        args = t.float()[:, None] * freqs[None]
        return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        w = self.mlp[0].weight
        return self.mlp(self.frequencies(t).to(w.dtype))
