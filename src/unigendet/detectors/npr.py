"""The NPR residual network as a detector: each image at native resolution, never resized."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..images import centre_crop, pil_to_tensor
from ..models.npr import NPRConfig, NPRNet
from ..weights import load_weights
from .base import Detector, register_detector


@register_detector
class NPRDetector(Detector):
    """The NPR residual network on each image at native resolution (centre-cropped to at most
    `max_side` per side to bound memory; never resized). Images of one size share a batch."""

    kind = "npr"

    def __init__(self, name: str, model: NPRNet, max_side: int = 512, device="cpu", batch_size: int = 16):
        super().__init__(name, device)
        self.model, self.max_side, self.batch_size = model.to(self.device).eval(), max_side, batch_size

    def tensor(self, img: Image.Image) -> torch.Tensor:
        return pil_to_tensor(centre_crop(img, self.max_side))

    @torch.no_grad()
    def _run(self, images: Sequence[Image.Image], fn) -> torch.Tensor:
        xs = [self.tensor(im) for im in images]
        out: list[torch.Tensor | None] = [None] * len(xs)
        by_size: dict[tuple[int, ...], list[int]] = {}
        for i, x in enumerate(xs):
            by_size.setdefault(tuple(x.shape), []).append(i)
        for idx in by_size.values():
            for s in range(0, len(idx), self.batch_size):
                chunk = idx[s : s + self.batch_size]
                y = fn(torch.stack([xs[i] for i in chunk]).to(self.device)).float().cpu()
                for i, row in zip(chunk, y):
                    out[i] = row
        return torch.stack(out) if out else torch.empty(0)  # type: ignore[arg-type]

    def predict_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return torch.sigmoid(self._run(images, self.model)).double().numpy()

    def image_features(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self._run(images, self.model.pooled).numpy()

    def state(self, run_dir: Path) -> tuple[dict[str, Any], dict[str, nn.Module]]:
        return {"model": self.model.cfg.to_dict(), "max_side": self.max_side}, {"model": self.model}

    @classmethod
    def from_state(cls, run_dir: Path, config: dict[str, Any], device) -> NPRDetector:
        model = NPRNet(NPRConfig.from_dict(config["model"]))
        load_weights(model, run_dir / "model.safetensors")
        return cls(config.get("name", "npr"), model, int(config.get("max_side", 512)), device)
