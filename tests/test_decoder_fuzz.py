"""The decoder under generated hostile input (Hypothesis): whatever the bytes - mutations of valid
files of every format Pillow writes here, truncations, splices, random data - `open_image`
returns an 8-bit RGB image within the pixel budget or raises `ImageError`; nothing else escapes."""

import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from unigendet.data.imageio import ImageError, open_image

BUDGET = 1_000_000


def _encode(fmt: str, mode: str, seed: int, **kw) -> bytes:
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8), "RGB").convert(mode)
    buf = io.BytesIO()
    if kw.pop("frames", 0):
        more = [img.rotate(90 * k) for k in (1, 2)]
        img.save(buf, format=fmt, save_all=True, append_images=more, **kw)
    else:
        img.save(buf, format=fmt, **kw)
    return buf.getvalue()


SEEDS = [
    _encode("PNG", "RGB", 0), _encode("PNG", "RGBA", 1), _encode("PNG", "LA", 2), _encode("PNG", "I;16", 3),
    _encode("PNG", "P", 4, transparency=0), _encode("JPEG", "RGB", 5, quality=80), _encode("JPEG", "CMYK", 6),
    _encode("JPEG", "L", 7), _encode("WEBP", "RGB", 8), _encode("WEBP", "RGBA", 9, lossless=True),
    _encode("GIF", "P", 10, frames=1), _encode("TIFF", "RGB", 11, frames=1), _encode("TIFF", "F", 12),
    _encode("BMP", "RGB", 13), _encode("ICO", "RGBA", 14), _encode("PNG", "RGB", 15, frames=1),  # APNG
]


def check(data: bytes) -> None:
    try:
        img = open_image(data, max_pixels=BUDGET, name="fuzz")
    except ImageError:
        return
    assert img.mode == "RGB" and 0 < img.width * img.height <= BUDGET
    np.asarray(img)  # the pixels really decode


@pytest.mark.parametrize("i", range(len(SEEDS)))
def test_every_seed_format_decodes(i):
    img = open_image(SEEDS[i], max_pixels=BUDGET)
    assert img.mode == "RGB" and min(img.size) >= 16


mutation = st.tuples(st.integers(0, len(SEEDS) - 1),
                     st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=12),
                     st.one_of(st.none(), st.integers(0, 10_000)),
                     st.binary(max_size=64))


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(mutation)
def test_mutated_files_decode_or_fail_cleanly(m):
    """Byte flips anywhere (headers included), a cut at any length, junk appended."""
    seed, flips, cut, tail = m
    data = bytearray(SEEDS[seed])
    for pos, value in flips:
        data[pos % len(data)] = value
    if cut is not None:
        data = data[: cut % (len(data) + 1)]
    check(bytes(data) + tail)


@settings(max_examples=500, deadline=None, derandomize=True)
@given(st.binary(max_size=2048), st.sampled_from([b"", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF89a",
                                                  b"RIFF\x00\x00\x00\x00WEBP", b"II*\x00", b"BM"]))
def test_random_bytes_behind_any_magic_fail_cleanly(body, magic):
    check(magic + body)
