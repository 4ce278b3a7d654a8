"""Training views that keep generation traces and treat both classes alike.

One view of an image: optionally first circulated as web images are (`circulate_prob`: downscaled
and re-saved as JPEG, `degrade.Circulate`), then a random native-resolution crop (never resized
unless `resize_prob` says so), then the class-aligned degradations - JPEG re-encoding, blur and a
down-scale, each with the same probability for reals and fakes, so file history cannot separate the
classes - then the geometric and photometric ones (flips, 90-degree rotations, colour jitter, random patch masking).
Every draw comes from the caller's `random.Random`, so views are reproducible.
"""

from __future__ import annotations

import dataclasses
import random
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageEnhance

from .degrade import JPEG, Blur, Circulate

ROTATIONS = (Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270)


@dataclass(frozen=True)
class ViewConfig:
    side: int = 256  # crop side in pixels (smaller images are kept whole)
    jpeg_prob: float = 0.5  # re-encode as JPEG, quality ~ U(jpeg_quality)
    jpeg_quality: tuple[int, int] = (60, 100)
    blur_prob: float = 0.1  # Gaussian blur, sigma ~ U(0.2, 1.5)
    resize_prob: float = 0.0  # down-scale by U(0.5, 0.9) before cropping
    circulate_prob: float = 0.0  # before cropping: down-scale by U(0.4, 0.9), then JPEG q U(60, 95)
    flip: bool = True
    rot90: bool = True
    jitter: float = 0.0  # brightness/contrast/saturation factors ~ U(1 - j, 1 + j)
    mask_prob: float = 0.0  # grey out one random 16-px patch per 64x64 area with this probability

    def key(self) -> dict:
        """The fields as a cache key: `circulate_prob` (added later) only when set, so the views
        cached before it keep their names."""
        out = dataclasses.asdict(self)
        if not self.circulate_prob:
            del out["circulate_prob"]
        return out


def random_crop(img: Image.Image, side: int, rng: random.Random) -> Image.Image:
    w, h = img.size
    if w <= side and h <= side:
        return img
    left, top = rng.randint(0, max(0, w - side)), rng.randint(0, max(0, h - side))
    return img.crop((left, top, left + min(side, w), top + min(side, h)))


def make_view(img: Image.Image, cfg: ViewConfig, rng: random.Random) -> Image.Image:
    """One augmented view of an RGB image."""
    if cfg.circulate_prob and rng.random() < cfg.circulate_prob:
        img = Circulate().draw(img, rng)
    if cfg.resize_prob and rng.random() < cfg.resize_prob:
        s = rng.uniform(0.5, 0.9)
        w, h = img.size
        if min(w, h) * s >= 32:
            img = img.resize((round(w * s), round(h * s)), Image.Resampling.BICUBIC)
    img = random_crop(img, cfg.side, rng)
    if cfg.blur_prob and rng.random() < cfg.blur_prob:
        img = Blur(rng.uniform(0.2, 1.5))(img)
    if cfg.jpeg_prob and rng.random() < cfg.jpeg_prob:
        img = JPEG(rng.randint(*cfg.jpeg_quality))(img)
    if cfg.flip and rng.random() < 0.5:
        img = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    if cfg.rot90:
        k = rng.randrange(4)
        if k:
            img = img.transpose(ROTATIONS[k - 1])
    if cfg.jitter:
        for enhance in (ImageEnhance.Brightness, ImageEnhance.Contrast, ImageEnhance.Color):
            img = enhance(img).enhance(rng.uniform(1 - cfg.jitter, 1 + cfg.jitter))
    if cfg.mask_prob:
        a = np.array(img)
        for y in range(0, a.shape[0] - 15, 64):
            for x in range(0, a.shape[1] - 15, 64):
                if rng.random() < cfg.mask_prob:
                    dy, dx = rng.randrange(min(49, a.shape[0] - y - 15)), rng.randrange(min(49, a.shape[1] - x - 15))
                    a[y + dy : y + dy + 16, x + dx : x + dx + 16] = 128
        img = Image.fromarray(a)
    return img
