"""Reading image files safely: clear per-file errors, deterministic conversion to RGB.

Shared by the readers, the CLI and the server. Pillow's decompression-bomb guard
is kept on and a pixel budget is enforced before decoding; EXIF orientation is
applied; palette, 16-bit, CMYK, alpha and animated images become 8-bit RGB the
same way every time (alpha is composited on white, animations give frame 0).
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .records import DataError

DEFAULT_MAX_PIXELS = 64_000_000  # 8000 x 8000
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp", ".gif", ".tif", ".tiff", ".ppm", ".jfif"}


class ImageError(DataError):
    """An input that is not a readable image, with the reason; `too_large` when it was refused for
    its size (a caller may answer that differently, e.g. HTTP 413)."""

    def __init__(self, where: object, reason: str | None = None, too_large: bool = False):
        super().__init__(where, reason)
        self.too_large = too_large


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def open_image(source: str | os.PathLike | bytes, max_pixels: int = DEFAULT_MAX_PIXELS, name: str = "") -> Image.Image:
    """Open a path or bytes and return an 8-bit RGB image, or raise ImageError."""
    name = name or (str(source) if not isinstance(source, bytes) else "<upload>")
    try:
        if isinstance(source, bytes):
            if not source:
                raise ImageError(name, "empty file")
            fp = io.BytesIO(source)
        else:
            p = Path(source)
            if not p.is_file():
                raise ImageError(name, "no such file")
            if p.stat().st_size == 0:
                raise ImageError(name, "empty file")
            fp = p.open("rb")
        with fp, warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(fp)
            w, h = img.size
            if w * h > max_pixels:
                raise ImageError(name, f"{w}x{h} is too large (limit {max_pixels:,} pixels)",
                                 too_large=True)
            if w < 1 or h < 1:
                raise ImageError(name, "image has no pixels")
            img.seek(0)
            img.load()
            return to_rgb(img)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise ImageError(name, f"too large, refused by the decompression-bomb guard ({e})",
                         too_large=True) from None
    except UnidentifiedImageError:
        raise ImageError(name, "not a readable image (unknown format)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as e:
        raise ImageError(name, f"corrupt or truncated image ({e})") from None


def read_any(path: str, max_pixels: int = DEFAULT_MAX_PIXELS,
             root: str | os.PathLike = "") -> tuple[Image.Image | None, str | None]:
    """(image, None) or (None, why not), never raising for a bad file: a local path (a relative one
    from `root`) or a URI that pyarrow opens (s3://, gs://, hdfs://, file://)."""
    try:
        if "://" in path:
            from pyarrow import fs

            filesystem, inner = fs.FileSystem.from_uri(path)
            with filesystem.open_input_file(inner) as f:
                return open_image(f.read(), max_pixels=max_pixels, name=path), None
        return open_image(os.path.join(root, path), max_pixels=max_pixels, name=path), None
    except ImageError as e:
        return None, e.reason
    except (OSError, ValueError) as e:  # from pyarrow: no such object, no access, unknown scheme
        return None, f"unreadable ({e})"


def to_rgb(img: Image.Image) -> Image.Image:
    """Deterministic conversion of any Pillow mode to 8-bit RGB, EXIF orientation applied."""
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or arr.max() > 255 else 255.0
        img = Image.fromarray(np.clip(arr / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    if img.mode == "P":
        img = img.convert("RGBA")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "RGB" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return img.convert("RGB")
