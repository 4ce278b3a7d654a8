"""Training images held in memory: at the model's size with their latents, or at
native resolution for detection crops drawn anew at every step."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from unigendet.data.imageio import open_image
from unigendet.data.records import Record
from unigendet.images import centre_crop_tensor, crop_square, detection_view, pil_to_tensor


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


@dataclass
class CropBank:
    """Every record's image at native resolution (uint8, central region of at most
    `max_side` px); `crop` cuts a fresh `size` square of native pixels."""

    records: list[Record]
    images: list[torch.Tensor]  # (3, H, W) uint8
    size: int

    @property
    def labels(self) -> list[int]:
        return [r.label for r in self.records]

    def __len__(self) -> int:
        return len(self.records)

    def crop(self, idx: int, generator: torch.Generator | None = None) -> torch.Tensor:
        x = self.images[idx].float() / 127.5 - 1.0
        return crop_square(x, self.size, generator)


def records_of_split(records: list[Record], split: str) -> list[Record]:
    """The records of one split; an error when there are none."""
    chosen = [r for r in records if r.split == split]
    if not chosen:
        raise ValueError(f"no records in split {split!r}; the data needs a split column (train/val/test)")
    return chosen


@torch.no_grad()
def load_bank(records: list[Record], size: int, codec, view: str = "resize", batch: int = 64) -> ImageBank:
    """Each image as the model sees it (`detection_view`: resized central square, or
    central native crop); encoded with the codec once."""
    if not records:
        raise ValueError("no records to load")
    images = torch.stack([detection_view(open_image(r.path), size, view) for r in records])
    latents = torch.cat([codec.encode(images[i:i + batch]) for i in range(0, len(images), batch)])
    return ImageBank(records, images, latents)


def load_crops(records: list[Record], size: int, max_side: int | None = None) -> CropBank:
    if not records:
        raise ValueError("no records to load")
    max_side = max_side or 4 * size
    images = []
    for r in records:
        x = ((pil_to_tensor(open_image(r.path)) + 1) * 127.5).round().to(torch.uint8)
        images.append(centre_crop_tensor(x, max_side).contiguous())
    return CropBank(records, images, size)
