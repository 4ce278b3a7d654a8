"""Robust image loading and the GenImage degradations."""

import io
import random

import numpy as np
import pytest
from PIL import Image

from unigendet.corpus.texts import hf_energy
from unigendet.data.degrade import GENIMAGE_DEGRADATIONS, RandomBlurJPEG, get_degradation
from unigendet.data.imageio import ImageError, open_image


def photo(size=(96, 64), seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    base = np.linspace(0, 255, size[0])[None, :, None] * np.ones((size[1], 1, 3))
    return Image.fromarray(np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8))


def saved(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kw)
    return buf.getvalue()


@pytest.mark.parametrize("name,data,match", [
    ("zero bytes", b"", "empty"),
    ("text as jpg", b"hello, I am not an image", "not a readable image"),
    ("truncated png", saved(photo(), "PNG")[:200], "corrupt or truncated"),
    ("truncated jpeg", saved(photo(), "JPEG")[:300], "corrupt or truncated"),
])
def test_unreadable_inputs_raise_clear_errors(name, data, match):
    with pytest.raises(ImageError, match=match):
        open_image(data, name=name)


def test_pixel_budget_is_checked_before_decoding():
    bomb = saved(Image.new("L", (20000, 20000)), "PNG")  # a few hundred KB claiming 400 Mpx
    with pytest.raises(ImageError, match="too large"):
        open_image(bomb)
    with pytest.raises(ImageError, match=r"3000x2000 is too large \(limit 1,000,000 pixels\)"):
        open_image(saved(Image.new("RGB", (3000, 2000)), "PNG"), max_pixels=1_000_000)


@pytest.mark.parametrize("mode", ["CMYK", "P", "RGBA", "LA", "L", "I;16", "1"])
def test_odd_modes_become_rgb(mode):
    src = photo().convert(mode) if mode != "I;16" else Image.fromarray(
        (np.arange(64 * 96).reshape(64, 96) * 10).astype(np.uint16))
    img = open_image(saved(src, "TIFF" if mode in ("CMYK", "I;16") else "PNG"))
    assert img.mode == "RGB" and img.size == (96, 64)


def test_alpha_composited_on_white_and_exif_rotation():
    rgba = Image.new("RGBA", (4, 4), (0, 0, 0, 0))
    assert open_image(saved(rgba, "PNG")).getpixel((0, 0)) == (255, 255, 255)
    img = photo((40, 20))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    assert open_image(saved(img, "JPEG", exif=exif)).size == (20, 40)


def test_animated_gif_gives_first_frame():
    frames = [Image.new("RGB", (8, 8), c) for c in ((255, 0, 0), (0, 255, 0))]
    buf = io.BytesIO()
    frames[0].save(buf, format="GIF", save_all=True, append_images=frames[1:])
    assert open_image(buf.getvalue()).getpixel((0, 0)) == (255, 0, 0)


def test_missing_path(tmp_path):
    with pytest.raises(ImageError, match="no such file"):
        open_image(tmp_path / "nope.png")


def test_degradations_of_the_protocol():
    img = photo((256, 200))
    assert get_degradation("down112")(img).size == (143, 112)
    assert get_degradation("down64")(img).size == (82, 64)
    assert get_degradation("down112")(photo((80, 60))).size == (80, 60)  # never upscales
    err = {q: np.abs(np.asarray(get_degradation(f"jpeg{q}")(img), float) - np.asarray(img, float)).mean()
           for q in (65, 30)}
    assert 0 < err[65] < err[30]
    assert hf_energy(get_degradation("blur5")(img)) < hf_energy(get_degradation("blur3")(img)) < hf_energy(img)
    both = get_degradation("jpeg65+blur3")(img)
    assert both.size == img.size and both.mode == "RGB"
    assert get_degradation("none")(img) is img
    assert len(GENIMAGE_DEGRADATIONS) == 6 and all(get_degradation(d) for d in GENIMAGE_DEGRADATIONS)
    with pytest.raises(ValueError, match="unknown degradation"):
        get_degradation("sharpen2")


def test_random_blur_jpeg_is_seeded():
    img = photo()
    a = RandomBlurJPEG(p_blur=1, p_jpeg=1, rng=random.Random(3))(img)
    b = RandomBlurJPEG(p_blur=1, p_jpeg=1, rng=random.Random(3))(img)
    assert np.array_equal(np.asarray(a), np.asarray(b)) and not np.array_equal(np.asarray(a), np.asarray(img))


def test_circulation_downscales_and_recompresses_reproducibly():
    """`circulate`: a random downscale and JPEG quality drawn from the image's own pixels, so the same
    image always circulates the same way and reals and fakes meet the same distribution."""
    import numpy as np
    from PIL import Image

    from unigendet.data.degrade import Circulate, get_degradation

    rng = np.random.default_rng(0)
    images = [Image.fromarray(rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)) for _ in range(6)]
    circulate = get_degradation("circulate")
    assert isinstance(circulate, Circulate)
    out = [circulate(im) for im in images]
    assert all(np.array_equal(np.asarray(circulate(im)), np.asarray(o)) for im, o in zip(images, out, strict=True))
    widths = {o.size[0] for o in out}
    assert all(0.4 * 400 - 1 <= w <= 0.9 * 400 + 1 for w in widths) and len(widths) > 1  # draws differ by image
    assert all(o.mode == "RGB" and abs(o.size[1] - o.size[0] * 300 / 400) <= 1 for o in out)
