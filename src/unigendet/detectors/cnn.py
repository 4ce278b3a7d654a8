"""CNNDetection's detector: an EfficientNet-Lite fine-tuned end to end with a binary head."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..backbones import Preprocess, create_backbone
from ..models.probes import CNNDetector
from ..weights import load_weights
from .base import Detector, register_detector


def cnn_from_backbone(name: str, path: str | None = None) -> tuple[CNNDetector, Preprocess]:
    """A trainable CNNDetector starting from a registered EfficientNet-Lite backbone's weights, and
    the backbone's preprocessing (its normalisation is what the weights expect)."""
    backbone, preprocess = create_backbone(name, path)
    if not hasattr(backbone, "net") or not hasattr(backbone.net, "extract_features"):
        raise ValueError(f"the cnn baseline needs an EfficientNet-Lite backbone, not {name!r}")
    net = backbone.net.requires_grad_(True)
    return CNNDetector(net).train(), preprocess


@register_detector
class CNNImageDetector(Detector):
    kind = "cnn"

    def __init__(self, name: str, model: CNNDetector, preprocess: Preprocess, device="cpu", batch_size: int = 32,
                 backbone: str = "efficientnet-lite0"):
        super().__init__(name, device)
        self.model, self.preprocess, self.batch_size = model.to(self.device).eval(), preprocess, batch_size
        self.backbone = backbone

    @torch.no_grad()
    def _run(self, images: Sequence[Image.Image], fn) -> torch.Tensor:
        """`fn` of the model over preprocessed images, `batch_size` at a time."""
        outs = [fn(torch.stack([self.preprocess(im) for im in images[s : s + self.batch_size]]).to(self.device))
                .float().cpu() for s in range(0, len(images), self.batch_size)]
        return torch.cat(outs) if outs else torch.empty(0)

    def predict_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        return torch.sigmoid(self._run(images, self.model)).double().numpy()

    def image_features(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self._run(images, self.model.pooled).numpy()

    def state(self, run_dir: Path) -> tuple[dict[str, Any], dict[str, nn.Module]]:
        return {"backbone": self.backbone, "preprocess": self.preprocess.describe()}, {"model": self.model}

    @classmethod
    def from_state(cls, run_dir: Path, config: dict[str, Any], device) -> CNNImageDetector:
        from efficientnet_lite_pytorch import EfficientNet

        model = CNNDetector(EfficientNet.from_name(config["backbone"]))
        load_weights(model, run_dir / "model.safetensors")
        fields = {k: v for k, v in config["preprocess"].items() if k != "library"}
        fields["mean"], fields["std"] = tuple(fields["mean"]), tuple(fields["std"])
        return cls(config.get("name", "cnn"), model, Preprocess(**fields), device, backbone=config["backbone"])
