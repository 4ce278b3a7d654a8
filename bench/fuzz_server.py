"""Hostile uploads against a running `unigendet serve` (the shipped detector): every answer must be
200 or 4xx (413/422/429/503 included), never a 5xx, never a hang past the client timeout, and
the server's memory must stay bounded.

Inputs (seeded, at least `--n`): mutations (byte flips, cuts, junk) of valid PNG, APNG, JPEG, WebP,
animated GIF, multi-page TIFF, BMP and ICO files; decompression bombs in each format (a tiny file
declaring a huge size, and a real 12000 x 12000 PNG of zeros); odd modes (CMYK, I;16, P with
transparency, LA, F) and EXIF orientation; wrong content types; multipart abuse (many parts,
huge header, no boundary, no file field, an empty body).

    python bench/fuzz_server.py --n 2000 --out runs/fuzz

Writes OUT/results.json: counts by status, hangs, RSS samples (MB) every 200 requests.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import random
import socket
import struct
import subprocess
import sys
import time
import zlib
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image


def encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def valid_files(rng: np.random.Generator) -> list[tuple[str, bytes]]:
    base = Image.fromarray(rng.integers(0, 256, (96, 128, 3), dtype=np.uint8), "RGB")
    frames = [base.rotate(90 * k) for k in (1, 2)]
    exif = Image.Exif()
    exif[0x0112] = 6
    pal = base.convert("P", palette=Image.Palette.ADAPTIVE, colors=32)
    return [
        ("png", encode(base, "PNG")), ("apng", encode(base, "PNG", save_all=True, append_images=frames)),
        ("jpeg", encode(base, "JPEG", quality=85)), ("jpeg-exif", encode(base, "JPEG", exif=exif)),
        ("webp", encode(base, "WEBP")), ("gif", encode(base.convert("P"), "GIF", save_all=True,
                                                       append_images=[f.convert("P") for f in frames])),
        ("tiff", encode(base, "TIFF", save_all=True, append_images=frames)), ("bmp", encode(base, "BMP")),
        ("ico", encode(base.convert("RGBA"), "ICO")), ("cmyk", encode(base.convert("CMYK"), "JPEG")),
        ("i16", encode(base.convert("I;16"), "PNG")), ("p-alpha", encode(pal, "PNG", transparency=0)),
        ("la", encode(base.convert("LA"), "PNG")), ("float-tiff", encode(base.convert("F"), "TIFF")),
    ]


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bombs() -> list[tuple[str, bytes]]:
    """Small files that declare (or really hold) far more pixels than the server accepts."""
    big = 60000
    png = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", big, big, 8, 2, 0, 0, 0)) + \
        _chunk(b"IDAT", zlib.compress(b"\0" * 64)) + _chunk(b"IEND", b"")
    gif = bytearray(encode(Image.new("P", (8, 8)), "GIF"))
    gif[6:10] = struct.pack("<HH", 65535, 65535)
    bmp = bytearray(encode(Image.new("RGB", (8, 8)), "BMP"))
    bmp[18:26] = struct.pack("<ii", 50000, 50000)
    jpeg = bytearray(encode(Image.new("RGB", (8, 8)), "JPEG"))
    sof = jpeg.find(b"\xff\xc0")
    jpeg[sof + 5:sof + 9] = struct.pack(">HH", 65000, 65000)
    tiff = bytearray(encode(Image.new("L", (8, 8)), "TIFF"))
    for tag in (256, 257):  # ImageWidth, ImageLength: whichever integer type was written, as LONG 200000
        at = next(i for t in (3, 4) if (i := tiff.find(struct.pack("<HHI", tag, t, 1))) >= 0)
        tiff[at:at + 12] = struct.pack("<HHII", tag, 4, 1, 200000)
    webp = bytearray(encode(Image.new("RGB", (8, 8)), "WEBP", lossless=True))
    real = encode(Image.new("L", (12000, 12000)), "PNG", optimize=True)  # 144 MP of zeros, a few hundred KB
    return [("bomb-png", png), ("bomb-gif", bytes(gif)), ("bomb-bmp", bytes(bmp)), ("bomb-jpeg", bytes(jpeg)),
            ("bomb-tiff", bytes(tiff)), ("bomb-webp", bytes(webp[:30]) + b"\xff" * 64), ("bomb-real-png", real)]


def mutate(data: bytes, rng: random.Random) -> bytes:
    d = bytearray(data)
    for _ in range(rng.randint(1, 16)):
        d[rng.randrange(len(d))] = rng.randrange(256)
    if rng.random() < 0.4:
        d = d[: rng.randrange(len(d) + 1)]
    if rng.random() < 0.2:
        d += bytes(rng.randrange(256) for _ in range(rng.randint(1, 256)))
    return bytes(d)


def cases(n: int, seed: int = 0):
    """(name, kind, request kwargs for httpx.post) x n."""
    rng, nprng = random.Random(seed), np.random.default_rng(seed)
    valid, bomb = valid_files(nprng), bombs()
    fixed = [(name, "valid", {"files": {"image": (f"x.{name}", data)}}) for name, data in valid]
    fixed += [(name, "bomb", {"files": {"image": (f"x.{name}", data)}}) for name, data in bomb]
    fixed += [
        ("wrong-type", "type", {"files": {"image": ("x.png", valid[0][1], "text/html")}}),
        ("no-file-field", "multipart", {"files": {"other": ("x.png", valid[0][1])}}),
        ("many-parts", "multipart", {"files": [("image", (f"{i}.png", b"x")) for i in range(500)]}),
        ("huge-header", "multipart", {"files": {"image": ("x" * 60000 + ".png", valid[0][1])}}),
        ("no-boundary", "multipart", {"content": b"--zz\r\n\r\nabc",
                                      "headers": {"content-type": "multipart/form-data"}}),
        ("empty-body", "multipart", {"content": b"",
                                     "headers": {"content-type": "multipart/form-data; boundary=x"}}),
        ("json-body", "type", {"json": {"image": "not a file"}}),
    ]
    out = list(fixed)
    while len(out) < n:
        name, data = rng.choice(valid + bomb)
        out.append((f"mutated-{name}", "mutated", {"files": {"image": (f"x.{name}", mutate(data, rng))}}))
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serving(*options: str, wait_s: float = 120.0):
    """A `unigendet serve` process (the shipped detector) on a free loopback port: yields (url,
    process) once it answers /healthz; stopped on exit."""
    import httpx

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "unigendet.cli", "serve", "--port", str(port), *options],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + wait_s
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                if server.poll() is not None or time.time() > deadline:
                    raise SystemExit("the server did not come up") from None
                time.sleep(0.2)
        yield url, server
    finally:
        server.terminate()
        server.wait(30)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main(argv=None) -> None:
    import httpx

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--timeout", type=float, default=60.0, help="client timeout: a request past it is a hang")
    ap.add_argument("--out", default="runs/fuzz")
    args = ap.parse_args(argv)
    with serving("--per-minute", "0", "--max-pixels", "40000000") as (url, server):
        statuses, by_kind, hangs, rss, five = Counter(), Counter(), 0, [], []
        t0 = time.time()
        with httpx.Client(timeout=args.timeout) as client:
            for i, (name, kind, kw) in enumerate(cases(args.n)):
                try:
                    code = client.post(f"{url}/api/detect", **kw).status_code
                except httpx.TimeoutException:
                    code, hangs = "hang", hangs + 1
                except httpx.TransportError as e:  # the server dropped the connection: counted, never hidden
                    code = f"dropped ({type(e).__name__})"
                statuses[str(code)] += 1
                by_kind[f"{kind} {code}"] += 1
                if isinstance(code, int) and code >= 500:
                    five.append(name)
                if i % 200 == 0:
                    rss.append(round(rss_mb(server.pid), 1))
        rss.append(round(rss_mb(server.pid), 1))
        alive = server.poll() is None
    results = {"requests": sum(statuses.values()), "seconds": round(time.time() - t0, 1), "statuses": dict(statuses),
               "by_kind": dict(sorted(by_kind.items())), "5xx": five, "hangs": hangs, "rss_mb": rss,
               "server_alive_at_end": alive}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2))
    print(json.dumps({k: v for k, v in results.items() if k != "by_kind"}, indent=2))
    if five or hangs or not alive:
        raise SystemExit("the server failed the fuzz run (5xx, hangs or a crash); see results.json")


if __name__ == "__main__":
    main()
