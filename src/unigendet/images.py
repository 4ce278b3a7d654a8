"""Converting between image files / PIL images and tensors in [-1, 1]."""

from __future__ import annotations

import os

import numpy as np
import torch
from PIL import Image


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """RGB PIL image -> (3, H, W) float tensor in [-1, 1]."""
    arr = np.asarray(img.convert("RGB"), dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous()


def tensor_to_pil(x: torch.Tensor) -> Image.Image:
    """(3, H, W) tensor in [-1, 1] -> RGB PIL image (rounded, clamped)."""
    arr = ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(arr, "RGB")


def save_image(x: torch.Tensor, path: str | os.PathLike) -> None:
    os.makedirs(os.path.dirname(os.fspath(path)) or ".", exist_ok=True)
    tensor_to_pil(x).save(path)


def centre_box(w: int, h: int, side_w: int, side_h: int | None = None) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the central side_w x side_h box (side_h defaults to side_w)
    of a w x h image, as PIL's `crop` takes it. A side longer than the image is clamped to the
    image's, so the box never leaves it; an odd margin leaves its extra pixel on the right/bottom."""
    cw, ch = min(side_w, w), min(side_w if side_h is None else side_h, h)
    left, top = (w - cw) // 2, (h - ch) // 2
    return left, top, left + cw, top + ch


def centre_crop(img: Image.Image, side_w: int, side_h: int | None = None) -> Image.Image:
    """The `centre_box` of a PIL image (no resampling; smaller than asked when the image is)."""
    return img.crop(centre_box(*img.size, side_w, side_h))


def centre_crop_tensor(x: torch.Tensor, side_w: int, side_h: int | None = None) -> torch.Tensor:
    """The `centre_box` of a (..., H, W) tensor, as a view (the same pixels as `centre_crop`)."""
    left, top, right, bottom = centre_box(x.shape[-1], x.shape[-2], side_w, side_h)
    return x[..., top:bottom, left:right]


def centre_square(img: Image.Image) -> Image.Image:
    """The central square of the shorter side."""
    return centre_crop(img, min(img.size))


def resize_square(x: torch.Tensor, size: int) -> torch.Tensor:
    """(3, S, S) -> (3, size, size), bicubic with antialiasing, clamped to [-1, 1]."""
    if x.shape[-1] == size:
        return x
    y = torch.nn.functional.interpolate(x[None], size=(size, size), mode="bicubic", antialias=True,
                                        align_corners=False)
    return y[0].clamp(-1, 1)


def crop_square(x: torch.Tensor, size: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A size x size crop of native pixels: random with a generator, central without.
    An image with a side shorter than `size` gives its central square, upsampled
    (nothing else is resampled)."""
    if min(x.shape[-2:]) < size:  # the central square of the short side, upsampled to size
        x = centre_crop_tensor(x, min(x.shape[-2:]))
        x = torch.nn.functional.interpolate(x[None], size=(size, size), mode="bicubic",
                                            align_corners=False)[0].clamp(-1, 1)
    if generator is None:
        return centre_crop_tensor(x, size)
    H, W = x.shape[-2:]
    top = int(torch.randint(H - size + 1, (1,), generator=generator))
    left = int(torch.randint(W - size + 1, (1,), generator=generator))
    return x[:, top:top + size, left:left + size]


def detection_input(img: Image.Image, size: int, mode: str,
                    generator: torch.Generator | None = None) -> torch.Tensor:
    """The image under test as the model reads it, by `mode` (ModelConfig.detect_view): "resize", the
    central square resized to `size`, or "crop", a `size` crop of native pixels (random with a
    generator)."""
    if mode == "resize":
        return resize_square(pil_to_tensor(centre_square(img)), size)
    if mode == "crop":
        return crop_square(pil_to_tensor(img), size, generator)
    raise ValueError(f"unknown detection input mode {mode!r} (resize or crop)")


def high_pass(x: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) minus its 3x3 local mean (reflect-padded): a fixed high-pass that keeps
    the fine texture where generators leave traces and drops most of the content."""
    return x - torch.nn.functional.avg_pool2d(torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect"), 3, 1)


def npr_residual(x: torch.Tensor, factor: int = 2) -> torch.Tensor:
    """(B, C, H, W) -> same shape: x minus its nearest-neighbour down-up copy, the neighbouring-pixel
    relationships that upsampling leaves (edge blocks that do not fill a whole factor x factor
    block are zero)."""
    h, w = x.shape[-2] // factor * factor, x.shape[-1] // factor * factor
    core = x[..., :h, :w]
    up = core[..., ::factor, ::factor].repeat_interleave(factor, -2).repeat_interleave(factor, -1)
    return torch.nn.functional.pad(core - up, (0, x.shape[-1] - w, 0, x.shape[-2] - h))


def residual(x: torch.Tensor) -> torch.Tensor:
    """`high_pass` of one (C, H, W) image."""
    return high_pass(x[None])[0]
