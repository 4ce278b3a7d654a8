"""`unigendet detect`: files and folders in, one verdict per image out (table, JSON lines
or CSV). An unreadable file gets an error row; the exit code is non-zero only when
nothing at all could be read.

Images are decoded by a few threads ahead of the model (a bounded window, in input order) and
rows are written as their batch finishes. `--resume OUT.jsonl` appends to OUT.jsonl and skips
every path already in it, so a scan stopped by a crash or Ctrl-C finishes without losing or
repeating a row (a torn last line is dropped and redone).
"""

from __future__ import annotations

import csv
import json
import os
import sys
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
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
    workers: int = 2  # threads decoding images ahead of the model
    resume: str | None = None  # append JSON lines to this file, skipping the paths already in it
    max_pixels: int = DEFAULT_MAX_PIXELS  # larger images are refused, unread
    device: str = "cpu"
    quiet: bool = False  # no progress bar
    base: str | None = field(default=None, metadata={"help": BASE_HELP})


def detect_paths(cfg: DetectConfig, out=None) -> int:
    """Verdicts for `cfg.paths` written to `out` (stdout; with `resume`, that file); the exit code
    (see `exit_code`)."""
    if cfg.resume and cfg.format not in ("table", "jsonl"):
        raise SystemExit("detect: --resume writes JSON lines; drop --format or use --format jsonl")
    done = finished_paths(cfg.resume) if cfg.resume else set()
    predictor = Predictor(cfg.checkpoint or default_detector(), device=cfg.device, threshold=cfg.threshold,
                          verdict=cfg.verdict, base=cfg.base)
    items = [(p, e) for p, e in expand(list(cfg.paths)) if p not in done]
    rows = run_detect(predictor, items, explain=cfg.explain, batch=cfg.batch, max_pixels=cfg.max_pixels,
                      progress=not cfg.quiet, workers=cfg.workers)
    if cfg.resume:
        with open(cfg.resume, "a") as f:
            ok = write_rows(rows, "jsonl", f)
        return 0 if ok or done else 1
    return 0 if write_rows(rows, cfg.format, out) else 1


def finished_paths(file: str | os.PathLike) -> set[str]:
    """The paths a JSON-lines output already holds; a torn or unreadable last line is cut off."""
    path = Path(file)
    if not path.is_file():
        return set()
    data = path.read_bytes()
    done, good = set(), 0
    for line in data.splitlines(keepends=True):
        try:
            if not line.endswith(b"\n"):
                raise ValueError("torn line")
            done.add(json.loads(line)["path"])
        except (ValueError, KeyError, TypeError):
            break
        good += len(line)
    if good < len(data):
        with open(path, "r+b") as f:
            f.truncate(good)
    return done


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


def decoded(items: Iterable[tuple[str, str | None]], max_pixels: int, workers: int,
            ahead: int) -> Iterator[tuple[str, object | None, str | None]]:
    """(path, image or None, error) in input order, decoded by `workers` threads at most `ahead`
    images in advance (0 workers: in this thread)."""
    def read(path: str, error: str | None):
        if error:
            return None, error
        try:
            return open_image(path, max_pixels=max_pixels), None
        except ImageError as e:
            return None, e.reason

    if workers <= 0:
        for path, error in items:
            yield path, *read(path, error)
        return
    with ThreadPoolExecutor(workers, thread_name_prefix="decode") as pool:
        window: deque = deque()
        for path, error in items:
            window.append((path, pool.submit(read, path, error)))
            if len(window) > ahead:
                p, f = window.popleft()
                yield p, *f.result()
        while window:
            p, f = window.popleft()
            yield p, *f.result()


def run_detect(predictor: Predictor, items: list[tuple[str, str | None]], explain: bool = False, batch: int = 16,
               max_pixels: int = DEFAULT_MAX_PIXELS, progress: bool = True, workers: int = 2) -> Iterator[Row]:
    """Rows in input order, each batch's as soon as it is scored; `items` as `expand` gives them."""
    pending: list[tuple[Row, object | None]] = []

    def flush() -> Iterator[Row]:
        scored = [(row, im) for row, im in pending if im is not None]
        if scored:
            for (row, _), v in zip(scored, predictor.detect([im for _, im in scored], explain), strict=True):
                row.label, row.p_fake, row.explanation, row.spread = v.label, v.p_fake, v.explanation, v.spread
                row.note, row.evidence, row.uncertain = v.note, v.evidence, v.uncertain
                row.attribution = v.attribution.to_json() if v.attribution is not None else None
        yield from (row for row, _ in pending)
        pending.clear()

    stream = decoded(items, max_pixels, workers, ahead=2 * batch)
    for path, image, error in progress_bar(stream, total=len(items), desc="detect", unit="img", enabled=progress,
                                           file=sys.stderr):
        pending.append((Row(path, error=error), image))
        if sum(im is not None for _, im in pending) >= batch:
            yield from flush()
    yield from flush()


def write_rows(rows: Iterable[Row], fmt: str, out=None) -> bool:
    """Write rows as they come (the table waits for all, to size its column); whether any was read."""
    out = out or sys.stdout
    ok = False
    if fmt == "table":
        rows = list(rows)
    if fmt == "jsonl":
        for r in rows:
            ok |= r.error is None
            d = {"path": r.path}
            d.update({"label": r.label, "p_fake": r.p_fake} if r.error is None else {"error": r.error})
            if r.spread is not None:
                d["spread"] = r.spread
            if r.uncertain is not None:
                d["uncertain"] = r.uncertain
            if r.explanation is not None:
                d["explanation"] = r.explanation
            if r.note is not None:
                d["note"] = r.note
            if r.evidence is not None:
                d["evidence"] = r.evidence
            if r.attribution is not None:
                d["attribution"] = r.attribution
            out.write(json.dumps(d) + "\n")
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
