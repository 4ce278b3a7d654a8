"""Generator families and the leave-one-generator-out protocol.

A family groups generators that share an architecture or a lineage (SDXL and its fine-tunes and
distillations, FLUX.1 and FLUX.2, every Midjourney version), so that holding one family out never
leaves a near-twin of it in training. A generator no rule names is a family of its own.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from ..data.records import Record
from ..labels import FAKE

# (family, pattern on the generator name); the first match wins
FAMILY_RULES: tuple[tuple[str, str], ...] = (
    ("midjourney", r"^midjourney"),
    ("flux", r"^flux"),
    ("sdxl", r"^(sdxl|playground)"),
    ("sd1-2", r"^(sd1|sd2|sd-turbo|stable-diffusion-v?[12])"),
    ("sd3", r"^sd3"),
    ("dall-e", r"^dall-?e-?[23]"),
    ("vqgan", r"^(vqgan|dalle-mega|dalle-mini)"),
    ("hunyuan", r"^hunyuan"),
    ("kandinsky", r"^kandinsky"),
    ("pixart", r"^pixart"),
    ("stable-cascade", r"^(stable-cascade|wuerstchen)"),
    ("z-image", r"^z-image"),
    ("cogview", r"^cogview"),
    ("stylegan", r"^stylegan"),
    ("glm-longcat", r"^(glm|longcat)"),
)


def family_of(generator: str) -> str:
    g = generator.strip().lower()
    for family, pattern in FAMILY_RULES:
        if re.search(pattern, g):
            return family
    return g


@dataclass(frozen=True)
class Fold:
    """One held-out part of a pool (a generator family, or sources): fit on `train`, fit the
    threshold and calibration on `calibrate`, test `test`; `held` names what was held out (the
    family's generators, or the sources)."""

    name: str
    held: tuple[str, ...]
    train: list[Record]
    calibrate: list[Record]
    test: list[Record]


def logo_folds(records: Sequence[Record], min_fakes: int = 20, test_split: str = "val") -> list[Fold]:
    """Leave-one-family-out folds over a pool with train/val splits.

    Each family with at least `min_fakes` fake files is held out in turn: training keeps the train
    split minus every image of that family; the test set is all of the family's fakes (train and
    val) against the reals of `test_split`, which no fold trains on. Families below `min_fakes` form
    one pooled fold ("small families"), so every generator is held out once.

    The reals of `test_split` are halved by group (sorted groups alternate): one half calibrates,
    with the other families' `test_split` fakes; the other half is what the held-out fakes are
    tested against, so the threshold is never fitted on a test image."""
    fakes = [r for r in records if r.label == FAKE]
    counts = Counter(family_of(r.generator) for r in fakes)
    big = sorted(f for f, n in counts.items() if n >= min_fakes)
    small = sorted(f for f, n in counts.items() if n < min_fakes)
    reals = [r for r in records if r.label != FAKE and r.split == test_split]
    half = {g: i % 2 for i, g in enumerate(sorted({r.group_key for r in reals}))}
    cal_reals = [r for r in reals if half[r.group_key] == 0]
    held_reals = [r for r in reals if half[r.group_key] == 1]
    if not cal_reals or not held_reals:
        raise ValueError(f"too few real groups in split {test_split!r} to calibrate and test held-out families")
    folds = []
    for name, members in [(f, {f}) for f in big] + ([("small families", set(small))] if small else []):
        test_fakes = [r for r in fakes if family_of(r.generator) in members]
        held = [r.label == FAKE and family_of(r.generator) in members for r in records]
        train = [r for r, out in zip(records, held, strict=True) if r.split == "train" and not out]
        gens = tuple(sorted({r.generator for r in test_fakes}))
        cal_fakes = [r for r, out in zip(records, held, strict=True)
                     if r.label == FAKE and r.split == test_split and not out]
        folds.append(Fold(name, gens, train, cal_reals + cal_fakes, held_reals + test_fakes))
    return folds
