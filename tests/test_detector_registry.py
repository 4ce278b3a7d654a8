"""Every detector kind saves, loads back through the one registry, and scores as the p_fake values
recorded before the detectors became a package (tests/fixtures/golden_pfake.json).

fp32 results are not bit-exact across CPUs, thread counts and BLAS/oneDNN builds: summation order
changes, and through a deep network the last bits drift to about 1e-6 in p_fake (1.3e-6 measured for
the EfficientNet-based kinds between two machines). GOLDEN_ATOL leaves a margin of 50x above that;
the changes these values guard against (preprocessing, weight layout, a head or calibration edit)
move p_fake by far more. Within one process the same inputs score identically whichever entry
point reads them (SAME_PROCESS_ATOL)."""

import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from unigendet import create_model, get_config
from unigendet.backbones import create_backbone
from unigendet.codecs import ConvVAE
from unigendet.data.records import Record
from unigendet.detectors import (
    DETECTORS,
    EnsembleDetector,
    ForensicDetector,
    GenDetDetector,
    LinearProbeDetector,
    NPRDetector,
    OneClassDetector,
    ReconDetector,
    UniGenDetDetector,
    cnn_from_backbone,
    load_detector,
)
from unigendet.detectors.cnn import CNNImageDetector
from unigendet.labels import FAKE, REAL
from unigendet.models.gendet import GenDet, GenDetConfig
from unigendet.models.npr import NPRConfig, NPRNet
from unigendet.models.oneclass import GaussianOneClass
from unigendet.models.probes import CalibratedLinear, LinearProbe
from unigendet.rundir import read_meta
from unigendet.unified.config import LatentConfig
from unigendet.unified.pipeline import UniGenDetPipeline, codec_for
from unigendet.weights import CheckpointError

GOLDEN = json.loads((Path(__file__).parent / "fixtures" / "golden_pfake.json").read_text())
GOLDEN_ATOL = 5e-5
SAME_PROCESS_ATOL = 1e-6


def fixture_images(root: Path) -> list[Path]:
    """Six deterministic images of several sizes; every other one nearest-neighbour upsampled."""
    rng = np.random.RandomState(0)
    out = []
    for i, (w, h) in enumerate([(64, 64), (96, 80), (130, 130), (64, 64), (72, 100), (128, 96)]):
        yy, xx = np.mgrid[0:h, 0:w] / max(w, h)
        base = np.stack([np.sin(6.28 * (xx * (i + 1) + c / 3)) for c in range(3)], -1) * 60 + 128
        img = np.clip(base + rng.normal(0, 4 + 6 * i, (h, w, 3)), 0, 255).astype(np.uint8)
        if i % 2:
            img = np.asarray(Image.fromarray(img[::2, ::2]).resize((w, h), Image.NEAREST))
        p = root / f"img{i}.png"
        Image.fromarray(img).save(p)
        out.append(p)
    return out


def build_runs(root: Path, images: list[Path]) -> dict[str, Path]:
    """One run of every kind, seeded (the same constructions the golden values were recorded with)."""
    runs = {}
    torch.manual_seed(1)
    gendet = GenDet(GenDetConfig(feature_dim=49, dim=32, heads=2, tokens=4))
    runs["gendet"] = GenDetDetector("gendet-full", gendet, "residual-stats", None).save_pretrained(root / "gendet")
    torch.manual_seed(2)
    probe = LinearProbeDetector("linear-probe", LinearProbe(1280), "efficientnet-lite0", None)
    runs["linear-probe"] = probe.save_pretrained(root / "lp")
    torch.manual_seed(3)
    cnn, pre = cnn_from_backbone("efficientnet-lite0")
    with torch.no_grad():
        cnn.head.weight.normal_(0, 0.2)
    runs["cnn"] = CNNImageDetector("cnn", cnn, pre).save_pretrained(root / "cnn")
    torch.manual_seed(4)
    runs["npr"] = NPRDetector("npr", NPRNet(NPRConfig(width=8, stages=2))).save_pretrained(root / "npr")
    torch.manual_seed(5)
    stats, stats_pre = create_backbone("residual-stats")
    with torch.no_grad():
        feats = stats(torch.stack([stats_pre(Image.open(p).convert("RGB")) for p in images]))
    oneclass = GaussianOneClass(49).fit(feats[:4] + 0.01 * torch.randn(4, 49), shrinkage=0.9).calibrate(feats[4:])
    oc = OneClassDetector("oneclass-residual-stats", oneclass.float(), "residual-stats", None)
    runs["oneclass"] = oc.save_pretrained(root / "oneclass")
    torch.manual_seed(6)
    entry = {"name": "conv-vae", "channels": 4, "downsample": 4, "width": 8, "upsample": "nearest"}
    recon = ReconDetector("recon-conv-vae", ConvVAE(channels=4, downsample=4, width=8), 64, "low", 0.05, 0.02,
                          codec_entry=entry)
    runs["recon"] = recon.save_pretrained(root / "recon")
    members = [load_detector(runs["npr"]), load_detector(runs["oneclass"])]
    runs["ensemble"] = EnsembleDetector("ensemble", members, [0.7, -0.4], 0.1).save_pretrained(root / "ensemble")
    torch.manual_seed(8)
    head = CalibratedLinear(49)
    with torch.no_grad():
        head.fc.weight.normal_(0, 0.5)
        head.scale.fill_(0.8)
    runs["forensic"] = ForensicDetector("forensic", head, ["residual-stats"], crops=3, threshold=0.4).save_pretrained(
        root / "forensic")
    torch.manual_seed(7)
    # the tiny preset as it was when the values were recorded: pixel-patch latents
    cfg = get_config("tiny", latent=LatentConfig(codec="pixel", channels=48, downsample=4, max_latent_side=16))
    model = create_model(cfg)
    uni = UniGenDetDetector(UniGenDetPipeline(model, codec_for(cfg)))
    runs["unigendet"] = uni.save_pretrained(root / "unigendet")
    return runs


@pytest.fixture(scope="module")
def saved(tmp_path_factory, one_thread):
    root = tmp_path_factory.mktemp("kinds")
    images = fixture_images(root)
    return build_runs(root, images), images


def test_every_registered_kind_is_covered():
    assert set(DETECTORS) == set(GOLDEN)


@pytest.mark.parametrize("kind", sorted(GOLDEN))
def test_save_load_predict_matches_the_recorded_values(saved, kind):
    runs, images = saved
    detector = load_detector(runs[kind])
    assert detector.kind == kind and isinstance(detector, DETECTORS[kind])
    p = detector.predict(images)
    assert np.abs(p - np.array(GOLDEN[kind])).max() < GOLDEN_ATOL, (p, GOLDEN[kind])
    decoded = [Image.open(x).convert("RGB") for x in images]
    assert np.abs(detector.predict_images(decoded) - p).max() < SAME_PROCESS_ATOL


def test_a_saved_run_moves_with_its_ensemble(saved, tmp_path):
    import shutil

    runs, images = saved
    moved = tmp_path / "moved"
    shutil.copytree(runs["ensemble"].parent, moved)
    assert np.abs(load_detector(moved / "ensemble").predict(images) - np.array(GOLDEN["ensemble"])).max() < GOLDEN_ATOL


def test_a_new_kind_is_one_class_in_one_module(tmp_path, saved):
    """The example of docs/architecture.md: a kind defined anywhere round-trips with no other change."""
    from unigendet.detectors.base import Detector, register_detector

    @register_detector
    class BrightnessDetector(Detector):
        kind = "brightness-test"

        def __init__(self, name, scale: float, device="cpu"):
            super().__init__(name, device)
            self.scale = scale

        def predict_images(self, images):
            return np.array([np.asarray(im.convert("L")).mean() / 255 * self.scale for im in images])

        def image_features(self, images):
            return self.predict_images(images)[:, None]

        def state(self, run_dir):
            return {"scale": self.scale}, {}

        @classmethod
        def from_state(cls, run_dir, config, device):
            return cls(config["name"], config["scale"], device)

    try:
        _, images = saved
        run = BrightnessDetector("bright", 0.5).save_pretrained(tmp_path / "bright", meta={"seed": 0})
        loaded = load_detector(run)
        assert isinstance(loaded, BrightnessDetector) and loaded.name == "bright" and loaded.source == run
        assert np.allclose(loaded.predict(images), BrightnessDetector("x", 0.5).predict(images))
        with pytest.raises(ValueError, match="already registered"):
            register_detector(type("Twin", (BrightnessDetector,), {}))
        # every product surface takes it as it is: detect (with its report) and evaluation
        from unigendet.apps.detect import DetectConfig, detect_paths
        from unigendet.evaluation.detection import evaluate_detector

        out = io.StringIO()
        assert detect_paths(DetectConfig(paths=tuple(map(str, images)), checkpoint=str(run), format="jsonl",
                                         quiet=True, report=str(tmp_path / "report.html")), out=out) == 0
        rows = [json.loads(line) for line in out.getvalue().splitlines()]
        assert [r["p_fake"] for r in rows] == pytest.approx(list(loaded.predict(images)))
        assert (tmp_path / "report.html").is_file()
        records = [Record(str(p), FAKE if i % 2 else REAL, "g") for i, p in enumerate(images)]
        assert 0 <= evaluate_detector(loaded, records, records).report["all"]["auc"] <= 1
    finally:
        DETECTORS.pop("brightness-test", None)


def test_unknown_kind_and_missing_config_are_clear_errors(tmp_path):
    from unigendet.weights import CheckpointError

    (tmp_path / "run").mkdir()
    with pytest.raises(CheckpointError, match="no config.json"):
        load_detector(tmp_path / "run")
    (tmp_path / "run" / "config.json").write_text('{"kind": "nope"}')
    with pytest.raises(CheckpointError, match="unknown detector kind 'nope'"):
        load_detector(tmp_path / "run")


def test_a_unigendet_checkpoint_records_its_kind(saved, tmp_path):
    """Written with "kind" like every run directory; one written before that is still recognised by its
    model config; run-directory extras are refused rather than dropped; options reach only the kinds
    that take them."""
    import shutil

    runs, images = saved
    path = runs["unigendet"]
    cfg = json.loads((path / "config.json").read_text())
    assert (cfg["format_version"], cfg["kind"]) == (1, "unigendet") and "llm" in cfg["model"]
    # the layouts before one run-directory schema: the flat model config, with and without a kind,
    # and the format version in meta.json
    for old_kind in ({"kind": "unigendet"}, {}):
        old = tmp_path / f"old{len(old_kind)}"
        shutil.copytree(path, old)
        (old / "config.json").write_text(json.dumps({**old_kind, **cfg["model"]}))
        (old / "meta.json").write_text(json.dumps({"format_version": 1, "step": 3}))
        loaded = load_detector(old)
        assert loaded.kind == "unigendet" and loaded.pipeline.config == load_detector(path).pipeline.config
        assert read_meta(old) == {"step": 3}
    (old / "meta.json").write_text(json.dumps({"format_version": 2}))
    with pytest.raises(CheckpointError, match="newer"):
        load_detector(old)
    # it saves as every kind does: training options, extra JSON files, files carried over
    detector = load_detector(path)
    (tmp_path / "again").mkdir()
    (tmp_path / "again" / "log.jsonl").write_text("{}\n")
    again = detector.save_pretrained(tmp_path / "again", meta={"seed": 1}, json_files={"metrics.json": {"auc": 1}},
                                     train={"steps": 3})
    assert json.loads((again / "config.json").read_text())["train"] == {"steps": 3}
    assert {"metrics.json", "log.jsonl", "meta.json", "codec.safetensors"} <= {p.name for p in again.iterdir()}
    assert np.allclose(load_detector(again).predict(images), detector.predict(images))
    with pytest.raises(ValueError, match="takes no base option"):
        load_detector(runs["npr"], base=str(tmp_path))


def test_files_are_scored_a_chunk_at_a_time_and_caches_reach_ensemble_members(saved, monkeypatch, tmp_path):
    from unigendet.detectors import base, use_feature_cache

    runs, images = saved
    detector = load_detector(runs["npr"])
    seen = []
    real = detector.predict_images
    monkeypatch.setattr(detector, "predict_images", lambda ims: seen.append(len(ims)) or real(ims))
    monkeypatch.setattr(base, "DECODE_CHUNK", 4)
    p = detector.predict(images)
    assert seen == [4, 2] and np.abs(p - np.array(GOLDEN["npr"])).max() < GOLDEN_ATOL
    assert detector.predict([]).shape == (0,)
    ensemble = load_detector(runs["ensemble"])
    assert use_feature_cache(ensemble, tmp_path / "cache") is ensemble
    assert [getattr(m, "cache_root", None) for m in ensemble.members] == [None, tmp_path / "cache"]  # npr has none
    assert np.abs(ensemble.predict(images) - np.array(GOLDEN["ensemble"])).max() < GOLDEN_ATOL


def test_attribution_is_exact_for_the_forensic_kind_and_by_occlusion_for_every_other(saved):
    """The forensic kind's contributions add up with its base to the verdict's logit; every other kind
    is attributed by occlusion of frequency bands, at the same logit."""
    from unigendet.backbones.base import CONTENT, FINE_TRACES
    from unigendet.detectors.attribution import attribute
    from unigendet.shipped import load_default_detector

    runs, images = saved
    decoded = [Image.open(p).convert("RGB") for p in images]
    detectors = {kind: load_detector(run) for kind, run in runs.items()} | {"shipped": load_default_detector()}
    for kind, det in detectors.items():
        found = attribute(det, decoded)
        p = det.predict_images(decoded)
        assert len(found) == len(decoded), kind
        for a, pi in zip(found, p, strict=True):
            assert abs(1 / (1 + np.exp(-a.logit)) - pi) < 1e-6 and a.exact == (kind in ("forensic", "shipped")), kind
            if a.exact:
                assert abs(a.base + sum(a.contributions.values()) - a.logit) < 1e-6, kind
            else:
                values = np.array(list(a.contributions.values()))
                assert set(a.contributions) == {FINE_TRACES, CONTENT} and np.isfinite(values).all(), kind
    kinds = set(attribute(detectors["shipped"], decoded[:1])[0].contributions)
    assert kinds == {"fine pixel traces", "mid-level texture", "content and colour", "noise-residual statistics"}
