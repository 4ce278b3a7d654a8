"""Sentences about the detector's own measurements of an image: where in the image the evidence
for its verdict is strongest (the tile map: each tile scored on its own) and how confident the
verdict is. They are computed, not written by a model, so they hold by construction.
"""

from __future__ import annotations

import numpy as np

ALIKE = 0.1  # tiles whose p_fake spans less than this read alike: nothing to localise
CLEAR, MODERATE = 0.3, 0.1  # distance of p_fake from the threshold for a clear / moderate call

_ROWS, _COLS = ("upper", "middle", "lower"), ("left", "centre", "right")
_NAMES = {("middle", "centre"): "centre", ("upper", "centre"): "top", ("lower", "centre"): "bottom",
          ("middle", "left"): "left side", ("middle", "right"): "right side"}


def region(row: float, col: float) -> str:
    """The name of a point of the image, given as fractions of its height and width in [0, 1]."""
    r, c = _ROWS[min(2, int(row * 3))], _COLS[min(2, int(col * 3))]
    return _NAMES.get((r, c), f"{r} {c}")


def where(tiles: np.ndarray, label: str) -> str:
    """Where in a (rows, cols) map of tile p_fake the evidence for the verdict `label` is strongest,
    as one sentence; it names the region behind the call, so it never contradicts it."""
    tiles = np.asarray(tiles, dtype=np.float64)
    lo, hi = float(tiles.min()), float(tiles.max())
    if hi - lo < ALIKE:
        return f"Every part of the image reads alike (tiles at p_fake {lo:.2f} to {hi:.2f})."
    rows, cols = tiles.shape

    def name(flat: int) -> str:
        r, c = divmod(flat, cols)
        return region((r + 0.5) / rows, (c + 0.5) / cols)

    most, least = name(int(tiles.argmax())), name(int(tiles.argmin()))
    if label == "fake":
        return f"The {most} reads most clearly as generated (its tile at p_fake {hi:.2f})."
    if label == "real":
        return f"The {least} reads most clearly as a photo (its tile at p_fake {lo:.2f})."
    return f"Its parts disagree: the {most} reads as generated ({hi:.2f}), the {least} as a photo ({lo:.2f})."


def confidence(p_fake: float, threshold: float) -> str:
    """How far the verdict's p_fake is from the threshold it is called against, as one sentence."""
    margin = abs(p_fake - threshold)
    strength = "clear" if margin >= CLEAR else "moderate" if margin >= MODERATE else "borderline"
    return f"The detector's p_fake is {p_fake:.2f} against its threshold {threshold:.2f}: a {strength} call."


def evidence(p_fake: float, threshold: float, tiles: np.ndarray | None, label: str) -> str:
    """Where (when the image has a tile map: it is larger than what the detector reads at once) and how sure."""
    sure = confidence(p_fake, threshold)
    return sure if tiles is None else f"{where(tiles, label)} {sure}"
