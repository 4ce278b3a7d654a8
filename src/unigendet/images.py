"""Converting between image files / PIL images and tensors in [-1, 1]."""

from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB PIL image -> (3, H, W) float tensor in [-1, 1]."""
    arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def tensor_to_pil(x: torch.Tensor) -> Image.Image:
    """(3, H, W) tensor in [-1, 1] -> RGB PIL image (rounded, clamped)."""
    arr = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr, "RGB")


def save_image(x: torch.Tensor, path: str | os.PathLike) -> None:
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    tensor_to_pil(x).save(path)
