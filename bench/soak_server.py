"""Load on a served shipped detector: `--requests` uploads from `--clients` concurrent clients
(photos-like images of mixed sizes, built here and seeded). Reported: how many were answered and
with what status, latency p50/p99, throughput, and the server's RSS every 1,000 requests (with
the slope of a line fitted through the second half of the series: near 0 MB per 1,000 means flat).

    python bench/soak_server.py --requests 10000 --clients 16 --out runs/soak

Writes OUT/results.json.
"""

from __future__ import annotations

import argparse
import io
import json
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from fuzz_server import rss_mb, serving  # a sibling bench script


def uploads(n: int, seed: int = 0) -> list[bytes]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        h, w = int(rng.integers(96, 640)), int(rng.integers(96, 640))
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        buf = io.BytesIO()
        img.save(buf, "JPEG" if i % 2 else "PNG", **({"quality": 85} if i % 2 else {}))
        out.append(buf.getvalue())
    return out


def main(argv=None) -> None:
    import httpx

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=10000)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--out", default="runs/soak")
    args = ap.parse_args(argv)
    bodies = uploads(64)
    latencies: list[float] = []
    statuses: Counter = Counter()
    rss: list[tuple[int, float]] = []
    lock, counter = threading.Lock(), {"next": 0}

    def client() -> None:
        with httpx.Client(timeout=300) as c:
            while True:
                with lock:
                    i = counter["next"]
                    if i >= args.requests:
                        return
                    counter["next"] += 1
                    if i % 1000 == 0:
                        rss.append((i, round(rss_mb(server.pid), 1)))
                        print(f"{i} requests sent, server RSS {rss[-1][1]} MB", flush=True)
                t = time.perf_counter()
                try:
                    code = c.post(f"{url}/api/detect", files={"image": ("x", bodies[i % len(bodies)])},
                                  data={"heatmap": "false"}).status_code
                except httpx.TransportError as e:
                    code = type(e).__name__
                with lock:
                    latencies.append(time.perf_counter() - t)
                    statuses[str(code)] += 1

    with serving("--per-minute", "0", "--max-pending", str(args.clients)) as (url, server):
        httpx.post(f"{url}/api/detect", files={"image": ("x", bodies[0])}, timeout=300)  # warm-up: loads the model
        t0 = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - t0
        rss.append((args.requests, round(rss_mb(server.pid), 1)))
    half = rss[len(rss) // 2:]
    slope = float(np.polyfit([i / 1000 for i, _ in half], [m for _, m in half], 1)[0]) if len(half) > 1 else 0.0
    lat = np.array(latencies)
    results = {"requests": args.requests, "clients": args.clients, "statuses": dict(statuses),
               "seconds": round(seconds, 1), "requests_per_s": round(args.requests / seconds, 2),
               "latency_s": {"p50": round(float(np.percentile(lat, 50)), 3),
                             "p99": round(float(np.percentile(lat, 99)), 3)},
               "rss_mb": rss, "rss_slope_mb_per_1000": round(slope, 2)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
