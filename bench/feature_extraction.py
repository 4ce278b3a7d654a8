"""EfficientNet-Lite0 feature extraction on CPU: fresh vs through the feature cache, side by side.

Writes N images (random crops of scikit-image sample photos, resized to 256 px) to a temporary
directory, then measures in one run, at batch 32 and 224 px:
- fresh: every image decoded, preprocessed and run through the backbone (shards written);
- cached: the same paths again on the same FeatureCache (content hashes + shard reads only);
- reopened: a new FeatureCache on the same root (index rebuilt from the sidecars first).

    python bench/feature_extraction.py [--images 64] [--batch-size 32] [--reps 3]

On the 2-vCPU development VM, libgomp's default active spin-wait makes 2-thread convolutions
several times slower than 1 thread; OMP_WAIT_POLICY=PASSIVE (set before Python starts) avoids it.
The value in effect is printed with the results.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage import data

from unigendet.backbones import FeatureCache, create_backbone

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket")


def write_crops(folder: Path, n: int, seed: int = 0) -> list[Path]:
    """n random square crops (at least 128 px) of the sample photos, resized to 256 px, as PNG."""
    rng = np.random.default_rng(seed)
    photos = [getattr(data, name)() for name in PHOTOS]
    paths = []
    for i in range(n):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        side = int(rng.integers(128, min(h, w) + 1))
        top, left = int(rng.integers(0, h - side + 1)), int(rng.integers(0, w - side + 1))
        crop = Image.fromarray(photo[top : top + side, left : left + side]).resize((256, 256), Image.Resampling.BICUBIC)
        paths.append(folder / f"{PHOTOS[i % len(PHOTOS)]}-{i:04d}.png")
        crop.save(paths[-1])
    return paths


def timed(fn) -> tuple[float, torch.Tensor]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--reps", type=int, default=3, help="repetitions of the cached passes (median)")
    args = ap.parse_args(argv)

    # Setup
    model, preprocess = create_backbone("efficientnet-lite0")
    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "images"
        images.mkdir()
        paths = write_crops(images, args.images)
        with torch.no_grad():  # warm-up: first-call allocations stay out of the timings
            model(torch.zeros(args.batch_size, 3, 224, 224))

        # Fresh, then cached on the same instance, then a reopened instance
        cache = FeatureCache(Path(tmp) / "cache", model, preprocess)
        t_fresh, fresh = timed(lambda: cache.features(paths, batch_size=args.batch_size))
        assert cache.stats() == {"hits": 0, "misses": len(paths)}
        cached_times, reopened_times = [], []
        for _ in range(args.reps):
            t, out = timed(lambda: cache.features(paths, batch_size=args.batch_size))
            assert torch.equal(out, fresh)
            cached_times.append(t)
            t, out = timed(lambda: FeatureCache(Path(tmp) / "cache", model, preprocess).features(paths))
            assert torch.equal(out, fresh)
            reopened_times.append(t)
        assert cache.stats() == {"hits": args.reps * len(paths), "misses": len(paths)}

    # Report
    n = len(paths)
    fresh_ips = n / t_fresh
    cached_ips = n / statistics.median(cached_times)
    reopened_ips = n / statistics.median(reopened_times)
    wait_policy = os.environ.get("OMP_WAIT_POLICY", "unset")
    print(f"efficientnet-lite0, {n} images of 256 px -> 224 px, batch {args.batch_size}, CPU")
    print(f"{torch.get_num_threads()} torch threads, OMP_WAIT_POLICY={wait_policy}")
    print(f"fresh extraction   {fresh_ips:10.1f} images/s")
    print(f"cached (same)      {cached_ips:10.1f} images/s   {cached_ips / fresh_ips:8.1f}x fresh")
    print(f"cached (reopened)  {reopened_ips:10.1f} images/s   {reopened_ips / fresh_ips:8.1f}x fresh")


if __name__ == "__main__":
    main()
