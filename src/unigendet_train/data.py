"""Training images held in memory at the model's sizes, and their latents."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from unigendet.data.imageio import open_image
from unigendet.data.records import Record
from unigendet.images import pil_to_tensor


@dataclass
class ImageBank:
    """Every record's image as a (3, S, S) tensor in [-1, 1] and its codec latent."""

    records: list[Record]
    images: torch.Tensor  # (N, 3, S, S)
    latents: torch.Tensor  # (N, C, S/f, S/f)

    @property
    def labels(self) -> list[int]:
        return [r.label for r in self.records]

    def __len__(self) -> int:
        return len(self.records)


@torch.no_grad()
def load_bank(records: list[Record], size: int, codec, batch: int = 64) -> ImageBank:
    """Decode, centre-crop to a square and resize to `size`; encode with the codec once."""
    if not records:
        raise ValueError("no records to load")
    imgs = []
    for r in records:
        img = open_image(r.path)
        w, h = img.size
        s = min(w, h)
        img = img.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
        x = pil_to_tensor(img)[None]
        if s != size:
            x = F.interpolate(x, size=(size, size), mode="bicubic", antialias=True, align_corners=False)
        imgs.append(x[0].clamp(-1, 1))
    images = torch.stack(imgs)
    latents = torch.cat([codec.encode(images[i:i + batch]) for i in range(0, len(images), batch)])
    return ImageBank(records, images, latents)
