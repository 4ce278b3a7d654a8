"""Sentences about the detector's own measurements of an image: where in the image its evidence
lies (the tile map: each tile scored on its own) and how confident its verdict is. They are
computed, not written by a model, so they hold by construction; they stand beside UniGenDet's
written explanation of the cues.
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


def where(tiles: np.ndarray, threshold: float) -> str:
    """Where the evidence lies in a (rows, cols) map of tile p_fake, as one sentence."""
    tiles = np.asarray(tiles, dtype=np.float64)
    lo, hi = float(tiles.min()), float(tiles.max())
    flagged = tiles > threshold
    if hi - lo < ALIKE:
        return f"Every part of the image reads alike (tiles at p_fake {lo:.2f} to {hi:.2f})."
    if not flagged.any():
        return f"No region reads as generated (tiles at most p_fake {hi:.2f})."
    if flagged.all():
        return f"Every region reads as generated (tiles at least p_fake {lo:.2f})."
    rows, cols = np.nonzero(flagged)
    weight = tiles[rows, cols]
    centre = region(float(np.average(rows + 0.5, weights=weight)) / tiles.shape[0],
                    float(np.average(cols + 0.5, weights=weight)) / tiles.shape[1])
    return f"The evidence lies in the {centre}: {int(flagged.sum())} of {tiles.size} tiles read as generated."


def confidence(p_fake: float, threshold: float) -> str:
    """How far the verdict's p_fake is from the threshold it is called against, as one sentence."""
    margin = abs(p_fake - threshold)
    strength = "clear" if margin >= CLEAR else "moderate" if margin >= MODERATE else "borderline"
    return f"The detector's p_fake is {p_fake:.2f} against its threshold {threshold:.2f}: a {strength} call."


def evidence(p_fake: float, threshold: float, tiles: np.ndarray) -> str:
    return f"{where(tiles, threshold)} {confidence(p_fake, threshold)}"
