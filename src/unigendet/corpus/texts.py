"""Captions and detection explanations tied to how an image was made and to measured cues."""

from __future__ import annotations

import colorsys

import numpy as np
from PIL import Image

from ..labels import FAKE, REAL
from ..unified.prompts import detection_answer

_HUES = [(15, "red"), (45, "orange"), (70, "yellow"), (160, "green"), (200, "cyan"), (260, "blue"),
         (320, "purple"), (360, "red")]


def hf_energy(img: Image.Image) -> float:
    """Variance of the 4-neighbour Laplacian of the grey image in [0, 1]: fine-texture energy."""
    g = np.asarray(img.convert("L"), dtype=np.float64) / 255.0
    lap = 4 * g[1:-1, 1:-1] - g[:-2, 1:-1] - g[2:, 1:-1] - g[1:-1, :-2] - g[1:-1, 2:]
    return float(lap.var())


def colour_words(img: Image.Image) -> str:
    """'bright warm orange'-style words from the mean colour."""
    r, g, b = (np.asarray(img, dtype=np.float64).reshape(-1, 3).mean(0) / 255.0).tolist()
    h, light, s = colorsys.rgb_to_hls(r, g, b)
    tone = "bright " if light > 0.65 else "dark " if light < 0.3 else ""
    if s < 0.15:
        return f"{tone}grey".strip()
    hue = next(name for limit, name in _HUES if h * 360 <= limit)
    return f"{tone}{hue}".strip()


def caption(subject: str, img: Image.Image) -> str:
    """What the photo shows and the crop's colour: 'a red apple, in dark red tones'. Short, since every
    byte is a token the text-to-image samples carry."""
    return f"{subject}, in {colour_words(img)} tones"


def explanation(label: int, img: Image.Image, reference_energy: float, how: str = "") -> str:
    """The answer text for detection training: the verdict, how the image was made, a measured cue."""
    ratio = hf_energy(img) / max(reference_energy, 1e-12)
    cue = f"Its fine-texture energy is {ratio:.0%} of a typical real photo crop"
    if label == REAL:
        body = ("It is a crop of a camera photograph: fine texture and noise vary irregularly across the image "
                f"and edges are consistent with the lighting. {cue}.")
    else:
        look = ("so detail is smoothed away and edges look painted or over-sharpened" if ratio < 0.8 else
                "and its fine texture is regular and synthetic rather than sensor noise")
        body = f"It {how}, {look}. {cue}."
    return detection_answer(FAKE if label == FAKE else REAL, body)
