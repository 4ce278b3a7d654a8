"""Load check of `unigendet serve`: N concurrent detection requests on loopback.

Starts the server as a separate process (a tiny random UniGenDet checkpoint unless
--checkpoint names a run), waits for /healthz, fires N requests at once from N threads,
and prints how many were answered, p50 / p99 latency and throughput - once with every
request scored alone (--max-batch 1) and once with concurrent requests coalesced
(--max-batch 16), side by side.

    python bench/load_check.py [--checkpoint runs/gduf] [--n 100] [--heatmap]
"""

from __future__ import annotations

import argparse
import io
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_checkpoint(root: Path) -> str:
    import torch

    from unigendet.unified.checkpoint import save_checkpoint
    from unigendet.unified.pipeline import codec_for
    from unigendet.unified.presets import create_model, get_config

    torch.manual_seed(0)
    cfg = get_config("tiny")
    save_checkpoint(root / "ckpt", create_model(cfg), cfg, files={"codec": codec_for(cfg)})
    return str(root / "ckpt")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint")
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--heatmap", action="store_true", help="also compute the 4x4 tile scores per request")
    args = ap.parse_args(argv)
    print(f"# {' '.join(sys.argv)}")
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = args.checkpoint or tiny_checkpoint(Path(tmp))
        for max_batch in (1, 16):
            print(f"max-batch {max_batch:>2}: {run(ckpt, args, max_batch)}", flush=True)


def run(ckpt: str, args, max_batch: int) -> str:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "unigendet.cli", "serve", "--checkpoint", ckpt, "--port",
                             str(port), "--max-batch", str(max_batch)], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        rng = np.random.default_rng(0)
        bodies = []
        for _ in range(args.n):
            buf = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, (128, 128, 3), dtype=np.uint8)).save(buf, "PNG")
            bodies.append(buf.getvalue())

        def one(body: bytes) -> tuple[int, float]:
            t0 = time.perf_counter()
            r = httpx.post(f"{url}/api/detect", files={"image": ("x.png", body, "image/png")},
                           data={"heatmap": str(args.heatmap).lower()}, timeout=600)
            return r.status_code, time.perf_counter() - t0

        t0 = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.n) as pool:
            results = list(pool.map(one, bodies))
        wall = time.perf_counter() - t0
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    ok = [lat for status, lat in results if status == 200]
    lat = sorted(ok)
    p99 = lat[min(len(lat) - 1, int(round(0.99 * (len(lat) - 1))))] if lat else float("nan")
    others = sorted({s for s, _ in results if s != 200})
    return (f"{len(ok)}/{args.n} answered 200 (others: {others}); latency p50 {1000 * statistics.median(lat):.0f} ms, "
            f"p99 {1000 * p99:.0f} ms; throughput {len(ok) / wall:.1f} req/s over {wall:.1f} s")


if __name__ == "__main__":
    main()
