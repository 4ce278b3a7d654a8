"""Generalisation components: low-level features, the NPR network, one-class and reconstruction scores,
stacked ensembles and the richer corpus generators. Each trains on the pixelation corpus of
test_gendet (reals: sharp crops; fakes: 4x nearest-neighbour upsampled) and is read back."""

import json
import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from test_gendet import write_manifest
from unigendet.backbones import Preprocess, create_backbone, native_crop
from unigendet.backbones.lowlevel import npr_phases, periodic_peaks
from unigendet.corpus.build import CorpusConfig, make_generators, shared_jpeg
from unigendet.corpus.fakes import Interpolation
from unigendet.detectors import EnsembleDetector, NPRDetector, ReconDetector, load_detector
from unigendet.detectors.ensemble import fit_stacking
from unigendet.detectors.recon import reconstruction_error
from unigendet.evaluation.detection import score_report
from unigendet.images import npr_residual
from unigendet.models.npr import NPRConfig, NPRNet
from unigendet.models.oneclass import GaussianOneClass
from unigendet_train.ensemble import EnsembleConfig, run_ensemble
from unigendet_train.npr import NPRTrainConfig, run_npr
from unigendet_train.oneclass import OneClassConfig, run_oneclass
from unigendet_train.recon import ReconConfig, run_recon

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_manifest(tmp_path_factory.mktemp("data"), per_split=(("train", 24), ("val", 12)))


def val_records(data):
    from unigendet.data.readers import read_source

    return [r for r in read_source(str(data)) if r.split == "val"]


def photo(size=96, seed=0):
    from skimage import data as skd

    img = Image.fromarray(skd.astronaut()).resize((256, 256), Image.Resampling.BOX)
    rng = np.random.default_rng(seed)
    top, left = rng.integers(0, 256 - size, 2)
    return img.crop((left, top, left + size, top + size))


# --- low-level features -------------------------------------------------------------------------


def test_native_crop_never_resamples():
    img = photo(96)
    x = native_crop(img, 64)
    assert torch.equal(x, torch.from_numpy(np.asarray(img.crop((16, 16, 80, 80)), dtype=np.float32) / 255)
                       .permute(2, 0, 1))
    assert native_crop(Image.new("RGB", (1, 1)), 8).shape == (3, 8, 8)  # padded, not upsampled
    assert native_crop(Image.new("RGB", (40, 10)), 16).shape == (3, 16, 16)
    with pytest.raises(ValueError, match="needs a crop"):
        Preprocess(size=8, crop=None, mean=(0,) * 3, std=(1,) * 3, resize_mode="none")


def test_npr_residual_is_zero_exactly_for_nearest_upsampling():
    x = torch.rand(2, 3, 16, 16)
    up = x[..., ::2, ::2].repeat_interleave(2, -2).repeat_interleave(2, -1)
    assert npr_residual(up).abs().max() == 0
    assert npr_residual(x).abs().mean() > 0.1
    assert npr_residual(torch.rand(1, 3, 7, 9)).shape == (1, 3, 7, 9)  # odd sizes pass through


def test_residual_stats_see_upsampling_periods():
    model, pre = create_backbone("residual-stats")
    real = photo(128)
    fake = real.resize((64, 64), Image.Resampling.BICUBIC).resize((128, 128), Image.Resampling.NEAREST)
    feats = model(torch.stack([pre(real), pre(fake)]))
    assert feats.shape == (2, model.feature_dim) and torch.isfinite(feats).all()
    peaks = periodic_peaks(torch.stack([pre(real), pre(fake)]).mean(1) - 0.5)
    assert peaks[1, :3].max() < peaks[0, :3].min() - 5  # nearest 2x zeroes the period-2 (Nyquist) power
    phases = npr_phases(torch.stack([pre(real), pre(fake)]))
    assert phases[1].abs().max() == 0 < phases[0].abs().max()  # NPR residual is zero in every phase
    assert model.fingerprint() == create_backbone("residual-stats")[0].fingerprint()


# --- NPR ----------------------------------------------------------------------------------------


def test_npr_net_takes_any_size_and_trains_every_parameter():
    net = NPRNet(NPRConfig(width=8, stages=2))
    for h, w in ((32, 32), (37, 50)):
        assert net(torch.rand(2, 3, h, w) * 2 - 1).shape == (2,)
    net(torch.rand(4, 3, 24, 24) * 2 - 1).sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters())


def test_npr_detector_feeds_native_resolution():
    net = NPRNet(NPRConfig(width=8, stages=2)).eval()
    seen = []
    net.stem.register_forward_hook(lambda m, i, o: seen.append(tuple(i[0].shape)))
    det = NPRDetector("npr", net, max_side=100)
    p = det.predict_images([photo(96), Image.new("RGB", (300, 50)), photo(96, seed=1)])
    assert p.shape == (3,) and ((p >= 0) & (p <= 1)).all()
    assert sorted(seen) == [(1, 3, 50, 100), (2, 3, 96, 96)]  # same-size images batched, none resized


def test_npr_stage_learns_and_reloads(tmp_path, data):
    cfg = NPRTrainConfig(data=str(data), out=str(tmp_path / "npr"), width=8, stages=2, crop=32, epochs=4,
                         batch_size=16, lr=3e-3)
    result = run_npr(cfg).metrics
    assert result["val_mean_auc"] > 0.9
    det = load_detector(tmp_path / "npr")
    assert det.kind == "npr"
    recs = val_records(data)
    assert score_report(det.predict([r.path for r in recs]), recs)["mean"]["auc"] == pytest.approx(
        result["val_mean_auc"])
    metrics = json.loads((tmp_path / "npr" / "metrics.json").read_text())
    assert metrics["val_mean_auc"] == max(metrics["curves"]["val_auc"])  # the best epoch was kept


# --- one-class and reconstruction -----------------------------------------------------------------


def test_gaussian_one_class_flags_outliers_and_calibrates_on_reals():
    g = torch.Generator().manual_seed(0)
    real, held = torch.randn(400, 6, generator=g), torch.randn(200, 6, generator=g)
    head = GaussianOneClass(6).fit(real).calibrate(held, 0.95)
    assert (head(held) > 0.5).float().mean() == pytest.approx(0.05, abs=0.02)
    assert head(torch.full((5, 6), 4.0)).min() > 0.99
    assert head(torch.zeros(1, 6)).item() < 0.2


def test_oneclass_stage_uses_reals_only(tmp_path, data):
    out = run_oneclass(OneClassConfig(data=str(data), out=str(tmp_path / "oc"), cache=str(tmp_path / "cache"))).metrics
    assert out["val_mean_auc"] > 0.8
    det = load_detector(tmp_path / "oc")
    recs = val_records(data)
    assert det.kind == "oneclass"
    assert score_report(det.predict([r.path for r in recs]), recs)["mean"]["auc"] == pytest.approx(
        out["val_mean_auc"])
    # the fit never saw a fake: flipping every training fake's pixels leaves it unchanged
    train_fakes = sorted((data / "img").glob("train-*-fake.png"))
    flipped = tmp_path / "flipped"
    shutil.copytree(data, flipped)
    for p in train_fakes:
        Image.open(p).transpose(Image.Transpose.ROTATE_90).save(flipped / "img" / p.name)
    again = run_oneclass(OneClassConfig(data=str(flipped), out=str(tmp_path / "oc2"),
                                        cache=str(tmp_path / "c2"))).metrics
    assert again["val_mean_auc"] == pytest.approx(out["val_mean_auc"])


class _Blur(torch.nn.Module):
    """A codec that loses fine detail: decode(encode(x)) = 2x2 box blur."""

    def encode(self, x):
        return torch.nn.functional.avg_pool2d(x, 2)

    def decode(self, z):
        return z.repeat_interleave(2, -2).repeat_interleave(2, -1)


def test_reconstruction_error_and_sides():
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    smooth = x[..., ::2, ::2].repeat_interleave(2, -2).repeat_interleave(2, -1)
    err = reconstruction_error(_Blur(), torch.cat([x, smooth]))
    assert err[2:].max() == 0 and err[:2].min() > 0  # images on the codec's manifold reconstruct exactly
    det = ReconDetector("r", _Blur(), 64, "low", loc=0.01, scale=0.01)
    imgs = [Image.fromarray(((t.permute(1, 2, 0).numpy() + 1) * 127.5).astype(np.uint8)) for t in (x[0], smooth[0])]
    p = det.predict_images(imgs)
    assert p[1] > 0.5 > p[0]
    with pytest.raises(ValueError, match="fake_if"):
        ReconDetector("r", _Blur(), 64, "sideways", 0.0, 1.0)


def test_recon_stage_trains_on_reals_and_picks_a_side_on_val(tmp_path, data):
    out = run_recon(ReconConfig(data=str(data), out=str(tmp_path / "rec"), width=8, steps=20, side=64)).metrics
    cfg = json.loads((tmp_path / "rec" / "config.json").read_text())
    aucs = json.loads((tmp_path / "rec" / "metrics.json").read_text())["val_mean_auc_by_side"]
    assert cfg["fake_if"] == out["fake_if"] == max(aucs, key=aucs.get)
    det = load_detector(tmp_path / "rec")
    recs = val_records(data)
    assert score_report(det.predict([r.path for r in recs]), recs)["mean"]["auc"] == pytest.approx(
        out["val_mean_auc"])


# --- ensemble -----------------------------------------------------------------------------------


def test_fit_stacking_weights_the_informative_member():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400).astype(float)
    good, noise = (2 * y - 1) * 2 + rng.normal(size=400), rng.normal(size=400)
    w, b = fit_stacking(np.stack([good, noise], 1), y)
    assert w[0] > 1.0 and abs(w[1]) < 0.3
    with pytest.raises(ValueError, match="both real and fake"):
        fit_stacking(np.zeros((3, 1)), np.ones(3))


def test_ensemble_stage_round_trip_and_moves_with_its_members(tmp_path, data):
    runs = tmp_path / "runs"
    run_oneclass(OneClassConfig(data=str(data), out=str(runs / "oc"), cache=str(tmp_path / "cache")))
    from unigendet_train.baselines import LinearProbeConfig, run_linear_probe

    run_linear_probe(LinearProbeConfig(data=str(data), out=str(runs / "lp"), backbone="residual-stats",
                                       cache=str(tmp_path / "cache"), epochs=30))
    out = run_ensemble(EnsembleConfig(members=(str(runs / "oc"), str(runs / "lp")), data=str(data),
                                      out=str(runs / "ens"), cache=str(tmp_path / "cache"))).metrics
    moved = tmp_path / "moved"
    shutil.move(str(runs), moved)
    det = load_detector(moved / "ens")
    assert isinstance(det, EnsembleDetector) and len(det.members) == 2
    recs = val_records(data)
    p = det.predict([r.path for r in recs])
    assert score_report(p, recs)["mean"]["auc"] == pytest.approx(out["val_mean_auc"])
    probs = det.member_probs([r.path for r in recs])
    assert np.allclose(det.combine(probs), p)
    assert np.allclose(det.predict_images([Image.open(r.path).convert("RGB") for r in recs[:3]]), p[:3])


# --- richer corpus ------------------------------------------------------------------------------


def test_interpolation_and_autoencoder_families():
    crop = photo(64)
    for name in ("nearest-x2", "bilinear-x2", "bicubic-x2", "lanczos-x3"):
        fake = Interpolation(name)(crop)
        assert fake.size == crop.size and fake.mode == "RGB"
    gens = make_generators(CorpusConfig(out="unused", generators=("conv-ae-transposed", "conv-ae-pixelshuffle"),
                                        autoencoder_steps=2), [photo(64, s) for s in range(3)])
    assert [g.name for g in gens] == ["conv-ae-transposed", "conv-ae-pixelshuffle"]
    assert all(g(crop, "").size == crop.size for g in gens)
    with pytest.raises(ValueError, match="unknown generator"):
        make_generators(CorpusConfig(out="unused", generators=("dall-e",)), [])


def test_shared_jpeg_gives_both_classes_one_history():
    from unigendet.data.audit import blockiness

    def grid(img):
        return blockiness(np.asarray(img.convert("L"), dtype=np.float64))

    real, fake = photo(128), Interpolation("bicubic-x2")(photo(128))
    r2, f2 = shared_jpeg(real, fake, 40)
    assert r2.size == real.size and f2.size == fake.size
    assert grid(r2) > grid(real) and grid(f2) > grid(fake)


# --- the default detector of `unigendet detect` ----------------------------------------------------


def test_detect_uses_the_shipped_detector_or_the_environment(tmp_path, data, monkeypatch, capsys):
    from unigendet import shipped
    from unigendet.cli import main

    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("UNIGENDET_DETECTOR", raising=False)
    img = str(next((data / "img").glob("val-*-fake.png")))
    # the package's own detector, from any directory
    assert main(["detect", img, "--format", "jsonl", "--quiet"]) == 0
    row = json.loads(capsys.readouterr().out.strip())
    expected = shipped.load_default_detector().predict([img])[0]
    assert row["path"] == img and row["p_fake"] == pytest.approx(expected, abs=1e-9) and "spread" in row
    # a run named by the environment variable wins
    run_npr(NPRTrainConfig(data=str(data), out=str(tmp_path / "runs" / "detector"), width=8, stages=2, crop=32,
                           epochs=1, batch_size=16))
    monkeypatch.setenv("UNIGENDET_DETECTOR", str(tmp_path / "runs" / "detector"))
    capsys.readouterr()
    assert main(["detect", img, "--format", "jsonl", "--quiet"]) == 0
    from unigendet.detectors import load_detector

    p = load_detector(tmp_path / "runs" / "detector").predict([img])[0]
    assert json.loads(capsys.readouterr().out.strip())["p_fake"] == pytest.approx(p, abs=1e-9)
    # neither: one line saying how to get a detector
    monkeypatch.delenv("UNIGENDET_DETECTOR")
    from unigendet import weights

    monkeypatch.setattr(weights, "SHIPPED_DEFAULT", "no-such-detector")
    assert main(["detect", img]) == 2
    err = capsys.readouterr().err.strip()
    assert "no shipped detector" in err and "--checkpoint" in err and len(err.splitlines()) == 1


def test_photo_half_keeps_photos_together_and_splits_them_evenly():
    from pathlib import Path

    from unigendet.data.records import Record, photo_half

    recs = [Record(Path(f"{s}-{i}.png"), i % 2, "g", "val", source=s) for s in "edcba" for i in range(4)]
    a, b = photo_half(recs, "a"), photo_half(recs, "b")
    assert {r.source for r in a} == {"a", "c", "e"} and {r.source for r in b} == {"b", "d"}
    assert len(a) + len(b) == len(recs) and photo_half(recs, "all") == recs
    with pytest.raises(ValueError, match="half"):
        photo_half(recs, "c")
