"""`unigendet detect`: files and folders in, one verdict per image out (table, JSON lines
or CSV). An unreadable file gets an error row; the exit code is non-zero only when
nothing at all could be read."""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..data.imageio import DEFAULT_MAX_PIXELS, ImageError, is_image_file, open_image
from ..progress import progress_bar
from ..shipped import DETECTOR_ENV, default_detector
from .predictor import BASE_HELP, Predictor


@dataclass(frozen=True)
class DetectConfig:
    """`unigendet detect`: one verdict per image."""

    paths: tuple[str, ...]  # image files or folders (searched recursively)
    checkpoint: str | None = field(default=None, metadata={"help": (
        f"a detector run or checkpoint directory (any kind; default: ${DETECTOR_ENV}, else the in-the-wild "
        "detector shipped in the package)")})
    format: str = field(default="table", metadata={"choices": ("table", "jsonl", "csv")})
    explain: bool = False  # write an explanation for each image (by the shipped UniGenDet for other detectors)
    verdict: str = field(default="cls", metadata={
        "choices": ("cls", "text"), "help": "UniGenDet: label from the cls head (default) or from the written answer"})
    threshold: float | None = None  # p_fake above this is called fake (default: the detector's calibrated one)
    batch: int = 16  # images per forward pass
    max_pixels: int = DEFAULT_MAX_PIXELS  # larger images are refused, unread
    device: str = "cpu"
    quiet: bool = False  # no progress bar
    base: str | None = field(default=None, metadata={"help": BASE_HELP})


def detect_paths(cfg: DetectConfig, out=None) -> int:
    """Verdicts for `cfg.paths` written to `out` (stdout); the exit code (see `exit_code`)."""
    predictor = Predictor(cfg.checkpoint or default_detector(), device=cfg.device, threshold=cfg.threshold,
                          verdict=cfg.verdict, base=cfg.base)
    rows = run_detect(predictor, list(cfg.paths), explain=cfg.explain, batch=cfg.batch, max_pixels=cfg.max_pixels,
                      progress=not cfg.quiet)
    write_rows(rows, cfg.format, out)
    return exit_code(rows)


@dataclass
class Row:
    path: str
    label: str | None = None
    p_fake: float | None = None
    explanation: str | None = None
    spread: float | None = None  # disagreement of the image's crops (multi-crop detectors)
    error: str | None = None
    note: str | None = None  # the explaining model's own verdict, where it differs
    evidence: str | None = None  # where the detector's evidence lies and how confident it is
    attribution: dict | None = None  # which kind of evidence moved the verdict (Attribution.to_json)


def expand(paths: list[str]) -> Iterator[tuple[str, str | None]]:
    """(path, error): folders recursively (image suffixes only, sorted); named files as given,
    whatever their suffix (a mislabelled one then fails in decoding, with its reason)."""
    for p in paths:
        path = Path(p)
        if path.is_dir():
            for f in sorted(path.rglob("*")):
                if f.is_file() and is_image_file(f):
                    yield str(f), None
        elif path.is_file():
            yield str(path), None
        else:
            yield str(path), "no such file or folder"


def run_detect(predictor: Predictor, paths: list[str], explain: bool = False, batch: int = 16,
               max_pixels: int = DEFAULT_MAX_PIXELS, progress: bool = True) -> list[Row]:
    items = list(expand(paths))
    rows: list[Row] = []
    pending: list[tuple[Row, object]] = []

    def flush() -> None:
        if pending:
            for (row, _), v in zip(pending, predictor.detect([im for _, im in pending], explain), strict=True):
                row.label, row.p_fake, row.explanation, row.spread = v.label, v.p_fake, v.explanation, v.spread
                row.note, row.evidence = v.note, v.evidence
                row.attribution = v.attribution.to_json() if v.attribution is not None else None
            pending.clear()

    for path, error in progress_bar(items, desc="detect", unit="img", enabled=progress, file=sys.stderr):
        row = Row(path, error=error)
        rows.append(row)
        if error:
            continue
        try:
            pending.append((row, open_image(path, max_pixels=max_pixels)))
        except ImageError as e:
            row.error = e.reason
        if len(pending) >= batch:
            flush()
    flush()
    return rows


def write_rows(rows: list[Row], fmt: str, out=None) -> None:
    out = out or sys.stdout
    if fmt == "jsonl":
        for r in rows:
            d = {"path": r.path}
            d.update({"label": r.label, "p_fake": r.p_fake} if r.error is None else {"error": r.error})
            if r.spread is not None:
                d["spread"] = r.spread
            if r.explanation is not None:
                d["explanation"] = r.explanation
            if r.note is not None:
                d["note"] = r.note
            if r.evidence is not None:
                d["evidence"] = r.evidence
            if r.attribution is not None:
                d["attribution"] = r.attribution
            out.write(json.dumps(d) + "\n")
    elif fmt == "csv":
        w = csv.writer(out)
        w.writerow(["path", "label", "p_fake", "spread", "explanation", "error", "note", "evidence"])
        for r in rows:
            w.writerow([r.path, r.label or "", "" if r.p_fake is None else f"{r.p_fake:.6f}",
                        "" if r.spread is None else f"{r.spread:.4f}", r.explanation or "", r.error or "",
                        r.note or "", r.evidence or ""])
    else:
        width = min(60, max([len(r.path) for r in rows] + [4]))
        out.write(f"{'path':<{width}}  {'verdict':<7}  p_fake\n")
        for r in rows:
            name = r.path if len(r.path) <= width else "..." + r.path[-width + 3:]
            if r.error:
                out.write(f"{name:<{width}}  {'error':<7}  {r.error}\n")
            else:
                out.write(f"{name:<{width}}  {r.label:<7}  {r.p_fake:.3f}\n")
                if r.explanation:
                    out.write(f"{'':<{width}}  {r.explanation}\n")
                for line in (r.evidence, r.note):
                    if line:
                        out.write(f"{'':<{width}}  {line}\n")


def exit_code(rows: list[Row]) -> int:
    return 0 if any(r.error is None for r in rows) else 1
