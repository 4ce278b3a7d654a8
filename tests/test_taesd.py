from pathlib import Path

import pytest
import torch

from unigendet.codecs import TAEF2, build_codec
from unigendet.weights import CheckpointError

REAL = Path(__file__).resolve().parents[2] / "shared" / "weights" / "taef2"  # beside the checkout, if present


def _save_pair(codec, folder):
    """Write the upstream two-file layout: plain tensor dicts, float16 like the released files."""
    enc, dec = folder / "taef2_encoder.pth", folder / "taef2_decoder.pth"
    torch.save({k: v.half() for k, v in codec.encoder.state_dict().items()}, enc)
    torch.save({k: v.half() for k, v in codec.decoder.state_dict().items()}, dec)
    return enc, dec


def _psnr(a, b):
    """PSNR in dB of images in [-1, 1], measured on the [0, 1] scale."""
    return 10 * torch.log10(1 / ((a - b) / 2).pow(2).mean()).item()


def test_round_trip_through_files(tmp_path):
    codec = build_codec("taef2", 32, 8).eval()
    assert isinstance(codec, TAEF2)
    for p in codec.parameters():  # round to float16 so the saved copy is exact
        p.data = p.data.half().float()
    loaded = TAEF2.from_files(*_save_pair(codec, tmp_path))
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        z, z2 = codec.encode(x), loaded.encode(x)
        y, y2 = codec.decode(z), loaded.decode(z2)
    assert z.shape == (2, 32, 8, 8) and y.shape == (2, 3, 64, 64)
    torch.testing.assert_close(z2, z, rtol=0, atol=0)
    torch.testing.assert_close(y2, y, rtol=0, atol=0)
    assert y.abs().max() <= 1
    with pytest.raises(ValueError, match="multiple"):
        codec.encode(torch.zeros(1, 3, 60, 64))
    with pytest.raises(ValueError, match="32 channels"):
        build_codec("taef2", 16, 8)


def test_bad_files_name_the_file(tmp_path):
    enc, dec = _save_pair(TAEF2(), tmp_path)
    state = torch.load(dec, weights_only=True)
    state["19.weight"] = torch.zeros(3, 64, 1, 1)  # wrong shape
    torch.save(state, dec)
    with pytest.raises(CheckpointError, match=r"(?s)taef2_decoder\.pth.*size mismatch for 19\.weight"):
        TAEF2.from_files(enc, dec)

    state = torch.load(enc, weights_only=True)
    del state["11.pool.1.weight"]  # missing key
    torch.save(state, enc)
    with pytest.raises(CheckpointError, match=r"(?s)taef2_encoder\.pth.*Missing key.*11\.pool\.1\.weight"):
        TAEF2.from_files(enc, dec)

    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match=r"junk\.pth: unreadable"):
        TAEF2.from_files(junk, dec)
    with pytest.raises(CheckpointError, match=r"nope\.pth: file not found"):
        TAEF2.from_files(tmp_path / "nope.pth", dec)


def _test_image(side=128):
    """skimage's astronaut photo if available, else a smooth synthetic image; (1, 3, side, side) in [-1, 1]."""
    try:
        from skimage import data, transform
    except ImportError:
        yy, xx = torch.meshgrid(torch.linspace(0, 1, side), torch.linspace(0, 1, side), indexing="ij")
        img = torch.stack([xx, yy, 0.5 + 0.4 * torch.sin(6 * xx + 4 * yy)])
    else:
        img = torch.from_numpy(transform.resize(data.astronaut(), (side, side), anti_aliasing=True)).permute(2, 0, 1)
    return img[None].float() * 2 - 1


@pytest.mark.skipif(not (REAL / "taef2_encoder.pth").is_file(), reason="pretrained taef2 weights not present")
def test_real_weights_reconstruct():
    codec = TAEF2.from_files(REAL / "taef2_encoder.pth", REAL / "taef2_decoder.pth")
    x = _test_image()
    with torch.no_grad():
        z = codec.encode(x)
        y = codec.decode(z)
    assert z.shape == (1, 32, 16, 16)
    assert 0.5 < z.std().item() < 2  # roughly unit scale, as the flow expects
    # measured 27.1 dB (astronaut) and 28.9 dB (synthetic) at 128x128
    assert _psnr(y, x) > 25  # the bar this codec must clear


def test_a_codec_is_built_from_its_entry(tmp_path):
    """Run directories name their codec by a JSON entry: a pretrained one by its folder, one trained
    here by its shape; the registry builds either."""
    from unigendet.codecs import ConvVAE, codec_from_entry

    codec = build_codec("taef2", 32, 8).eval()
    _save_pair(codec, tmp_path)
    loaded = codec_from_entry({"name": "taef2", "path": str(tmp_path)})
    assert isinstance(loaded, TAEF2) and loaded.pretrained
    with pytest.raises(ValueError, match="give its path"):
        codec_from_entry({"name": "taef2"})
    conv = codec_from_entry({"name": "conv-vae", "channels": 4, "downsample": 4, "width": 8, "upsample": "nearest"})
    assert isinstance(conv, ConvVAE) and (conv.channels, conv.downsample) == (4, 4) and not conv.pretrained
    with pytest.raises(ValueError, match="unknown codec 'nope'"):
        codec_from_entry({"name": "nope"})
