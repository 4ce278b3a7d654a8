"""`unigendet scan`: `unigendet detect` across a Ray cluster, for millions of images.

Image paths (files and folders named on the command line, or a manifest read by Ray) are split
into blocks and scored by a pool of Ray actors, each holding one loaded detector (a `Predictor`);
an actor decodes its own images, so the machine running the command only lists paths. The verdicts
are the ones `unigendet detect` gives. Rows (path, label, p_fake, spread, uncertain, error) are written as
JSON-lines or Parquet shards into one directory; an unreadable file is an error row, never a failed
scan.

Ray is an optional extra (`pip install 'unigendet[ray]'`), imported only when a scan runs.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from ..data.imageio import DEFAULT_MAX_PIXELS, read_any
from ..rundir import read_run_config
from ..shipped import DETECTOR_ENV, default_checkpoint
from ..weights import resolve_checkpoint
from . import triage
from .detect import expand
from .predictor import Predictor, Verdict

INSTALL = "pip install 'unigendet[ray]'"


@dataclass(frozen=True)
class ScanConfig:
    """`unigendet scan`: verdicts for many images on a Ray cluster, written as shards."""

    out: str  # output directory (new or empty) for the JSON-lines or Parquet shards
    paths: tuple[str, ...] = ()  # image files or folders (searched recursively)
    manifest: str | None = field(default=None, metadata={"help": (
        "a file listing the images: text (one path a line), or .csv, .jsonl or .parquet with a 'path' column; "
        "relative paths are read from the current directory")})
    format: str = field(default="jsonl", metadata={"choices": ("jsonl", "parquet")})
    checkpoint: str | None = field(default=None, metadata={"help": (
        f"a detector run or checkpoint directory (any kind; default: ${DETECTOR_ENV}, else the in-the-wild "
        "detector shipped in the package)")})
    threshold: float | None = None  # p_fake above this is called fake (default: the detector's calibrated one)
    address: str | None = field(default=None, metadata={"help": (
        "a running Ray cluster: 'auto' (from one of its nodes) or 'ray://HOST:10001'; default: a local Ray instance")})
    num_cpus: int | None = None  # CPUs of the local Ray instance (default: all); not with --address
    actors: int | None = None  # detector actors (default: as many as the cluster's CPUs hold at --actor-cpus each)
    actor_cpus: float = 1.0  # CPUs each actor reserves (Ray's num_cpus); its detector runs that many threads
    batch: int = 16  # images per batch handed to an actor
    shard: int = 1000  # images per block at most: the unit of work handed to one actor
    max_pixels: int = DEFAULT_MAX_PIXELS  # larger images are refused, unread
    quiet: bool = False  # no progress bars or Ray log lines
    report: str | None = field(default=None, metadata={"help": (
        "then write a triage page here from the shards (HTML, pictures beside it, made on this machine: it must "
        "read the images)")})
    previews: str = field(default="suspicious", metadata={"choices": triage.PREVIEWS, "help": triage.PREVIEWS_HELP})


class RayNotInstalled(ValueError):
    """Ray is missing: an installation error, answered in one line like a wrong option."""


@dataclass
class Summary:
    images: int = 0
    fake: int = 0
    real: int = 0
    uncertain: int = 0
    errors: int = 0
    seconds: float = 0.0
    checkpoint: str = ""  # the detector the actors loaded, as named to them

    def line(self) -> str:
        rate = self.images / self.seconds if self.seconds > 0 else 0.0
        return (f"scan: {self.images} images: {self.fake} fake, {self.real} real, {self.uncertain} uncertain, "
                f"{self.errors} errors in {self.seconds:.1f} s ({rate:.1f} images/s)")


def scan_paths(cfg: ScanConfig) -> int:
    """Run the scan and print its summary (with `report`, then write the triage page); the exit code
    is 1 only when no image could be read."""
    started = triage.now()
    summary = run_scan(cfg)
    print(f"{summary.line()}; shards in {cfg.out}", flush=True)
    if cfg.report and summary.images:
        # the threshold the actors judged at: the one given, else the one the detector run was saved with
        threshold = cfg.threshold if cfg.threshold is not None else \
            read_run_config(resolve_checkpoint(summary.checkpoint)).get("threshold", 0.5)
        about = triage.About(title=f"unigendet scan: {cfg.out}", detector=summary.checkpoint, threshold=threshold,
                             started=started, seconds=summary.seconds, source=f"unigendet scan --out {cfg.out}")
        path = triage.build_report(cfg.report, triage.read_results(cfg.out), about, cfg.previews,
                                   max_pixels=cfg.max_pixels, progress=not cfg.quiet)
        print(f"scan: report in {path}", flush=True)
    return 0 if summary.images > summary.errors else 1


def import_ray():
    try:
        import ray
        import ray.data  # noqa: F401  (the extra's part: pandas, pyarrow)
    except ImportError:
        raise RayNotInstalled(f"Ray is not installed: {INSTALL}") from None
    return ray


def run_scan(cfg: ScanConfig) -> Summary:
    """Score every image of `cfg` on Ray (the running instance; else `cfg.address`, else a new local
    one, shut down afterwards) and write the shards into `cfg.out`."""
    ray = import_ray()
    if not cfg.paths and not cfg.manifest:
        raise ValueError("name image files or folders, or --manifest FILE")
    if min(cfg.batch, cfg.shard, cfg.actors or 1) < 1 or cfg.actor_cpus <= 0:
        raise ValueError("--batch, --shard, --actors and --actor-cpus must be positive")
    if cfg.address and cfg.num_cpus:
        raise ValueError("--num-cpus sizes a local Ray instance; a cluster's CPUs are its own (drop it or --address)")
    checkpoint = cfg.checkpoint or default_checkpoint()  # "shipped": each node's own copy
    resolve_checkpoint(checkpoint)  # a wrong one fails here, in one line, rather than in every actor
    out = Path(cfg.out)
    if "://" not in cfg.out and out.is_dir() and any(out.iterdir()):
        raise ValueError(f"{cfg.out} is not empty: shards of another scan would mix with this one's")
    if cfg.manifest and "://" not in cfg.manifest and not Path(cfg.manifest).is_file():
        raise FileNotFoundError(f"{cfg.manifest}: no such manifest")

    started = not ray.is_initialized()
    if started:
        ray.init(**({"address": cfg.address} if cfg.address else {"num_cpus": cfg.num_cpus,
                                                                   "include_dashboard": False}),
                 logging_level=logging.WARNING if cfg.quiet else logging.INFO)
    if cfg.quiet:
        logging.getLogger("ray.data").setLevel(logging.ERROR)
        ray.data.DataContext.get_current().enable_progress_bars = False
    try:
        return _scan(ray, cfg, checkpoint)
    finally:
        if started:
            ray.shutdown()


def _scan(ray, cfg: ScanConfig, checkpoint: str) -> Summary:
    t0 = time.perf_counter()
    ds = paths_dataset(ray, cfg)
    if ds is not None:
        ds = ds.materialize()  # a manifest is read once
    n = 0 if ds is None else ds.count()
    if n == 0:
        return Summary(seconds=time.perf_counter() - t0, checkpoint=checkpoint)
    actors = cfg.actors or max(1, int(ray.cluster_resources().get("CPU", 1) // cfg.actor_cpus))
    # every actor gets work, and no block (the work handed to an actor at once) holds more than `shard`
    # paths; the blocks are made before the actors start, whose CPUs would otherwise starve the tasks
    # that make them
    ds = ds.repartition(min(n, max(actors, math.ceil(n / cfg.shard)))).materialize()
    scored = ds.map_batches(
        Scorer, fn_constructor_kwargs={"checkpoint": checkpoint, "threshold": cfg.threshold, "batch": cfg.batch,
                                       "max_pixels": cfg.max_pixels, "root": os.getcwd()},
        batch_size=cfg.batch, batch_format="pyarrow", compute=ray.data.ActorPoolStrategy(size=actors),
        num_cpus=cfg.actor_cpus,
    ).materialize()  # kept (a few hundred bytes an image) to write, then count, without scoring twice
    if cfg.format == "parquet":
        scored.write_parquet(cfg.out)
    else:
        scored.write_json(cfg.out, double_precision=15)  # pandas' default keeps 10 decimals of p_fake
    labels = Counter()
    for batch in scored.select_columns(["label"]).iter_batches(batch_format="pyarrow", batch_size=None):
        labels.update(batch.column("label").to_pylist())
    return Summary(images=n, fake=labels["fake"], real=labels["real"], uncertain=labels["uncertain"],
                   checkpoint=checkpoint,
                   errors=labels[None], seconds=time.perf_counter() - t0)


def paths_dataset(ray, cfg: ScanConfig):
    """A dataset with one `path` column: the files of `cfg.paths` (listed here, as `detect` lists them)
    and the manifest's paths (read by Ray); None when there is none."""
    parts = []
    if cfg.paths:
        listed = [{"path": p} for p, _ in expand(list(cfg.paths))]  # a missing one stays: it gets its error row
        if listed:
            parts.append(ray.data.from_items(listed))
    if cfg.manifest:
        parts.append(read_manifest(ray, cfg.manifest))
    if not parts:
        return None
    return parts[0] if len(parts) == 1 else parts[0].union(*parts[1:])


def read_manifest(ray, manifest: str):
    """The manifest's paths as a dataset with one `path` column; the format by suffix (else text)."""
    suffix = PurePosixPath(manifest).suffix.lower()
    if suffix == ".parquet":
        ds = ray.data.read_parquet(manifest)
    elif suffix == ".csv":
        ds = ray.data.read_csv(manifest)
    elif suffix in (".jsonl", ".ndjson", ".json"):
        ds = ray.data.read_json(manifest)
    else:
        return ray.data.read_text(manifest).map_batches(_text_paths, batch_format="pyarrow")
    if "path" not in ds.schema().names:
        raise ValueError(f"{manifest}: no 'path' column")
    return ds.select_columns(["path"])


def _text_paths(batch):
    import pyarrow as pa
    import pyarrow.compute as pc

    return pa.table({"path": pc.utf8_trim_whitespace(batch.column("text"))})


def row_schema():
    """The rows' columns: an error row has null label, p_fake, spread and uncertain; a scored one a null
    error (and a null `uncertain` unless its label is "uncertain": then it says why)."""
    import pyarrow as pa

    return pa.schema([("path", pa.string()), ("label", pa.string()), ("p_fake", pa.float64()),
                      ("spread", pa.float64()), ("uncertain", pa.string()), ("error", pa.string())])


class Scorer:
    """What each actor runs: the detector is loaded once, in `__init__`; a call decodes and scores one
    batch (a table with a `path` column) and returns its rows."""

    def __init__(self, checkpoint: str, threshold: float | None, batch: int, max_pixels: int, root: str):
        self.predictor = Predictor(checkpoint, threshold=threshold, max_batch=batch, explainer=None)
        self.max_pixels, self.root = max_pixels, root

    def __call__(self, batch):
        import pyarrow as pa

        paths = ["" if p is None else str(p) for p in batch.column("path").to_pylist()]
        read = [read_any(p, self.max_pixels, self.root) for p in paths]
        images = [im for im, _ in read if im is not None]
        found = iter(self.score(images) if images else [])
        cols: dict[str, list] = {name: [] for name in row_schema().names}
        for path, (image, error) in zip(paths, read, strict=True):
            v = next(found) if image is not None else None
            if isinstance(v, str):
                v, error = None, v
            cols["path"].append(path)
            cols["label"].append(v.label if v else None)
            cols["p_fake"].append(float(v.p_fake) if v else None)
            cols["spread"].append(float(v.spread) if v and v.spread is not None else None)
            cols["uncertain"].append(v.uncertain if v else None)
            cols["error"].append(error)
        return pa.table(cols, schema=row_schema())

    def score(self, images: list) -> list[Verdict | str]:
        """Verdicts; an image the detector fails on gets the reason instead of failing its batch."""
        try:
            return self.predictor.detect(images)
        except Exception as e:
            if len(images) == 1:
                return [f"detector failed ({type(e).__name__}: {e})"]
            return [v for image in images for v in self.score([image])]
