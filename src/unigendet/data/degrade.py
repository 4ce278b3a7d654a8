"""Image degradations of the GenImage protocol, composable, for evaluation and augmentation.

Protocol names: `down112`, `down64` (shorter side resized down to 112 / 64 px),
`jpeg65`, `jpeg30` (JPEG quality), `blur3`, `blur5` (Gaussian blur sigma). Combine
with `+`, e.g. `jpeg65+blur3`. `circulate` is an image as it circulates on the web: downscaled
by a random factor and re-saved as JPEG at a random quality, the draws seeded by the image's own
pixels (so every image, real or fake, meets the same distribution, reproducibly). All functions
map PIL RGB -> PIL RGB.
"""

from __future__ import annotations

import hashlib
import io
import random
import re
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image, ImageFilter

Transform = Callable[[Image.Image], Image.Image]


@dataclass(frozen=True)
class Downscale:
    size: int

    def __call__(self, img: Image.Image) -> Image.Image:
        w, h = img.size
        s = self.size / min(w, h)
        if s >= 1:
            return img
        return img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.BICUBIC)


@dataclass(frozen=True)
class JPEG:
    quality: int

    def __call__(self, img: Image.Image) -> Image.Image:
        buf = io.BytesIO()
        img.convert("RGB").save(buf, format="JPEG", quality=int(self.quality))
        buf.seek(0)
        return Image.open(buf).convert("RGB")


@dataclass(frozen=True)
class Blur:
    sigma: float

    def __call__(self, img: Image.Image) -> Image.Image:
        return img.filter(ImageFilter.GaussianBlur(radius=self.sigma)) if self.sigma > 0 else img


@dataclass(frozen=True)
class Compose:
    steps: tuple[Transform, ...]

    def __call__(self, img: Image.Image) -> Image.Image:
        for step in self.steps:
            img = step(img)
        return img


@dataclass(frozen=True)
class Circulate:
    """Downscale by a factor in `scale` (bicubic, antialiased), then JPEG at a quality in `quality`."""

    scale: tuple[float, float] = (0.4, 0.9)
    quality: tuple[int, int] = (60, 95)

    def __call__(self, img: Image.Image) -> Image.Image:
        """The draws come from the image's pixels: the same image always circulates the same way."""
        return self.draw(img, random.Random(hashlib.sha1(img.tobytes()).digest()))

    def draw(self, img: Image.Image, rng: random.Random) -> Image.Image:
        """One circulation with the draws taken from `rng`."""
        s = rng.uniform(*self.scale)
        w, h = img.size
        small = img.resize((max(1, round(w * s)), max(1, round(h * s))), Image.Resampling.BICUBIC)
        return JPEG(rng.randint(*self.quality))(small)


GENIMAGE_DEGRADATIONS = ("down112", "down64", "jpeg65", "jpeg30", "blur3", "blur5")
_PATTERN = re.compile(r"^(down|jpeg|blur)(\d+(?:\.\d+)?)$")


def get_degradation(spec: str) -> Transform:
    """'none', a protocol name, or names joined by '+'."""
    if spec in ("", "none"):
        return Compose(())
    if spec == "circulate":
        return Circulate()
    steps = []
    for part in spec.split("+"):
        m = _PATTERN.match(part.strip())
        if not m:
            raise ValueError(f"unknown degradation {part!r}; use downN, jpegQ, blurS (e.g. {GENIMAGE_DEGRADATIONS})")
        kind, value = m.group(1), float(m.group(2))
        steps.append({"down": lambda v: Downscale(int(v)), "jpeg": lambda v: JPEG(int(v)),
                      "blur": Blur}[kind](value))
    return Compose(tuple(steps))


@dataclass
class RandomBlurJPEG:
    """CNNDetection augmentation: blur with p, sigma ~ U(sigma); JPEG with p, quality ~ U(quality)."""

    p_blur: float = 0.5
    sigma: tuple[float, float] = (0.0, 3.0)
    p_jpeg: float = 0.5
    quality: tuple[int, int] = (30, 100)
    rng: random.Random | None = None

    def __call__(self, img: Image.Image) -> Image.Image:
        rng = self.rng or random
        if rng.random() < self.p_blur:
            img = Blur(rng.uniform(*self.sigma))(img)
        if rng.random() < self.p_jpeg:
            img = JPEG(rng.randint(*self.quality))(img)
        return img
