"""UniGenDet as a `Detector`: the image under test enters exactly as in training -
`ModelConfig.detect_view` (resized or native crop), clean codec latents (SMSA) and ViT
tokens, then the question; p_fake from the cls head, the written answer on request."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from .checkpoint import load_model, load_weights
from .codecs import build_codec
from .data.imageio import open_image
from .detectors import Detector, PathList
from .images import detection_view
from .inference import Detection, detect
from .samples import SampleBuilder
from .tokenizer import get_tokenizer


class UniGenDetDetector(Detector):
    kind = "unigendet"

    def __init__(self, name: str, model, codec, device="cpu", batch_size: int = 16, max_new_tokens: int = 256,
                 tokenizer=None):
        super().__init__(name, device)
        self.model, self.codec = model.to(self.device).eval(), codec.eval()
        self.builder = SampleBuilder(model.config, tokenizer or get_tokenizer(model.config.tokenizer))
        self.batch_size, self.max_new_tokens = batch_size, max_new_tokens

    def view(self, image) -> torch.Tensor:
        """A PIL image -> the (3, S, S) tensor the model looks at."""
        cfg = self.model.config
        return detection_view(image, cfg.image_size, cfg.detect_view)

    @torch.no_grad()
    def detect_tensors(self, images: list[torch.Tensor], explain: bool = False) -> list[Detection]:
        out = []
        for s in range(0, len(images), self.batch_size):
            chunk = images[s:s + self.batch_size]
            dtype = next(self.codec.parameters(), torch.empty(0)).dtype
            latents = list(self.codec.encode(torch.stack(chunk).to(self.device, dtype)).float().cpu())
            out += detect(self.model, self.builder, latents, chunk, explain=explain,
                          max_new_tokens=self.max_new_tokens)
        return out

    def detect_paths(self, paths: PathList, explain: bool = False) -> list[Detection]:
        return self.detect_tensors([self.view(open_image(p)) for p in paths], explain)

    def predict_images(self, images) -> np.ndarray:
        return np.array([d.p_fake for d in self.detect_tensors([self.view(im) for im in images])])

    def predict(self, paths: PathList, cache_root=None) -> np.ndarray:
        """`cache_root` is ignored (no frozen backbone)."""
        return np.array([d.p_fake for d in self.detect_paths(paths)], dtype=np.float64)

    def explain(self, paths: PathList) -> list[Detection]:
        return self.detect_paths(paths, explain=True)

    def features(self, paths: PathList, cache_root=None) -> np.ndarray:
        """The final-normed hidden state the cls head reads, (N, hidden)."""
        return torch.stack([d.state for d in self.detect_paths(paths)]).numpy()


def load_unigendet(path: str | os.PathLike, device="cpu") -> UniGenDetDetector:
    """From a checkpoint directory (EMA weights when present, codec next to them)."""
    path = Path(path)
    model = load_model(path, ema=True, device=device)
    lat = model.config.latent
    codec = build_codec(lat.codec, lat.channels, lat.downsample)
    if (path / "codec.safetensors").is_file():
        load_weights(codec, path / "codec.safetensors")
    local = path if (path / "tokenizer.json").is_file() else None  # else $UNIGENDET_TOKENIZER
    tokenizer = get_tokenizer(model.config.tokenizer, local)
    return UniGenDetDetector(f"unigendet-{model.config.name}", model, codec, device, tokenizer=tokenizer)
