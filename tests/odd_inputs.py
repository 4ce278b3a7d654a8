"""A corpus of malformed and unusual image files, built in the tests (no fixtures on disk).

`build_odd_inputs(dir)` writes each and returns {file name: expectation}: "ok" when the
file must decode to an RGB image, otherwise a fragment of the error it must produce.
"""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def _rgb(w=48, h=40, seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")


def _bytes(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


def _png_header_only(w: int, h: int) -> bytes:
    """A PNG whose IHDR claims w x h, with one tiny IDAT: the pixel count is refused before decoding."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16)) + \
        chunk(b"IEND", b"")


def build_odd_inputs(root: str | Path) -> dict[str, str]:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rgb = _rgb()
    jpeg, png = _bytes(rgb, "JPEG", quality=90), _bytes(rgb, "PNG")
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90
    pal = rgb.convert("P", palette=Image.Palette.ADAPTIVE, colors=16)
    pal.info["transparency"] = 0
    frames = [_rgb(32, 32, s) for s in range(3)]
    gif = io.BytesIO()
    frames[0].save(gif, format="GIF", save_all=True, append_images=frames[1:], duration=50, loop=0)
    cases: dict[str, tuple[bytes, str]] = {
        "truncated.jpg": (jpeg[: len(jpeg) // 2], "truncated"),
        "truncated.png": (png[: len(png) // 2], "truncated"),
        "empty.png": (b"", "empty file"),
        "empty.jpg": (b"", "empty file"),
        "text.jpg": (b"this is not an image, just text\n" * 20, "not a readable image"),
        "html.png": (b"<!doctype html><html><body>hello</body></html>", "not a readable image"),
        "random.png": (np.random.default_rng(1).integers(0, 256, 4096, dtype=np.uint8).tobytes(),
                       "not a readable image"),
        "huge-header.png": (_png_header_only(20000, 20000), "too large"),
        "truncated.gif": (gif.getvalue()[:40], "not a readable image"),
        "cmyk.jpg": (_bytes(rgb.convert("CMYK"), "JPEG"), "ok"),
        "cmyk.tif": (_bytes(rgb.convert("CMYK"), "TIFF"), "ok"),
        "16bit.png": (_bytes(Image.fromarray(np.linspace(0, 65535, 48 * 40).reshape(40, 48).astype(np.uint16)),
                             "PNG"), "ok"),
        "palette-transparent.png": (_bytes(pal, "PNG"), "ok"),
        "animated.gif": (gif.getvalue(), "ok"),
        "exif-rotated.jpg": (_bytes(rgb, "JPEG", exif=exif), "ok"),
        "one-pixel.png": (_bytes(_rgb(1, 1), "PNG"), "ok"),
        "wide-4000x2.png": (_bytes(_rgb(4000, 2), "PNG"), "ok"),
        "tall-2x3000.png": (_bytes(_rgb(2, 3000), "PNG"), "ok"),
        "gray.png": (_bytes(rgb.convert("L"), "PNG"), "ok"),
        "gray-alpha.png": (_bytes(rgb.convert("LA"), "PNG"), "ok"),
        "rgba.png": (_bytes(rgb.convert("RGBA"), "PNG"), "ok"),
        "bilevel.png": (_bytes(rgb.convert("1"), "PNG"), "ok"),
        "image.bmp": (_bytes(rgb, "BMP"), "ok"),
        "image.webp": (_bytes(rgb, "WEBP"), "ok"),
        "image.tif": (_bytes(rgb, "TIFF"), "ok"),
        "image.ppm": (_bytes(rgb, "PPM"), "ok"),
        "float.tif": (_bytes(Image.fromarray(np.random.default_rng(2).random((40, 48), dtype=np.float32)), "TIFF"),
                      "ok"),
        "png-named.jpg": (png, "ok"),
        "jpeg-named.png": (jpeg, "ok"),
        "progressive.jpg": (_bytes(rgb, "JPEG", progressive=True), "ok"),
        "trailing-garbage.png": (png + b"garbage" * 100, "ok"),
        "no-extension": (png, "ok"),
    }
    for name, (data, _) in cases.items():
        (root / name).write_bytes(data)
    return {name: expect for name, (_, expect) in cases.items()}
