"""One verdict row (`detect`'s and `scan`'s unit of output) and its written forms: JSON lines, CSV
and the table."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass


@dataclass
class Row:
    path: str
    label: str | None = None
    p_fake: float | None = None
    explanation: str | None = None
    spread: float | None = None  # disagreement of the image's crops (multi-crop detectors)
    uncertain: str | None = None  # why the verdict is "uncertain"
    error: str | None = None
    note: str | None = None  # the explaining model's own verdict, where it differs
    evidence: str | None = None  # where the detector's evidence lies and how confident it is
    attribution: dict | None = None  # which kind of evidence moved the verdict (Attribution.to_json)
    heatmap: list | None = None  # p_fake of each tile, rows of the grid (with explanations, large images)

    def to_json(self) -> dict:
        """The JSON-lines object: path, then label and p_fake or error, then what is known."""
        d = {"path": self.path}
        d.update({"label": self.label, "p_fake": self.p_fake} if self.error is None else {"error": self.error})
        for name in ("spread", "uncertain", "explanation", "note", "evidence", "attribution", "heatmap"):
            if getattr(self, name) is not None:
                d[name] = getattr(self, name)
        return d

    @classmethod
    def from_json(cls, d: dict) -> Row:
        """A row from `to_json`'s object, or from a scan's (which has every column, nulls included)."""
        if not isinstance(d, dict) or not isinstance(d.get("path"), str):
            raise ValueError("a row needs a 'path' string")
        return cls(**{f: d.get(f) for f in cls.__dataclass_fields__})


def parse_rows(data: bytes) -> tuple[list[Row], int]:
    """The rows of JSON-lines output up to the first line that is torn (no newline: a killed run) or not a
    row, and how many bytes they take; blank lines are passed over."""
    rows, good = [], 0
    for line in data.splitlines(keepends=True):
        if line.strip():
            try:
                if not line.endswith(b"\n"):
                    raise ValueError("torn line")
                rows.append(Row.from_json(json.loads(line)))
            except ValueError:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
                break
        good += len(line)
    return rows, good


def write_rows(rows: Iterable[Row], fmt: str, out=None) -> bool:
    """Write rows as they come (the table waits for all, to size its column); whether any was read."""
    out = out or sys.stdout
    ok = False
    if fmt == "table":
        rows = list(rows)
    if fmt == "jsonl":
        for r in rows:
            ok |= r.error is None
            out.write(json.dumps(r.to_json()) + "\n")
            out.flush()
    elif fmt == "csv":
        w = csv.writer(out)
        w.writerow(["path", "label", "p_fake", "spread", "explanation", "error", "note", "evidence", "uncertain"])
        for r in rows:
            ok |= r.error is None
            w.writerow([r.path, r.label or "", "" if r.p_fake is None else f"{r.p_fake:.6f}",
                        "" if r.spread is None else f"{r.spread:.4f}", r.explanation or "", r.error or "",
                        r.note or "", r.evidence or "", r.uncertain or ""])
            out.flush()
    else:
        width = min(60, max([len(r.path) for r in rows] + [4]))
        out.write(f"{'path':<{width}}  {'verdict':<7}  p_fake\n")
        for r in rows:
            ok |= r.error is None
            name = r.path if len(r.path) <= width else "..." + r.path[-width + 3:]
            if r.error:
                out.write(f"{name:<{width}}  {'error':<7}  {r.error}\n")
            else:
                out.write(f"{name:<{width}}  {r.label:<7}  {r.p_fake:.3f}\n")
                if r.uncertain:
                    out.write(f"{'':<{width}}  uncertain: {r.uncertain}\n")
                if r.explanation:
                    out.write(f"{'':<{width}}  {r.explanation}\n")
                for line in (r.evidence, r.note):
                    if line:
                        out.write(f"{'':<{width}}  {line}\n")
    return ok
