"""Which kind of evidence moved a verdict, and by how much: one `Attribution` record for every kind.

A detector with a linear head on named feature groups (the forensic detector) splits its
calibrated fake logit exactly: each group's contribution is its part of the linear sum, measured
from the logit of the average training image (`base`), so `base + sum(contributions) == logit`.
Any other detector is attributed by occlusion of frequency bands: the logit drop when the image's
fine pixel traces are blurred away, and when its content and colour are flattened (only its
high-frequency residual kept). Those effects need not add up, and the record says so (`exact`).
Contributions are in logit units; positive points to generated, negative to a photo.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image, ImageFilter

from ..backbones.base import CONTENT, FINE_TRACES
from .ensemble import logit

FINE_BLUR = 1.5  # Gaussian radius (px) that removes pixel-level traces and keeps the content
CONTENT_BLUR = 8.0  # radius whose blur is the content and colour an image keeps after flattening


@dataclass(frozen=True)
class Attribution:
    logit: float  # the fake logit of the verdict (sigmoid: p_fake)
    base: float  # linear: the logit of the average training image; occlusion: nan
    contributions: dict[str, float]  # kind of evidence -> logit units toward generated (+) or a photo (-)
    exact: bool  # the contributions add up with `base` to `logit`
    reference: str = "the image without it"  # what `base` (linear) or each removal (occlusion) compares with

    @property
    def method(self) -> str:
        return "linear" if self.exact else "occlusion"

    def to_json(self) -> dict:
        out = {"method": self.method, "logit": round(self.logit, 4),
               "contributions": {k: round(v, 4) for k, v in self.contributions.items()}}
        if self.exact:
            out["base"] = round(self.base, 4)
        out["reference"] = self.reference
        return out


@runtime_checkable
class Attributing(Protocol):
    """A detector that splits its own logit exactly (a linear head on named feature groups)."""

    def attribution(self, images: Sequence[Image.Image]) -> list[Attribution]: ...


def fine_removed(image: Image.Image) -> Image.Image:
    """The image with its pixel-level traces blurred away."""
    return image.filter(ImageFilter.GaussianBlur(FINE_BLUR))


def content_removed(image: Image.Image) -> Image.Image:
    """The image's high-frequency residual on its mean colour: content and colour flattened."""
    x = np.asarray(image, dtype=np.float64)
    low = np.asarray(image.filter(ImageFilter.GaussianBlur(CONTENT_BLUR)), dtype=np.float64)
    flat = x - low + x.reshape(-1, 3).mean(0)
    return Image.fromarray(np.clip(np.round(flat), 0, 255).astype(np.uint8))


def occlusion_attribution(detector, images: Sequence[Image.Image]) -> list[Attribution]:
    """For any detector: how far its logit falls when each kind of evidence is taken away."""
    images = list(images)
    full = logit(detector.predict_images(images))
    no_fine = logit(detector.predict_images([fine_removed(im) for im in images]))
    no_content = logit(detector.predict_images([content_removed(im) for im in images]))
    return [Attribution(float(z), float("nan"), {FINE_TRACES: float(z - a), CONTENT: float(z - b)}, exact=False)
            for z, a, b in zip(full, no_fine, no_content, strict=True)]


def attribute(detector, images: Sequence[Image.Image]) -> list[Attribution]:
    """Each image's attribution: exact where the detector can split its logit, else by occlusion."""
    if isinstance(detector, Attributing):
        return detector.attribution(images)
    return occlusion_attribution(detector, images)
