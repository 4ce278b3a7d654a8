"""The FLUX autoencoder codec: the released file's layout, the latent normalisation, and
loading a checkpoint written with those names (tiny widths, random weights)."""

import torch
from safetensors.torch import save_file

from unigendet.codecs import build_codec
from unigendet.codecs.flux_ae import SCALE, SHIFT, FluxAE
from unigendet.unified.loading import stream_into


def test_full_size_layout_matches_the_released_autoencoder():
    with torch.device("meta"):
        ae = build_codec("flux-vae", 16, 8)
    sd = ae.state_dict()
    assert sum(v.numel() for v in sd.values()) == 83_819_683  # FLUX.1 ae.safetensors
    shapes = {k: tuple(v.shape) for k, v in sd.items()}
    assert shapes["encoder.conv_in.weight"] == (128, 3, 3, 3)
    assert shapes["encoder.down.1.block.0.nin_shortcut.weight"] == (256, 128, 1, 1)
    assert shapes["encoder.down.2.downsample.conv.weight"] == (512, 512, 3, 3)
    assert not any(k.startswith("encoder.down.3.downsample") for k in shapes)
    assert shapes["encoder.mid.attn_1.q.weight"] == (512, 512, 1, 1)
    assert shapes["encoder.conv_out.weight"] == (32, 512, 3, 3)  # mean and log-variance
    assert shapes["decoder.conv_in.weight"] == (512, 16, 3, 3)
    assert shapes["decoder.up.3.block.2.conv2.weight"] == (512, 512, 3, 3)  # 3 blocks per level
    assert shapes["decoder.up.0.block.0.nin_shortcut.weight"] == (128, 256, 1, 1)
    assert shapes["decoder.up.1.upsample.conv.weight"] == (256, 256, 3, 3)
    assert not any(k.startswith("decoder.up.0.upsample") for k in shapes)
    assert shapes["decoder.conv_out.weight"] == (3, 128, 3, 3)


def small():
    return FluxAE(16, 8, ch=32, ch_mult=(1, 1, 2, 2), num_res_blocks=1)


def test_normalisation_and_shapes():
    torch.manual_seed(0)
    ae = small().eval()
    x = torch.rand(2, 3, 64, 48) * 2 - 1
    with torch.no_grad():
        z = ae.encode(x)
        mean = ae.encoder(x).chunk(2, dim=1)[0]
        assert z.shape == (2, 16, 8, 6)
        torch.testing.assert_close(z, SCALE * (mean - SHIFT))
        assert ae.decode(z).shape == x.shape
        ae.sample = True
        assert not torch.allclose(ae.encode(x), z)


def test_a_checkpoint_with_the_released_names_streams_in(tmp_path):
    torch.manual_seed(1)
    ref = small().eval()
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(tmp_path / "ae.safetensors"))
    with torch.device("meta"):
        ae = small()
    report = stream_into(ae, tmp_path / "ae.safetensors", dtype=None)
    assert report.loaded == len(ref.state_dict())
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(ae.eval().decode(ae.encode(x)), ref.decode(ref.encode(x)))
