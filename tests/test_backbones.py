"""Backbones build offline, come with the right preprocessing, and load local HF towers faithfully."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from unigendet.backbones import Preprocess, create_backbone, list_backbones


@pytest.fixture(scope="module")
def lite0():
    return create_backbone("efficientnet-lite0")


def test_registry_lists_backbones():
    assert {"efficientnet-lite0", "clip", "siglip"} <= set(list_backbones())
    with pytest.raises(ValueError, match="unknown backbone"):
        create_backbone("no-such-net")


def test_efficientnet_lite0_features_and_cat(lite0):
    skimage_data = pytest.importorskip("skimage.data")
    model, preprocess = lite0
    assert model.name == "efficientnet-lite0" and model.feature_dim == 1280
    assert not model.training and not any(p.requires_grad for p in model.parameters())
    x = preprocess(Image.fromarray(skimage_data.chelsea()))
    assert x.shape == (3, 224, 224) and x.dtype == torch.float32
    with torch.no_grad():
        feats = model(torch.stack([x, x.flip(-1)]))
        probs = model.net._fc(feats).softmax(-1)  # ImageNet head on the pooled features
    assert feats.shape == (2, 1280) and torch.isfinite(feats).all()
    assert torch.equal(probs, model.net(torch.stack([x, x.flip(-1)])).softmax(-1))
    assert 281 <= int(probs[0].argmax()) <= 285  # a cat
    assert probs[0, 281:286].sum() > 0.5


def test_frozen_backbone_ignores_train(lite0):
    model, _ = lite0
    model.train()
    assert not model.training and not model.net._bn0.training


def test_preprocess_describes_itself(lite0):
    _, preprocess = lite0
    d = preprocess.describe()
    assert d["size"] == 224 and d["crop"] == 224 and d["interpolation"] == "bicubic"
    assert d["mean"] == [0.498] * 3 and d["std"] == [0.502] * 3
    json.dumps(d)  # plain JSON values, fit for a cache key


def test_preprocess_resize_modes():
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 60, 3), dtype=np.uint8))
    assert Preprocess(16, 16, (0.5,) * 3, (0.5,) * 3)(img).shape == (3, 16, 16)
    assert Preprocess(16, None, (0.5,) * 3, (0.5,) * 3)(img).shape == (3, 16, 32)
    assert Preprocess(16, None, (0.5,) * 3, (0.5,) * 3, resize_mode="exact")(img).shape == (3, 16, 16)
    x = Preprocess(30, None, (0.0,) * 3, (1.0,) * 3)(img)  # no resize: exact pixel values / 255
    assert torch.equal(x, torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1))


TINY = dict(
    hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, image_size=32, patch_size=8
)
HF_TOWERS = {
    # name: (config class, model class, preprocessor_config.json written beside the weights)
    "clip": (
        "CLIPVisionConfig",
        "CLIPVisionModel",
        {"size": {"shortest_edge": 32}, "crop_size": {"height": 32, "width": 32}, "do_center_crop": True,
         "resample": 3, "image_mean": [0.48145466, 0.4578275, 0.40821073],
         "image_std": [0.26862954, 0.26130258, 0.27577711]},
    ),
    "siglip": (
        "SiglipVisionConfig",
        "SiglipVisionModel",
        {"size": {"height": 32, "width": 32}, "resample": 2, "image_mean": [0.5] * 3, "image_std": [0.5] * 3},
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(HF_TOWERS))
def test_hf_tower_matches_transformers(name, tmp_path):
    transformers = pytest.importorskip("transformers")
    config_cls, model_cls, pre_cfg = HF_TOWERS[name]
    torch.manual_seed(0)
    reference = getattr(transformers, model_cls)(getattr(transformers, config_cls)(**TINY)).eval()
    reference.save_pretrained(tmp_path)
    (tmp_path / "preprocessor_config.json").write_text(json.dumps(pre_cfg))

    model, preprocess = create_backbone(name, path=str(tmp_path))
    assert model.name == name and model.feature_dim == 32
    img = Image.fromarray(np.random.default_rng(1).integers(0, 256, (48, 40, 3), dtype=np.uint8))
    x = torch.stack([preprocess(img), preprocess(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT))])
    assert x.shape == (2, 3, 32, 32)
    with torch.no_grad():
        got, want = model(x), reference(pixel_values=x).pooler_output
    assert got.shape == (2, 32)
    torch.testing.assert_close(got, want, rtol=0, atol=1e-6)

    d = preprocess.describe()
    assert d["mean"] == pre_cfg["image_mean"] and d["std"] == pre_cfg["image_std"]
    assert d["interpolation"] == {3: "bicubic", 2: "bilinear"}[pre_cfg["resample"]]
    assert d["resize_mode"] == ("shorter" if name == "clip" else "exact")


def test_hf_tower_defaults_without_preprocessor_config(tmp_path):
    transformers = pytest.importorskip("transformers")
    transformers.SiglipVisionModel(transformers.SiglipVisionConfig(**TINY)).save_pretrained(tmp_path)
    _, preprocess = create_backbone("siglip", path=str(tmp_path))
    assert preprocess == Preprocess(32, None, (0.5,) * 3, (0.5,) * 3, resize_mode="exact")


@pytest.mark.parametrize("name", sorted(HF_TOWERS))
def test_hf_tower_needs_a_local_directory(name, tmp_path):
    pytest.importorskip("transformers")
    with pytest.raises(ValueError, match="local directory"):
        create_backbone(name)
    with pytest.raises(ValueError, match="not a directory"):
        create_backbone(name, path=str(tmp_path / "missing"))


def test_hf_tower_refuses_checkpoint_missing_weights(tmp_path):
    transformers = pytest.importorskip("transformers")
    from safetensors.torch import load_file, save_file

    transformers.CLIPVisionModel(transformers.CLIPVisionConfig(**TINY)).save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    missing = next(k for k in weights if "post_layernorm" in k)
    del weights[missing]
    save_file(weights, tmp_path / "model.safetensors", {"format": "pt"})
    with pytest.raises(ValueError, match="lacks or mismatches"):
        create_backbone("clip", path=str(tmp_path))


@pytest.mark.parametrize("variant", [1, 2])
def test_larger_efficientnet_lite_taps_load_from_a_path_and_tap_the_same_places(variant, tmp_path):
    """Lite1/Lite2 taps: weights from a state-dict file (random ones here, the real layout), six taps
    from the stride-2 stage to the stride-16 one, the same evidence groups as Lite0's."""
    from efficientnet_lite_pytorch import EfficientNet

    from unigendet.networks import TAPS_BY_VARIANT, load_efficientnet_lite

    net = EfficientNet.from_name(f"efficientnet-lite{variant}")
    torch.save(net.state_dict(), tmp_path / "w.pth")
    model, pre = create_backbone(f"efficientnet-lite{variant}-taps", path=str(tmp_path / "w.pth"))
    blocks = net._blocks
    taps = TAPS_BY_VARIANT[variant]
    assert model.feature_dim == 2 * sum(blocks[i]._block_args.output_filters for i in taps)
    def opens_stage(i):  # the first block of a stage carries its stride as a list
        return isinstance(blocks[i]._block_args.stride, list)

    assert opens_stage(taps[0]) and blocks[taps[0]]._block_args.stride == [2]
    assert all(opens_stage(i + 1) and not opens_stage(i) for i in taps[1:])  # the later taps close their stage
    assert model(torch.rand(2, 3, 64, 64)).shape == (2, model.feature_dim)
    lite0, _ = create_backbone("efficientnet-lite0-taps")
    assert model.evidence_groups().keys() == lite0.evidence_groups().keys()
    hp, _ = create_backbone(f"efficientnet-lite{variant}-taps-hp", path=str(tmp_path / "w.pth"))
    assert set(hp.evidence_groups()) == {"fine pixel traces"}
    with pytest.raises(ValueError, match="variant"):
        load_efficientnet_lite(3)
    with pytest.raises(RuntimeError):  # another variant's weights are refused, not half loaded
        load_efficientnet_lite(0 if variant else 1, str(tmp_path / "w.pth"))


def test_npr_taps_read_only_what_upsampling_leaves():
    """The NPR input is the image minus its 2x2 nearest-neighbour down-up copy: two different images
    upsampled 2x by pixel repetition give the same features (their residual is zero everywhere), which
    the RGB taps tell apart; every tap counts as pixel-level evidence."""
    npr, pre = create_backbone("efficientnet-lite0-taps-npr")
    rgb, _ = create_backbone("efficientnet-lite0-taps")
    assert npr.feature_dim == rgb.feature_dim and pre.resize_mode == "none"
    a, b = (torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(s)) for s in (0, 1))
    up = torch.cat([t.repeat_interleave(2, -2).repeat_interleave(2, -1) for t in (a, b)])
    with torch.no_grad():
        f, g = npr(up), rgb(up)
        noisy = npr(up + 0.05 * torch.rand_like(up))
    torch.testing.assert_close(f[0], f[1])
    assert not torch.allclose(g[0], g[1], atol=1e-3)
    assert not torch.allclose(noisy[0], f[0], atol=1e-3)  # pixel-level noise breaks the 2x2 ties: it shows
    assert set(npr.evidence_groups()) == {"fine pixel traces"}
