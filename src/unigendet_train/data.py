"""Training images held in memory: at the model's size with their latents, or at
native resolution for detection crops drawn anew at every step.

Every bank a detection sample is drawn from answers `training_view(idx, generator, codec)`
(the image under test or its encoder tokens, its clean latents, the reference answer, the
question), `plain(i, j)` (the unaugmented views of images i..j-1, for evaluation), `question(idx)`
(what is asked about a plain view) and `levels(idx)` (the measured cue levels its answers state,
or None)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from unigendet.data.imageio import open_image
from unigendet.data.records import Record
from unigendet.images import centre_crop_tensor, crop_square, detection_input, pil_to_tensor
from unigendet.unified.prompts import DETECTION_QUESTION, detection_answer


def reference_answer_of(record: Record) -> str:
    """A record's own explanation, else the plain verdict sentence."""
    return record.explanation or detection_answer(record.label)


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

    def training_view(self, idx: int, generator: torch.Generator, codec) -> tuple[torch.Tensor, torch.Tensor, str, str]:
        return self.images[idx], self.latents[idx], reference_answer_of(self.records[idx]), DETECTION_QUESTION

    def plain(self, i: int, j: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        return list(self.latents[i:j]), list(self.images[i:j])

    def question(self, idx: int, view: int = 0) -> str:
        return DETECTION_QUESTION

    def levels(self, idx: int) -> dict[str, str] | None:
        return None


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

    @torch.no_grad()
    def training_view(self, idx: int, generator: torch.Generator, codec) -> tuple[torch.Tensor, torch.Tensor, str, str]:
        """A fresh native crop, encoded by the codec."""
        image = self.crop(idx, generator)
        return image, codec.encode(image[None])[0], reference_answer_of(self.records[idx]), DETECTION_QUESTION

    def question(self, idx: int, view: int = 0) -> str:
        return DETECTION_QUESTION

    def plain(self, i: int, j: int):
        raise ValueError("a crop bank is for training; evaluate on a bank of fixed views")

    def levels(self, idx: int) -> dict[str, str] | None:
        return None


@dataclass
class Banks:
    """What a unified stage trains and measures on."""

    det: Any  # detection samples (ImageBank, CropBank, TokenBank) or None
    t2i: ImageBank  # captioned photos for text-to-image samples
    val: Any  # detection validation images (ImageBank or TokenBank)
    val_gen: ImageBank  # held-out captioned photos for the validation flow loss
    scale: Any = None  # the CueScale the answers state cue levels in, if they do


def records_of_split(records: list[Record], split: str) -> list[Record]:
    """The records of one split; an error when there are none."""
    chosen = [r for r in records if r.split == split]
    if not chosen:
        raise ValueError(f"no records in split {split!r}; the data needs a split column (train/val/test)")
    return chosen


@torch.no_grad()
def load_bank(records: list[Record], size: int, codec, view: str = "resize", batch: int = 64) -> ImageBank:
    """Each image as the model sees it (`detection_input`: resized central square, or
    central native crop); encoded with the codec once."""
    if not records:
        raise ValueError("no records to load")
    images = torch.stack([detection_input(open_image(r.path), size, view) for r in records])
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
