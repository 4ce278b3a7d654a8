"""The record every reader returns, and label parsing.

Labels follow UniGenDet's public code: 0 = fake, 1 = real (`unigendet.labels`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from ..labels import FAKE, REAL

_LABELS = {
    "fake": FAKE, "1_fake": FAKE, "ai": FAKE, "generated": FAKE, "synthetic": FAKE,
    "real": REAL, "0_real": REAL, "nature": REAL, "authentic": REAL,
}


class DataError(ValueError):
    """A malformed data entry (bad label, missing file, unreadable image): `where` names the file,
    line or folder, `reason` says what is wrong (the message is "where: reason")."""

    def __init__(self, where: object, reason: str | None = None):
        super().__init__(str(where) if reason is None else f"{where}: {reason}")
        self.where, self.reason = ("", str(where)) if reason is None else (str(where), reason)


def parse_label(value: str | int, where: str = "") -> int:
    """'real'/'fake' (and the field's folder names) -> 1/0. Integers must already be 0/1."""
    if isinstance(value, int) and value in (FAKE, REAL):
        return value
    key = str(value).strip().lower()
    if key in _LABELS:
        return _LABELS[key]
    raise DataError(where, f"label {value!r} is neither real nor fake")


@dataclass(frozen=True)
class Record:
    path: Path
    label: int  # 0 fake, 1 real
    generator: str  # the generator of a fake; for a real, the generator it is paired with (or "real")
    split: str = ""  # train / val / test, or "" when the source has no split
    caption: str = ""
    explanation: str = ""
    source: str = ""  # where a real came from (photo id, package), for splits and data cards
    group: str = ""  # images that must stay on one side of any split (crops of one original, one gallery)
    original_format: str = ""  # the file format the image was published in, before any re-encoding
    original_width: int = 0  # the published image's size (0: unknown)
    original_height: int = 0

    @property
    def group_key(self) -> str:
        """What a split keeps together: the group when known, else the source, else the file."""
        return self.group or self.source or str(self.path)

    @property
    def is_fake(self) -> bool:
        return self.label == FAKE

    def to_row(self, root: Path | None = None) -> dict[str, str]:
        row = {k: str(v) for k, v in asdict(self).items()}
        row["label"] = "fake" if self.is_fake else "real"
        if root is not None:
            row["path"] = Path(self.path).relative_to(root).as_posix()
        return row


def photo_half(records: list[Record], half: str) -> list[Record]:
    """Records whose source photo falls in half "a" or "b": the records' distinct `source` values,
    sorted, alternate a, b, a, ... (pairs and crops of one photo stay together; the halves get
    about equal numbers of photos). "all" keeps every record. Used to fit an ensemble on one half
    of a validation split and select models on the other."""
    if half == "all":
        return list(records)
    if half not in ("a", "b"):
        raise ValueError(f"half must be 'a', 'b' or 'all', not {half!r}")
    order = {s: i % 2 for i, s in enumerate(sorted({r.source for r in records}))}
    want = 0 if half == "a" else 1
    return [r for r in records if order[r.source] == want]
