"""Which real images teach the generator and which measure it.

The detection splits are by photo, so a val or test caption names a subject the generator never
saw. Generation is measured instead on crops held out from the training photos: per photo group,
every `every`-th captioned real crop (in path order) is kept from text-to-image training, so the
generator knows each held-out caption's subject but never saw those pixels.
"""

from __future__ import annotations

from collections import defaultdict

from ..labels import FAKE
from .records import Record

HOLDOUT_EVERY = 4


def generation_split(records: list[Record], every: int = HOLDOUT_EVERY) -> tuple[list[Record], list[Record]]:
    """(train, held out) among the train split's captioned reals (all records when none has a split).
    A group with fewer than `every` crops holds out its last one; a single crop stays in training.
    Each real path counts once."""
    split = [r for r in records if r.split == "train"] or [r for r in records if not r.split]
    seen, by_group = set(), defaultdict(list)
    for r in sorted(split, key=lambda r: str(r.path)):
        if r.label != FAKE and r.caption and str(r.path) not in seen:
            seen.add(str(r.path))
            by_group[r.group_key].append(r)
    train, held = [], []
    for group in sorted(by_group):
        rs = by_group[group]
        for i, r in enumerate(rs):
            out = i % every == every - 1 or (len(rs) < every and i == len(rs) - 1 and len(rs) > 1)
            (held if out else train).append(r)
    return train, held
