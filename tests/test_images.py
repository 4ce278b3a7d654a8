"""The one centre crop (`unigendet.images.centre_box`) and its PIL and tensor forms."""

import numpy as np
import pytest
import torch
from PIL import Image

from unigendet.images import centre_box, centre_crop, centre_crop_tensor, pil_to_tensor


def test_centre_box_margins_and_clamping():
    assert centre_box(10, 10, 4) == (3, 3, 7, 7)  # even margins: 3 on each side
    assert centre_box(9, 8, 4) == (2, 2, 6, 6)  # odd margin: the extra pixel stays right
    assert centre_box(9, 9, 4, 2) == (2, 3, 6, 5)  # side_h apart from side_w
    assert centre_box(3, 20, 8) == (0, 6, 3, 14)  # narrower than the crop: the full width
    assert centre_box(5, 4, 16) == (0, 0, 5, 4)  # smaller both ways: the whole image


@pytest.mark.parametrize("w,h,side", [(10, 7, 4), (7, 10, 5), (6, 6, 6), (5, 3, 8), (1, 9, 2)])
def test_pil_and_tensor_crops_agree(w, h, side):
    rng = np.random.default_rng(w * 100 + h)
    img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB")
    a = pil_to_tensor(centre_crop(img, side))
    b = centre_crop_tensor(pil_to_tensor(img), side)
    assert a.shape == b.shape == (3, min(side, h), min(side, w))
    assert torch.equal(a, b)
    assert torch.equal(centre_crop_tensor(pil_to_tensor(img)[None], side)[0], b)  # leading dims kept
