"""The feature cache returns exactly what fresh extraction gives, keyed by file content."""

import shutil

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from unigendet.backbones import Backbone, FeatureCache, Preprocess, create_backbone
from unigendet.data.imageio import ImageError, open_image


class TinyBackbone(Backbone):
    """A random conv + global pool; counts the images it has seen."""

    def __init__(self, seed: int = 0):
        super().__init__("tiny-test", feature_dim=8)
        torch.manual_seed(seed)
        self.conv = nn.Conv2d(3, 8, 3)
        self.seen = 0
        self.freeze()

    def forward(self, x):
        self.seen += x.shape[0]
        return self.conv(x).mean(dim=(2, 3))


PRE = Preprocess(size=16, crop=16, mean=(0.5,) * 3, std=(0.25,) * 3)


def write_images(folder, n, seed=0):
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        p = folder / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (20 + i, 24, 3), dtype=np.uint8)).save(p)
        paths.append(p)
    return paths


def fresh(backbone, preprocess, paths):
    """Features computed directly, one image per forward (batch composition can change the last bit)."""
    with torch.no_grad():
        return torch.cat([backbone(preprocess(open_image(p))[None]) for p in paths])


@pytest.fixture
def images(tmp_path):
    (tmp_path / "img").mkdir()
    return write_images(tmp_path / "img", 7)


def test_cached_equals_fresh_in_order(tmp_path, images):
    model = TinyBackbone()
    cache = FeatureCache(tmp_path / "cache", model, PRE, shard_rows=3)
    order = [images[3], images[0], images[6], images[0], *images]
    got = cache.features(order, batch_size=1)
    assert got.dtype == torch.float32 and got.shape == (len(order), 8)
    assert cache.stats() == {"hits": len(order) - 7, "misses": 7} and model.seen == 7
    assert torch.equal(got, fresh(TinyBackbone(), PRE, order))
    assert len(list(cache.dir.glob("shard-*.safetensors"))) == 3  # 7 rows, 3 per shard

    again = cache.features(order)
    assert torch.equal(again, got)
    assert cache.stats() == {"hits": 2 * len(order) - 7, "misses": 7} and model.seen == 7

    batched = FeatureCache(tmp_path / "other", model, PRE).features(order, batch_size=3)
    torch.testing.assert_close(batched, got, rtol=0, atol=1e-6)


def test_renamed_copy_hits_and_edited_file_misses(tmp_path, images):
    cache = FeatureCache(tmp_path / "cache", TinyBackbone(), PRE)
    before = cache.features(images)
    copy = tmp_path / "renamed.png"
    shutil.copy(images[2], copy)
    assert torch.equal(cache.features([copy]), before[2:3])
    assert cache.stats() == {"hits": 1, "misses": 7}

    Image.fromarray(np.zeros((20, 24, 3), dtype=np.uint8)).save(images[2])
    edited = cache.features([images[2]], batch_size=1)
    assert cache.stats() == {"hits": 1, "misses": 8}
    assert not torch.equal(edited, before[2:3])
    assert torch.equal(edited, fresh(cache.backbone, PRE, [images[2]]))


def test_new_instance_reuses_shards(tmp_path, images):
    first = FeatureCache(tmp_path / "cache", TinyBackbone(), PRE).features(images)
    model = TinyBackbone()
    cache = FeatureCache(tmp_path / "cache", model, PRE)
    assert len(cache) == 7
    assert torch.equal(cache.features(images[::-1]), first.flip(0))
    assert cache.stats() == {"hits": 7, "misses": 0} and model.seen == 0


def test_key_changes_with_weights_and_preprocessing(tmp_path):
    root = tmp_path / "cache"
    base = FeatureCache(root, TinyBackbone(seed=0), PRE).dir
    assert FeatureCache(root, TinyBackbone(seed=0), PRE).dir == base
    assert FeatureCache(root, TinyBackbone(seed=1), PRE).dir != base
    other = Preprocess(size=16, crop=16, mean=(0.5,) * 3, std=(0.25,) * 3, interpolation="bilinear")
    assert FeatureCache(root, TinyBackbone(seed=0), other).dir != base


def test_unreadable_images_raise_naming_the_file(tmp_path, images):
    cache = FeatureCache(tmp_path / "cache", TinyBackbone(), PRE)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    with pytest.raises(ImageError, match="corrupt.png"):
        cache.features([*images, corrupt])
    with pytest.raises(ImageError, match="missing.png"):
        cache.features([tmp_path / "missing.png"])


def test_half_written_shards_are_ignored(tmp_path, images):
    cache = FeatureCache(tmp_path / "cache", TinyBackbone(), PRE)
    first = cache.features(images[:3], batch_size=1)
    (cache.dir / "shard-00001.safetensors.tmp-999").write_bytes(b"half a shard")
    (cache.dir / "shard-00001.json.tmp-999").write_text('{"keys": ["trunc')
    (cache.dir / "shard-00002.safetensors").write_bytes(b"data whose sidecar was never written")

    model = TinyBackbone()
    reopened = FeatureCache(tmp_path / "cache", model, PRE)
    assert len(reopened) == 3
    assert torch.equal(reopened.features(images, batch_size=1), fresh(model, PRE, images))
    assert torch.equal(reopened.features(images[:3]), first)
    assert reopened.stats() == {"hits": 6, "misses": 4}
    assert len(FeatureCache(tmp_path / "cache", TinyBackbone(), PRE)) == 7


def test_efficientnet_lite0_through_the_cache(tmp_path, images):
    model, preprocess = create_backbone("efficientnet-lite0")
    cache = FeatureCache(tmp_path / "cache", model, preprocess)
    got = cache.features(images[:1])
    assert got.shape == (1, 1280)
    assert torch.equal(got, fresh(model, preprocess, images[:1]))
    assert torch.equal(FeatureCache(tmp_path / "cache", model, preprocess).features(images[:1]), got)
