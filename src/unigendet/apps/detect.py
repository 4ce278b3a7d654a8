"""`unigendet detect`: files and folders in, one verdict per image out (table, JSON lines
or CSV). An unreadable file gets an error row; the exit code is non-zero only when
nothing at all could be read.

Images are decoded by a few threads ahead of the model (a bounded window, in input order) and
rows are written as their batch finishes. `--resume OUT.jsonl` appends to OUT.jsonl and skips
every path already in it, so a scan stopped by a crash or Ctrl-C finishes without losing or
repeating a row (a torn last line is dropped and redone). `--report OUT.html` also writes the
triage page of every row (`triage`), its pictures made from the images already decoded.
"""

from __future__ import annotations

import os
import sys
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from ..data.imageio import DEFAULT_MAX_PIXELS, ImageError, is_image_file, open_image
from ..progress import progress_bar
from ..shipped import DETECTOR_ENV, default_detector
from . import triage
from .predictor import BASE_HELP, Predictor
from .rows import Row, parse_rows, write_rows


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
    report: str | None = field(default=None, metadata={"help": (
        "also write a triage page here (HTML, its pictures in a folder beside it): a grid of every image, most "
        "suspicious first, each opening its verdict, heat map and reasons (those with --explain)")})
    previews: str = field(default="suspicious", metadata={"choices": triage.PREVIEWS, "help": triage.PREVIEWS_HELP})
    max_pixels: int = DEFAULT_MAX_PIXELS  # larger images are refused, unread
    device: str = "cpu"
    quiet: bool = False  # no progress bar
    base: str | None = field(default=None, metadata={"help": BASE_HELP})


def detect_paths(cfg: DetectConfig, out=None) -> int:
    """Verdicts for `cfg.paths` written to `out` (stdout; with `resume`, that file), and with `report`
    the triage page of them all; the exit code: 1 only when no image at all could be read."""
    if cfg.resume and cfg.format not in ("table", "jsonl"):
        raise SystemExit("detect: --resume writes JSON lines; drop --format or use --format jsonl")
    done = finished_paths(cfg.resume) if cfg.resume else set()
    predictor = Predictor(cfg.checkpoint or default_detector(), device=cfg.device, threshold=cfg.threshold,
                          verdict=cfg.verdict, base=cfg.base)
    items = [(p, e) for p, e in expand(list(cfg.paths)) if p not in done]
    started, t0 = triage.now(), time.perf_counter()
    pictures = triage.Pictures(triage.pictures_folder(cfg.report), cfg.previews, cfg.workers) if cfg.report else None
    rows = run_detect(predictor, items, explain=cfg.explain, batch=cfg.batch, max_pixels=cfg.max_pixels,
                      progress=not cfg.quiet, workers=cfg.workers, on_scored=pictures.add if pictures else None)
    kept: list[Row] = []
    if cfg.report and not cfg.resume:
        rows = (kept.append(r) or r for r in rows)
    try:
        if cfg.resume:
            with open(cfg.resume, "a") as f:
                ok = write_rows(rows, "jsonl", f) or bool(done)
        else:
            ok = write_rows(rows, cfg.format, out)
    finally:
        if pictures is not None:
            pictures.close()
    if cfg.report:  # a resumed run's page shows every row of its file, earlier runs' included
        named = " ".join(cfg.paths)
        named = named if len(named) <= 100 else named[:97] + "..."
        about = triage.About(title=f"unigendet detect: {named}", detector=predictor.name,
                             threshold=predictor.threshold, started=started, seconds=time.perf_counter() - t0,
                             source=f"unigendet detect {named}")
        path = triage.build_report(cfg.report, triage.read_results(cfg.resume) if cfg.resume else kept, about,
                                   cfg.previews, cfg.workers, cfg.max_pixels)
        if not cfg.quiet:
            print(f"detect: report in {path}", file=sys.stderr)
    return 0 if ok else 1


def finished_paths(file: str | os.PathLike) -> set[str]:
    """The paths a JSON-lines output already holds; a torn or unreadable last line is cut off."""
    path = Path(file)
    if not path.is_file():
        return set()
    data = path.read_bytes()
    rows, good = parse_rows(data)
    if good < len(data):
        with open(path, "r+b") as f:
            f.truncate(good)
    return {r.path for r in rows}


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
               max_pixels: int = DEFAULT_MAX_PIXELS, progress: bool = True, workers: int = 2,
               on_scored: Callable[[Row, Image.Image], None] | None = None) -> Iterator[Row]:
    """Rows in input order, each batch's as soon as it is scored; `items` as `expand` gives them.
    `on_scored(row, image)` sees each decoded image once its row is filled (the report's thumbnails)."""
    pending: list[tuple[Row, object | None]] = []

    def flush() -> Iterator[Row]:
        scored = [(row, im) for row, im in pending if im is not None]
        if scored:
            for (row, _), v in zip(scored, predictor.detect([im for _, im in scored], explain), strict=True):
                row.label, row.p_fake, row.explanation, row.spread = v.label, v.p_fake, v.explanation, v.spread
                row.note, row.evidence, row.uncertain = v.note, v.evidence, v.uncertain
                row.attribution = v.attribution.to_json() if v.attribution is not None else None
                row.heatmap = v.tiles.round(4).tolist() if v.tiles is not None else None
            if on_scored is not None:
                for row, im in scored:
                    on_scored(row, im)
        yield from (row for row, _ in pending)
        pending.clear()

    stream = decoded(items, max_pixels, workers, ahead=2 * batch)
    for path, image, error in progress_bar(stream, total=len(items), desc="detect", unit="img", enabled=progress,
                                           file=sys.stderr):
        pending.append((Row(path, error=error), image))
        if sum(im is not None for _, im in pending) >= batch:
            yield from flush()
    yield from flush()
