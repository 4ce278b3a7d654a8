"""The triage report: one HTML page on which a person reviews many verdicts.

`unigendet detect PATHS --report OUT.html`, `unigendet scan ... --report OUT.html` and `unigendet
report RESULTS --out OUT.html` write it. The page opens from disk, needs no server and reaches
nothing on the network (its content-security policy allows its own two inline scripts and local
pictures only): the rows are JSON inside it, and the pictures are small WebP files in a folder
beside it, `OUT_files/`: a thumbnail of every readable image and, for the detail view, a larger
preview of every image not called real (the ones a person opens; `previews` says which). A
picture is named by a hash of its image's path, so a report rebuilt over the same images (a
resumed scan, a second report from the same results) reuses the pictures already there.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import os
import re
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import quote

from PIL import Image

from ..data.imageio import DEFAULT_MAX_PIXELS, read_any
from ..progress import progress_bar
from .assets import asset
from .rows import Row, parse_rows

THUMB_SIDE = 192  # px, the longer side of a grid thumbnail
PREVIEW_SIDE = 640  # px, the longer side of a detail-view preview
BROWSER_SHOWS = {".png", ".jpg", ".jpeg", ".jfif", ".gif", ".webp", ".bmp"}  # the detail view can open these
VERDICTS = ("fake", "uncertain", "real", "unreadable")  # the summary's kinds of row
PREVIEWS = ("suspicious", "all", "none")  # which images get a preview: those not called real, all, none
PREVIEWS_HELP = "which images get a larger picture for the detail view: those not called real (default), all, none"


@dataclass(frozen=True)
class ReportConfig:
    """`unigendet report`: the triage page for saved verdicts, without scoring again."""

    results: str  # JSON lines written by `detect --format jsonl` (or --resume), or a scan's output directory
    out: str = "report.html"  # the page; its pictures go in a folder beside it (OUT_files/)
    detector: str | None = None  # the detector named in the summary (saved rows do not record it)
    threshold: float | None = None  # the threshold named in the summary (likewise)
    title: str | None = None
    previews: str = field(default="suspicious", metadata={"choices": PREVIEWS, "help": PREVIEWS_HELP})
    only: tuple[str, ...] = field(default=(), metadata={"choices": VERDICTS, "help": (
        "hold only rows with these verdicts (the summary still counts every row): a short page for a large scan")})
    workers: int = 2  # threads decoding the images again for their pictures
    max_pixels: int = DEFAULT_MAX_PIXELS  # larger images get no picture
    quiet: bool = False  # no progress bar


@dataclass
class About:
    """What the report's summary says about the run behind it; None: not recorded."""

    title: str = "unigendet report"
    detector: str | None = None
    threshold: float | None = None
    started: str | None = None  # local time, ISO 8601
    seconds: float | None = None  # how long the verdicts took
    source: str | None = None  # the command, or the results the report was built from
    explained: bool = False
    counts: dict[str, int] | None = None  # every row's verdict, counted (set by `write_report`)
    only: tuple[str, ...] = ()  # the verdicts the page holds rows of (empty: all)


def pictures_folder(out: str | os.PathLike) -> Path:
    """The folder beside the page that holds its pictures: `report.html` -> `report_files/`."""
    out = Path(out)
    return out.with_name(out.stem + "_files")


def picture_names(path: str) -> tuple[str, str]:
    """The file names of an image's thumbnail and preview: a hash of its path."""
    key = hashlib.sha1(path.encode("utf-8", "surrogatepass")).hexdigest()[:20]
    return f"{key}.webp", f"{key}.preview.webp"


def shrunk(image: Image.Image, side: int) -> Image.Image:
    """The image with its longer side at most `side` (never enlarged)."""
    w, h = image.size
    scale = side / max(w, h)
    if scale >= 1:
        return image
    return image.resize((max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS,
                        reducing_gap=3.0)


class Pictures:
    """Writes each image's thumbnail (and preview) into `folder`. `add` hands the work to a few
    threads and holds at most a few images queued; `close` waits for them and raises the first
    write error (a full disk, say)."""

    def __init__(self, folder: str | os.PathLike, previews: str = "suspicious", workers: int = 2):
        if previews not in PREVIEWS:
            raise ValueError(f"previews must be one of {PREVIEWS}")
        self.folder, self.previews = Path(folder), previews
        self.folder.mkdir(parents=True, exist_ok=True)
        self._pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="pictures")
        self._slots = threading.BoundedSemaphore(4 * max(1, workers))
        self._failed: list[BaseException] = []

    def wants_preview(self, label: str | None) -> bool:
        return self.previews == "all" or (self.previews == "suspicious" and label not in (None, "real"))

    def missing(self, row: Row) -> bool:
        """Whether the row's pictures are not all there yet."""
        thumb, preview = picture_names(row.path)
        return not (self.folder / thumb).is_file() or (
            self.wants_preview(row.label) and not (self.folder / preview).is_file())

    def write(self, row: Row, image: Image.Image) -> None:
        """The row's pictures, written now (each through a temporary name, so none is ever torn)."""
        thumb, preview = picture_names(row.path)
        if self.wants_preview(row.label):
            image = shrunk(image, PREVIEW_SIDE)
            _save(image, self.folder / preview, quality=80)
        _save(shrunk(image, THUMB_SIDE), self.folder / thumb, quality=70)

    def add(self, row: Row, image: Image.Image) -> None:
        """`write` in a thread; waits while the queue is full."""
        self._slots.acquire()
        try:
            future = self._pool.submit(self.write, row, image)
        except BaseException:
            self._slots.release()
            raise
        future.add_done_callback(self._done)

    def _done(self, future: Future) -> None:
        self._slots.release()
        if future.exception() is not None:
            self._failed.append(future.exception())

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        if self._failed:
            raise OSError(f"{len(self._failed)} pictures could not be written to {self.folder}: {self._failed[0]}")


def _save(image: Image.Image, path: Path, quality: int) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    image.save(tmp, format="WEBP", quality=quality, method=4)
    os.replace(tmp, path)


def fill_pictures(rows: list[Row], pictures: Pictures, workers: int = 2, max_pixels: int = DEFAULT_MAX_PIXELS,
                  progress: bool = False) -> dict[str, str]:
    """Pictures for the rows that lack them, each image read again (local paths and URIs); the
    images that could not be read now, with why (moved or deleted since the verdict, say)."""
    todo = [r for r in rows if r.error is None and pictures.missing(r)]

    def one(row: Row) -> str | None:
        image, error = read_any(row.path, max_pixels)
        if image is not None:
            pictures.write(row, image)
        return error

    gone = {}
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="pictures") as pool:
        found = progress_bar(pool.map(one, todo), total=len(todo), desc="pictures", unit="img", enabled=progress,
                             file=sys.stderr)
        for row, error in zip(todo, found, strict=True):
            if error is not None:
                gone[row.path] = error
    return gone


def read_results(source: str | os.PathLike) -> list[Row]:
    """The rows of saved results: a JSON-lines file (`detect`'s), or a directory of a scan's shards
    (JSON lines or Parquet). A torn last line (a killed run) is skipped; any other bad line is an
    error naming the file and line."""
    source = Path(source)
    if source.is_dir():
        shards = sorted(p for p in source.rglob("*") if p.is_file() and not p.name.startswith((".", "_")))
        if not shards:
            raise ValueError(f"{source}: no result shards in this directory")
        return [row for shard in shards for row in read_results(shard)]
    if not source.is_file():
        raise FileNotFoundError(f"{source}: no such results file or directory")
    if source.suffix == ".parquet":
        return _parquet_rows(source)
    data = source.read_bytes()
    rows, good = parse_rows(data)
    if b"\n" in data[good:]:  # a bad line that is not the torn last one of a killed run
        line = data[:good].count(b"\n") + 1
        raise ValueError(f"{source}:{line}: not a result row")
    return rows


def _parquet_rows(path: Path) -> list[Row]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ValueError(f"{path}: reading Parquet needs pyarrow (pip install 'unigendet[ray]')") from None
    return [Row.from_json(d) for d in pq.read_table(path).to_pylist()]


def verdict_of(row: Row) -> str:
    return "unreadable" if row.error is not None else str(row.label)


def write_report(out: str | os.PathLike, rows: Iterable[Row], about: About, gone: dict[str, str] | None = None) -> Path:
    """The page at `out`, its rows (those of `about.only`'s verdicts, when given) pointing at the
    pictures present in `pictures_folder(out)`; the summary counts every row."""
    out = Path(out)
    folder = pictures_folder(out)
    gone = gone or {}
    present = set(os.listdir(folder)) if folder.is_dir() else set()
    listed, counts = [], Counter()
    for row in rows:
        counts[verdict_of(row)] += 1
        if about.only and verdict_of(row) not in about.only:
            continue
        d = row.to_json()
        thumb, preview = picture_names(row.path)
        if thumb in present:
            d["thumb"] = f"{quote(folder.name)}/{thumb}"
        if preview in present:
            d["preview"] = f"{quote(folder.name)}/{preview}"
        if row.path in gone:
            d["missing"] = gone[row.path]
        elif row.error is None and (original := _original(row.path, out)):
            d["original"] = original
        listed.append(d)
    about = About(**{**asdict(about), "counts": dict(counts),
                     "explained": about.explained or any(r.get("explanation") for r in listed)})
    scripts = [asset("verdict.js"), asset("triage.js")]
    hashes = " ".join(f"'sha256-{_digest(s)}'" for s in scripts)
    csp = (f"default-src 'none'; img-src 'self' file: data: blob:; style-src 'unsafe-inline'; script-src {hashes}; "
           "base-uri 'none'; form-action 'none'")
    values = {
        "CSP": csp, "TITLE": html.escape(about.title),
        "ABOUT": _embedded(asdict(about)), "ROWS": _embedded(listed),
        "SCRIPTS": "\n".join(f"<script>{s}</script>" for s in scripts),
    }
    page = re.sub(r"%(CSP|TITLE|ABOUT|ROWS|SCRIPTS)%", lambda m: values[m[1]], asset("triage.html"))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_text(page, encoding="utf-8")
    os.replace(tmp, out)
    return out


def _original(path: str, out: Path) -> str | None:
    """The image file as a URL relative to the page, where a browser can show it (a local JPEG, PNG,
    WebP, ...; a relative path taken from the current directory, as `detect` read it)."""
    if "://" in path or Path(path).suffix.lower() not in BROWSER_SHOWS:
        return None
    try:
        return quote(os.path.relpath(os.path.abspath(path), out.parent.absolute()).replace(os.sep, "/"))
    except ValueError:  # another drive
        return None


def _digest(script: str) -> str:
    return base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()


def _embedded(value) -> str:
    """JSON that cannot end the <script> element it sits in."""
    return json.dumps(value, separators=(",", ":")).replace("<", "\\u003c")


def now() -> str:
    return datetime.now().astimezone().isoformat(timespec="seconds")


def build_report(out: str | os.PathLike, rows: list[Row], about: About, previews: str = "suspicious",
                 workers: int = 2, max_pixels: int = DEFAULT_MAX_PIXELS, progress: bool = False) -> Path:
    """The page at `out`, after making the pictures its rows lack (each image read again)."""
    pictures = Pictures(pictures_folder(out), previews, workers)
    shown = [r for r in rows if not about.only or verdict_of(r) in about.only]
    try:
        gone = fill_pictures(shown, pictures, workers, max_pixels, progress)
    finally:
        pictures.close()
    return write_report(out, rows, about, gone)


def report_from_results(cfg: ReportConfig) -> Path:
    """`unigendet report`: read the rows, make the pictures they lack, write the page."""
    t0 = time.perf_counter()
    rows = read_results(cfg.results)
    written = datetime.fromtimestamp(os.path.getmtime(cfg.results)).astimezone().isoformat(timespec="seconds")
    about = About(title=cfg.title or f"unigendet report: {cfg.results}", detector=cfg.detector,
                  threshold=cfg.threshold, started=f"results written {written}", source=str(cfg.results),
                  only=tuple(cfg.only))
    path = build_report(cfg.out, rows, about, cfg.previews, cfg.workers, cfg.max_pixels, progress=not cfg.quiet)
    if not cfg.quiet:
        print(f"report: {len(rows)} rows; {path} ({time.perf_counter() - t0:.1f} s)", file=sys.stderr)
    return path
