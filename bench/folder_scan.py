"""End-to-end folder scans: `unigendet detect FOLDER` with decoding in threads ahead of the model,
beside decoding in line, on one folder in one run.

The folder is made from the built-in photos (those Debian and PyPI packages install): N JPEG
files of mixed sizes (random crops, 0.3-1.0x scale, quality 75-95), seeded. Reported: images/s
end to end (decode, crop, score, write JSON lines) for each decoding setting.

    python bench/folder_scan.py --n 1000 --out runs/folder-scan
"""

from __future__ import annotations

import argparse
import io
import json
import random
import time
from pathlib import Path

from PIL import Image

from unigendet.apps.detect import expand, run_detect
from unigendet.apps.predictor import Predictor
from unigendet.apps.rows import write_rows
from unigendet.corpus.sources import discover_photos
from unigendet.data.imageio import open_image
from unigendet.shipped import default_detector


def make_folder(out: Path, n: int, seed: int = 0) -> Path:
    """N JPEGs of mixed sizes from the built-in photos (kept when already made)."""
    folder = out / f"photos-{n}-{seed}"
    if folder.is_dir() and len(list(folder.glob("*.jpg"))) == n:
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    photos = [p.path for p in discover_photos()]
    if not photos:
        raise SystemExit("no built-in photos installed (see `make system`)")
    rng = random.Random(seed)
    for i in range(n):
        img = open_image(photos[i % len(photos)])
        s = rng.uniform(0.3, 1.0)
        img = img.resize((max(64, round(img.width * s)), max(64, round(img.height * s))), Image.Resampling.BICUBIC)
        w, h = rng.randint(min(256, img.width), img.width), rng.randint(min(256, img.height), img.height)
        x, y = rng.randint(0, img.width - w), rng.randint(0, img.height - h)
        buf = io.BytesIO()
        img.crop((x, y, x + w, y + h)).save(buf, "JPEG", quality=rng.randint(75, 95))
        (folder / f"{i:05d}.jpg").write_bytes(buf.getvalue())
    return folder


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1000)
    ap.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--out", default="runs/folder-scan")
    args = ap.parse_args(argv)
    out = Path(args.out)
    folder = make_folder(out, args.n)
    predictor = Predictor(default_detector(), explainer=None)
    items = list(expand([str(folder)]))
    list(run_detect(predictor, items[: args.batch], batch=args.batch, progress=False))  # warm-up: load the networks
    results = {}
    for workers in args.workers:
        sink = io.StringIO()
        t0 = time.perf_counter()
        write_rows(run_detect(predictor, items, batch=args.batch, progress=False, workers=workers), "jsonl", sink)
        seconds = time.perf_counter() - t0
        results[f"workers={workers}"] = {"images": len(items), "seconds": round(seconds, 2),
                                         "images_per_s": round(len(items) / seconds, 2)}
        print(f"decode workers {workers}: {len(items) / seconds:.2f} images/s ({seconds:.1f} s)", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps({"folder": str(folder), "batch": args.batch, **results}, indent=2))


if __name__ == "__main__":
    main()
