"""Baselines: the UnivFD linear probe and CNNDetection fine-tuning train, save and load back."""

import dataclasses
import json
import random

import numpy as np
import pytest
import torch
from PIL import Image

from test_gendet import synthetic, write_manifest
from unigendet.backbones import Preprocess
from unigendet.detectors import CNNImageDetector, LinearProbeDetector, load_detector
from unigendet.labels import fake_target
from unigendet.metrics import detection_metrics
from unigendet.weights import CheckpointError
from unigendet_train.baselines import (
    CNNConfig,
    LinearProbeConfig,
    TrainTransform,
    fit_linear_probe,
    run_cnn,
    run_linear_probe,
)
from unigendet_train.gendet import GenDetTrainConfig
from unigendet_train.main import _parser_for

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_manifest(tmp_path_factory.mktemp("data"))


def val_paths_labels(data):
    paths = sorted((data / "img").glob("val-*"))
    return paths, np.array([0 if p.stem.endswith("fake") else 1 for p in paths])


def test_fake_target_is_one_for_fakes():
    assert fake_target(torch.tensor([0, 1, 0])).tolist() == [1.0, 0.0, 1.0]


def test_linear_probe_learns_synthetic_features():
    x, y = synthetic()
    model, curve = fit_linear_probe(LinearProbeConfig(epochs=30, batch_size=32, lr=1e-2), x, y)
    assert curve[-1] < 0.5 * curve[0]
    p = torch.sigmoid(model(x)).detach().numpy()
    assert detection_metrics(p, y.numpy())["acc"] > 0.9


def test_linear_probe_run_save_load(tmp_path, data):
    cache = tmp_path / "cache"
    cfg = LinearProbeConfig(data=str(data), out=str(tmp_path / "lp"), cache=str(cache), epochs=40, batch_size=16)
    summary = run_linear_probe(cfg).metrics
    assert summary["val_acc"] >= 0.8, summary
    run = tmp_path / "lp"
    config = json.loads((run / "config.json").read_text())
    assert config["kind"] == "linear-probe" and config["feature_dim"] == 1280
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["curves"]["linear-probe"][-1] < metrics["curves"]["linear-probe"][0]
    assert (run / "log.jsonl").read_text().count("\n") == cfg.epochs + 1

    det = load_detector(run)
    assert isinstance(det, LinearProbeDetector)
    paths, labels = val_paths_labels(data)
    det.use_cache(cache)
    p = det.predict(paths)
    assert ((p >= 0) & (p <= 1)).all()
    assert detection_metrics(p, labels)["ap"] == pytest.approx(metrics["val"]["ap"])
    assert det.features(paths[:3]).shape == (3, 1280)

    config["feature_dim"] = 640
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="shape mismatches"):
        load_detector(run)


def test_cnn_train_transform_is_seeded_and_augments():
    pre = Preprocess(size=64, crop=56, mean=(0.5,) * 3, std=(0.5,) * 3)
    img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 80, 3), dtype=np.uint8))
    cfg = CNNConfig(load_size=64, crop=56)
    a = TrainTransform(cfg, pre, random.Random(3))(img)
    b = TrainTransform(cfg, pre, random.Random(3))(img)
    assert a.shape == (3, 56, 56) and torch.equal(a, b)
    plain = TrainTransform(dataclasses.replace(cfg, blur_prob=0.0, jpeg_prob=0.0, flip=False), pre, random.Random(3))
    blurred = TrainTransform(dataclasses.replace(cfg, blur_prob=1.0, jpeg_prob=0.0, flip=False), pre, random.Random(3))
    x, z = plain(img), blurred(img)  # same crop offsets: the random stream differs only by the blur draws
    assert x.std() > z.std()  # noise image: blurring removes variance
    with pytest.raises(ValueError, match="smaller than"):
        TrainTransform(dataclasses.replace(cfg, crop=80), pre, random.Random(0))(img)


def test_cnn_run_save_load(tmp_path, data):
    cfg = CNNConfig(data=str(data), out=str(tmp_path / "cnn"), load_size=64, crop=56, epochs=8, batch_size=16,
                    lr=1e-3)
    summary = run_cnn(cfg).metrics
    run = tmp_path / "cnn"
    metrics = json.loads((run / "metrics.json").read_text())
    curve = metrics["curves"]["cnn"]
    assert curve[-1] < 0.8 * curve[0], curve
    assert summary["val_ap"] > 0.7, summary
    config = json.loads((run / "config.json").read_text())
    assert config["kind"] == "cnn" and config["preprocess"]["crop"] == 56

    det = load_detector(run)
    assert isinstance(det, CNNImageDetector)
    paths, labels = val_paths_labels(data)
    p = det.predict(paths)
    assert detection_metrics(p, labels)["ap"] == pytest.approx(metrics["val"]["ap"])
    np.testing.assert_allclose(det.predict(paths[:3]), p[:3], atol=1e-5)  # eval mode: no dropout, no augmentation
    assert det.features(paths[:2]).shape == (2, 1280)


def test_stage_configs_parse_from_flags():
    g = GenDetTrainConfig(**vars(_parser_for("gendet", GenDetTrainConfig).parse_args(
        ["--variant", "ts-real", "--backbone-path", "/x", "--rotations", "3"])))
    assert (g.variant, g.backbone_path, g.rotations) == ("ts-real", "/x", 3)
    c = CNNConfig(**vars(_parser_for("cnn", CNNConfig).parse_args(["--no-flip", "--crop", "96"])))
    assert (c.flip, c.crop) == (False, 96)
    lp = LinearProbeConfig(**vars(_parser_for("linear-probe", LinearProbeConfig).parse_args(["--lr", "0.01"])))
    assert lp.lr == 0.01 and lp.backbone_path is None
