"""The ONNX Runtime path of frozen backbones: same features and verdicts as torch, a graph per set
of weights and input, and clear errors for runtimes that cannot run."""

import numpy as np
import pytest
import torch
from PIL import Image

from unigendet.backbones import create_backbone
from unigendet.backbones import runtime as rt
from unigendet.detectors import load_detector
from unigendet.shipped import shipped_path

pytestmark = pytest.mark.skipif(not rt.onnx_available(), reason="onnxruntime or onnx is not installed")


def photo_like(w: int, h: int, seed: int) -> Image.Image:
    rng = np.random.RandomState(seed)
    base = Image.fromarray(rng.randint(0, 255, (h // 8 + 1, w // 8 + 1, 3), dtype=np.uint8))
    smooth = np.asarray(base.resize((w, h), Image.Resampling.BICUBIC), dtype=np.float64)
    return Image.fromarray(np.clip(smooth + rng.normal(0, 3, smooth.shape), 0, 255).astype(np.uint8))


def test_shipped_detector_scores_alike_on_both_runtimes():
    eager, exported = load_detector(shipped_path(), runtime="torch"), load_detector(shipped_path())
    assert (eager.runtime, exported.runtime) == ("torch", "onnx")  # a loaded run runs on onnx where it can
    # tiny (padded), exact, odd-sized and multi-crop images, and a flat one
    images = [photo_like(48, 40, 0), photo_like(256, 256, 1), photo_like(301, 257, 2), photo_like(700, 520, 3),
              Image.new("RGB", (256, 256), (90, 120, 200))]
    a, b = eager.crop_features(images)[0], exported.crop_features(images)[0]
    assert a.shape == b.shape and float((a - b).abs().max()) < 1e-3
    pa, pb = eager.predict_images(images), exported.predict_images(images)
    assert np.abs(pa - pb).max() < 1e-4
    ea, eb = eager.attribution(images[:2]), exported.attribution(images[:2])
    for x, y in zip(ea, eb, strict=True):
        assert abs(x.logit - y.logit) < 1e-3 and x.contributions.keys() == y.contributions.keys()


def test_same_weights_reading_different_inputs_get_their_own_graphs():
    # the RGB and high-pass taps share their pretrained weights but not their input
    rgb, pre = create_backbone("efficientnet-lite0-taps")
    hp, _ = create_backbone("efficientnet-lite0-taps-hp")
    x = torch.stack([pre(photo_like(256, 256, s)) for s in range(2)])
    with torch.no_grad():
        want_rgb, want_hp = rgb(x), hp(x)
    got_rgb, got_hp = rt.ExportedBackbone(rgb, 256)(x), rt.ExportedBackbone(hp, 256)(x)
    assert torch.allclose(got_rgb, want_rgb, atol=1e-4) and torch.allclose(got_hp, want_hp, atol=1e-4)
    assert not torch.allclose(got_rgb, got_hp, atol=1e-2)


def test_changed_weights_are_exported_anew_and_the_cache_stays_bounded(monkeypatch):
    from collections import OrderedDict

    monkeypatch.setattr(rt, "_SESSIONS", OrderedDict())
    monkeypatch.setattr(rt, "SESSIONS_KEPT", 1)
    model, pre = create_backbone("efficientnet-lite0-taps")
    x = pre(photo_like(256, 256, 5))[None]
    old = rt.ExportedBackbone(model, 256)
    before = old(x)
    with torch.no_grad():
        model.tapped.net._conv_stem.weight.mul_(1.5)
        want = model(x)
    after = rt.ExportedBackbone(model, 256)(x)
    assert torch.allclose(after, want, atol=1e-4) and not torch.allclose(after, before, atol=1e-3)
    assert len(rt._SESSIONS) == 1  # the older graph left the cache, and its holder still runs it
    assert torch.allclose(old(x), before)


def test_batches_of_any_size_and_wrong_shapes():
    model, pre = create_backbone("efficientnet-lite0-taps")
    engine = rt.ExportedBackbone(model, 256, batch_size=2)
    x = torch.stack([pre(photo_like(256, 256, s)) for s in range(5)])  # 2 + 2 + 1
    with torch.no_grad():
        assert torch.allclose(engine(x), model(x), atol=1e-4)
    assert engine(x[:0]).shape == (0, model.feature_dim)
    with pytest.raises(ValueError, match="expected"):
        engine(torch.zeros(1, 3, 128, 128))


def test_runtime_choice(monkeypatch):
    assert rt.resolve_runtime("auto", "cpu") == "onnx" and rt.resolve_runtime("torch", "cpu") == "torch"
    assert rt.resolve_runtime("auto", "meta") == "torch"  # not a CPU: torch runs it
    with pytest.raises(ValueError, match="CPU only"):
        rt.resolve_runtime("onnx", "meta")
    with pytest.raises(ValueError, match="runtime must be one of"):
        load_detector(shipped_path(), runtime="tensorrt")
    monkeypatch.setattr(rt, "onnx_available", lambda: False)
    assert rt.resolve_runtime("auto", "cpu") == "torch"
    with pytest.raises(RuntimeError, match="pip install onnxruntime"):
        rt.resolve_runtime("onnx", "cpu")
