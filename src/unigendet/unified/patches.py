"""Cutting images and latents into token rows, and back (row-major grids)."""

from __future__ import annotations

import torch


def patchify(x: torch.Tensor, patch: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """(C, H, W) -> ((H/p)*(W/p), p*p*C) rows, and the (h, w) grid.

    A row is flattened as (py, px, c) with the channel fastest: BAGEL's layout for
    both ViT patches (a conv kernel stored as a Linear) and latent tokens.
    """
    c, H, W = x.shape
    if H % patch or W % patch:
        raise ValueError(f"{H}x{W} is not a multiple of the patch size {patch}")
    h, w = H // patch, W // patch
    rows = x.reshape(c, h, patch, w, patch).permute(1, 3, 2, 4, 0)
    return rows.reshape(h * w, c * patch * patch), (h, w)


def unpatchify(rows: torch.Tensor, grid: tuple[int, int], patch: int) -> torch.Tensor:
    """Inverse of `patchify`: rows (h*w, p*p*C) -> (C, h*p, w*p)."""
    h, w = grid
    c = rows.shape[1] // (patch * patch)
    x = rows.reshape(h, w, patch, patch, c).permute(4, 0, 2, 1, 3)
    return x.reshape(c, h * patch, w * patch)
