"""The in-the-wild detector: views, crops, calibration, the feature cache, the training stage,
the leave-one-family-out folds, and the shipped default."""

import dataclasses
import json
import os
import random
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from unigendet.data.augment import ViewConfig, make_view
from unigendet.data.records import Record
from unigendet.detectors import ForensicDetector, load_detector
from unigendet.detectors.forensic import crop_boxes, tile_boxes
from unigendet.evaluation.families import family_of, logo_folds
from unigendet.labels import FAKE, REAL
from unigendet.metrics import expected_calibration_error
from unigendet.models.linear_fit import fit_linear, platt
from unigendet.models.probes import CalibratedLinear
from unigendet_train.forensic import run_forensic
from unigendet_train.forensic_config import ForensicConfig
from unigendet_train.forensic_features import ViewFeatures

FAST = dict(backbones="residual-stats", side=128, views=2, crops=3)


def noise_image(seed: int, size=(200, 160)) -> Image.Image:
    rng = np.random.RandomState(seed)
    return Image.fromarray(rng.randint(0, 255, (size[1], size[0], 3), dtype=np.uint8))


def test_views_are_reproducible_native_crops():
    img = noise_image(0)
    cfg = ViewConfig(side=128, jpeg_prob=0.0, blur_prob=0.0, flip=False, rot90=False)
    a, b = make_view(img, cfg, random.Random(3)), make_view(img, cfg, random.Random(3))
    assert a.size == (128, 128) and np.array_equal(np.asarray(a), np.asarray(b))
    # a crop of the original pixels, never resampled
    arr, crop = np.asarray(img), np.asarray(a)
    hits = [(y, x) for y in range(arr.shape[0] - 127) for x in range(arr.shape[1] - 127)
            if np.array_equal(arr[y, x], crop[0, 0]) and np.array_equal(arr[y : y + 128, x : x + 128], crop)]
    assert hits
    small = noise_image(1, (90, 70))
    assert make_view(small, cfg, random.Random(0)).size == (90, 70)


def test_views_treat_both_classes_alike():
    # the draws depend on the rng only, not on the image: a real and a fake get the same degradations
    cfg = ViewConfig(side=64, jpeg_prob=0.5, blur_prob=0.5, jitter=0.2, mask_prob=0.3)
    flat = Image.new("RGB", (64, 64), (128, 128, 128))
    for seed in range(5):
        r1, r2 = random.Random(seed), random.Random(seed)
        make_view(noise_image(seed, (64, 64)), cfg, r1)
        make_view(flat, cfg, r2)
        assert r1.random() == r2.random()


def test_circulated_views_are_downscaled_jpegs_drawn_alike_for_both_classes():
    from unigendet.data.degrade import Circulate

    cfg = ViewConfig(side=256, jpeg_prob=0.0, blur_prob=0.0, flip=False, rot90=False, circulate_prob=1.0)
    real, fake = noise_image(0, (256, 256)), Image.new("RGB", (256, 256), (90, 140, 30))
    for seed in range(5):
        a, b = make_view(real, cfg, random.Random(seed)), make_view(fake, cfg, random.Random(seed))
        assert a.size == b.size and 102 <= a.size[0] <= 231  # the same downscale for both, 0.4-0.9x
        assert a.size == make_view(real, cfg, random.Random(seed)).size
    # the protocol's circulation depends on the pixels only: the same image always circulates alike
    c = Circulate()
    assert np.array_equal(np.asarray(c(real)), np.asarray(c(real.copy())))
    assert not np.array_equal(np.asarray(c(real).resize((256, 256))), np.asarray(real))
    # views cached before circulation existed keep their names; a circulating recipe gets its own
    assert "circulate_prob" not in ViewConfig().key() and cfg.key()["circulate_prob"] == 1.0


def test_threshold_at_fpr_calls_at_most_that_share_of_photos_fake():
    from unigendet.metrics import false_positive_rate, threshold_at_fpr

    rng = np.random.default_rng(0)
    for n in (7, 50, 333):
        p = rng.random(n)
        for f in (0.0, 0.05, 0.3):
            t = threshold_at_fpr(p, f)
            assert np.mean(p > t) <= f
            assert false_positive_rate(p, np.zeros(n, bool), t) == np.mean(p > t)
            assert f == 0 or np.mean(p > t - 1e-9) > f or t == p.min()  # and not higher than needed
    with pytest.raises(ValueError):
        threshold_at_fpr([], 0.05)


def test_crop_boxes_cover_large_images_and_keep_small_ones_whole():
    assert crop_boxes(100, 80, 256, 5) == [(0, 0, 100, 80)]
    boxes = crop_boxes(1024, 768, 256, 5)
    assert len(boxes) == 5 and boxes[0] == (384, 256, 640, 512)
    assert all(r - l == 256 and b - t == 256 and r <= 1024 and b <= 768 for l, t, r, b in boxes)
    assert len(crop_boxes(300, 256, 256, 5)) < 5  # overlapping positions collapse


def test_tile_windows_are_native_and_centred_on_their_cells():
    boxes = tile_boxes(1024, 512, 4, 256)
    assert len(boxes) == 16 and all(r - l == 256 and b - t == 256 for l, t, r, b in boxes)
    assert boxes[0] == (0, 0, 256, 256) and boxes[5] == (256, 64, 512, 320)  # cell (1, 1) centre (384, 192)
    assert tile_boxes(100, 80, 2, 256) == [(0, 0, 100, 80)] * 4  # smaller than a window: the whole image


def test_predictor_queues_crop_scores_and_tiles_native_windows():
    from concurrent.futures import ThreadPoolExecutor

    from unigendet.apps.predictor import Predictor
    from unigendet.shipped import default_detector

    pred = Predictor(default_detector())
    det = pred.detector
    images = [noise_image(s, (300 + 40 * s, 280)) for s in range(6)]
    want = det.crop_scores(images)
    with ThreadPoolExecutor(3) as pool:  # concurrent callers share the queue and get their own results
        got = list(pool.map(lambda im: pred.detect([im])[0], images))
    # batches differ in size, so float32 sums differ in the last bits
    assert [v.p_fake for v in got] == pytest.approx([c.p_fake for c in want], abs=1e-5)
    assert [v.spread for v in got] == pytest.approx([c.spread for c in want], abs=1e-5)
    img = noise_image(7, (800, 600))
    tiles = pred.tile_scores(img, grid=2)
    windows = [img.crop(b) for b in tile_boxes(800, 600, 2, det.side)]
    assert all(w.size == (det.side, det.side) for w in windows)
    assert tiles.ravel() == pytest.approx(det.predict_images(windows), abs=1e-5)


def test_platt_scaling_makes_probabilities_honest():
    rng = np.random.RandomState(0)
    is_fake = rng.rand(2000) < 0.5
    raw = np.where(is_fake, 1.0, -1.0) * 8 + rng.normal(0, 8, 2000)  # over-confident logits
    head = CalibratedLinear(1)
    before = 1 / (1 + np.exp(-raw))
    threshold = platt(head, raw, is_fake)
    after = torch.sigmoid(head.scale * torch.from_numpy(raw) + head.shift).numpy()
    assert expected_calibration_error(after, is_fake) < expected_calibration_error(before, is_fake) / 2
    assert 0.3 < threshold < 0.7 and head.scale.item() < 0.5


def test_fit_head_separates_and_standardises():
    rng = np.random.RandomState(0)
    x = rng.normal(0, 1, (200, 5)) * [1, 100, 1, 1, 1]
    y = x[:, 1] > 0
    head = fit_linear(x, y, c=1.0)
    z = head(torch.from_numpy(x).float()).detach().numpy()
    assert ((z > 0) == y).mean() > 0.95
    assert np.allclose(head.mean.numpy(), x.mean(0), atol=1e-4)


def corpus_records(corpus: Path) -> list[Record]:
    from unigendet.data.readers import read_source

    return read_source(corpus, strict=True)


def test_view_features_are_cached_and_reused(corpus, tmp_path, one_thread):
    cfg = ForensicConfig(data=str(corpus), cache=str(tmp_path / "cache"), **FAST)
    recs = corpus_records(corpus)[:6]
    x = ViewFeatures(cfg)(recs, 2, augmented=True)
    files = list((tmp_path / "cache").glob("*.safetensors"))
    assert x.shape == (12, 49) and len(files) == 1
    stamp = files[0].stat().st_mtime_ns
    again = ViewFeatures(cfg)(recs[:3], 2, augmented=True)
    assert np.array_equal(again, x[:6]) and files[0].stat().st_mtime_ns == stamp  # nothing recomputed
    assert not np.array_equal(x[0], x[1])  # two different views


def test_the_stage_trains_calibrates_and_round_trips(corpus, tmp_path, one_thread):
    out = tmp_path / "forensic"
    result = run_forensic(ForensicConfig(data=str(corpus), out=str(out), cache=str(tmp_path / "cache"), **FAST)).metrics
    assert 0 < result["threshold"] < 1 and result["val_auc"] > 0.5
    det = load_detector(out)
    assert isinstance(det, ForensicDetector) and det.threshold == pytest.approx(result["threshold"])
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["kind"] == "forensic" and cfg["train"]["backbones"] == "residual-stats"
    imgs = [noise_image(0, (400, 300)), noise_image(1, (100, 100))]
    scores = det.crop_scores(imgs)
    assert len(scores[0].crops) == 3 and len(scores[1].crops) == 1 and scores[1].spread == 0.0
    p = det.predict_images(imgs)
    assert np.allclose(p, [s.p_fake for s in scores]) and ((p >= 0) & (p <= 1)).all()
    # the verdict is the mean logit of the crops
    z = np.log(np.array(scores[0].crops) / (1 - np.array(scores[0].crops)))
    assert scores[0].p_fake == pytest.approx(1 / (1 + np.exp(-z.mean())), abs=1e-6)
    # the run keeps the typical training photo its attributions are measured from
    assert cfg["reference"] and det.reference is not None and det.reference.shape == (det.head.fc.in_features,)
    for a, z_img in zip(det.attribution(imgs), [z.mean(), None], strict=True):
        assert a.reference == "typical photo" and a.base + sum(a.contributions.values()) == pytest.approx(a.logit)
        if z_img is not None:
            assert a.logit == pytest.approx(z_img, abs=1e-5)


def test_circulated_protocol_and_photo_fpr_threshold(corpus, tmp_path, one_thread):
    """The circulated protocol reads each image downscaled and re-saved (its own cache rows); with
    `max_fpr` the threshold rises until at most that share of the calibration photos, as they are
    and circulated, are called fake."""
    from unigendet_train.forensic_config import CIRCULATED
    from unigendet_train.forensic_fit import calibrated_p, fit_calibrated

    cfg = ForensicConfig(data=str(corpus), cache=str(tmp_path / "cache"), **FAST)
    recs = corpus_records(corpus)
    train, cal = [r for r in recs if r.split == "train"][:40], [r for r in recs if r.split != "train"][:40]
    native, circ = ViewFeatures(cfg), ViewFeatures(cfg, protocol=CIRCULATED)
    assert native.key("residual-stats", False) != circ.key("residual-stats", False)
    assert native.key("residual-stats", True) == circ.key("residual-stats", True)  # training views unchanged
    assert not np.allclose(native(cal[:4], 1, False), circ(cal[:4], 1, False))
    balanced = fit_calibrated(cfg, native, train, cal).threshold
    strict_cfg = ForensicConfig(data=str(corpus), cache=str(tmp_path / "cache"), max_fpr=0.05, **FAST)
    fitted = fit_calibrated(strict_cfg, native, train, cal)
    head2, strict = fitted.head, fitted.threshold
    assert strict >= balanced
    photos = [r for r in cal if r.label != FAKE]
    for feats in (native, circ):
        assert np.mean(calibrated_p(head2, feats, photos) > strict) <= 0.05


def test_tuned_networks_train_save_load_and_resume(corpus, tmp_path, one_thread):
    """`tune_epochs`: the networks are fine-tuned with the head, the run carries them (float16) and
    loads to the same scores, the attribution stays exact, and a run killed after an epoch resumes
    to the weights of an uninterrupted one."""
    from safetensors.torch import load_file

    from unigendet.data.readers import read_source
    from unigendet_train import tune as tuning

    small = tmp_path / "small"
    small.mkdir()
    recs = read_source(corpus, strict=True)
    keep = [r for s in ("train", "val") for lab in (FAKE, REAL) for r in [x for x in recs if x.split == s
                                                                         and x.label == lab][:4]]
    (small / "manifest.csv").write_text("path,label,split,generator\n" + "".join(
        f"{r.path},{'fake' if r.label == FAKE else 'real'},{r.split},{r.generator}\n" for r in keep))
    common = dict(data=str(small), backbones="efficientnet-lite0-taps", side=64, views=1, crops=2,
                  tune_epochs=2, tune_batch=4, cache=str(tmp_path / "cache"))
    out = tmp_path / "tuned"
    result = run_forensic(ForensicConfig(out=str(out), **common))
    det = load_detector(out)
    assert det.tuned and (out / "backbones.safetensors").is_file()
    stored = load_file(str(out / "backbones.safetensors"))
    assert all(v.dtype == torch.float16 for v in stored.values() if v.is_floating_point())
    fresh = load_detector(out)
    pretrained = ForensicDetector("x", fresh.head, ["efficientnet-lite0-taps"])
    changed = [not torch.equal(a, b) for a, b in zip(fresh.networks().state_dict().values(),
                                                      pretrained.networks().state_dict().values(), strict=True)]
    assert any(changed)  # the networks were trained
    imgs = [noise_image(0, (300, 200)), noise_image(1, (64, 64))]
    assert np.allclose(det.predict_images(imgs), fresh.predict_images(imgs), atol=1e-6)
    for a in det.attribution(imgs):
        assert a.base + sum(a.contributions.values()) == pytest.approx(a.logit, abs=1e-5)
    assert len(result.metrics) and json.loads((out / "metrics.json").read_text())["tune_curve"]
    # killed after the first epoch: the saved epoch resumes to the same weights as the straight run
    state = tmp_path / "cache"
    saved = list(state.glob("tune-*"))
    assert len(saved) == 1
    shutil.rmtree(saved[0])
    calls = []
    real_save = tuning.Tuner.save

    def save_then_die(self, epoch, best):
        real_save(self, epoch, best)
        calls.append(epoch)
        if epoch == 0 and len(calls) == 1:
            raise KeyboardInterrupt

    tuning.Tuner.save = save_then_die
    try:
        with pytest.raises(KeyboardInterrupt):
            run_forensic(ForensicConfig(out=str(tmp_path / "killed"), **common))
        run_forensic(ForensicConfig(out=str(tmp_path / "killed"), **common))
    finally:
        tuning.Tuner.save = real_save
    assert calls == [0, 1]  # the second run started at epoch 1
    a, b = load_file(str(out / "backbones.safetensors")), load_file(str(tmp_path / "killed" / "backbones.safetensors"))
    assert all(torch.allclose(a[k].float(), b[k].float(), atol=1e-3) for k in a)


def rec(i: int, label: int, gen: str, split: str, group: str) -> Record:
    return Record(Path(f"/x/{i}.png"), label, gen, split, group=group)


def test_tuning_state_is_kept_per_training_set():
    """Saved tuning epochs resume only the run they belong to: another training set (a grown pool, a
    held-out family) or selection set starts afresh, whatever the output folder."""
    from unigendet_train.forensic import tuning_recipe
    from unigendet_train.views import recipe_key

    cfg = ForensicConfig(tune_epochs=1)
    train = [rec(i, i % 2, "sd", "train", f"g{i}") for i in range(6)]
    val = [rec(10 + i, i % 2, "sd", "val", f"v{i}") for i in range(4)]
    key = recipe_key(tuning_recipe(cfg, train, val))
    assert key == recipe_key(tuning_recipe(dataclasses.replace(cfg, out="elsewhere", name="other"), train, val))
    relative = [dataclasses.replace(r, path=Path(os.path.relpath(r.path))) for r in train]
    assert key == recipe_key(tuning_recipe(dataclasses.replace(cfg, data="./x/.."), relative, val))  # same files
    assert key != recipe_key(tuning_recipe(cfg, train[:-1], val))
    assert key != recipe_key(tuning_recipe(cfg, train, val[1:]))
    assert key != recipe_key(tuning_recipe(dataclasses.replace(cfg, tune_lr=1e-3), train, val))


def test_leave_one_family_out_never_trains_on_the_held_out_family():
    gens = ["sdxl", "sdxl-turbo", "playground-v2.5", "flux.1", "flux.2", "midjourney-v6", "dall-e-3", "kolors"]
    recs = [rec(i, FAKE, g, "train" if i % 3 else "val", f"{g}:{i // 2}") for i, g in
            enumerate(gens * 6)]
    recs += [rec(100 + i, REAL, "photo", "train" if i % 3 else "val", f"p:{i}") for i in range(30)]
    folds = logo_folds(recs, min_fakes=7)
    assert {f.name for f in folds} == {"sdxl", "flux", "small families"}
    for f in folds:
        held = {family_of(g) for g in f.held}
        assert not any(r.label == FAKE and family_of(r.generator) in held for r in f.train + f.calibrate)
        test_reals = {r.path for r in f.test if r.label == REAL}
        cal_reals = {r.path for r in f.calibrate if r.label == REAL}
        assert test_reals and cal_reals and not test_reals & cal_reals
        assert all(r.split == "train" for r in f.train)
    small = next(f for f in folds if f.name == "small families")
    assert set(small.held) == {"midjourney-v6", "dall-e-3", "kolors"}
    assert family_of("SDXL-finetune") == "sdxl" and family_of("unknown-model") == "unknown-model"


def test_manifest_groups_and_original_formats_are_read(tmp_path):
    from unigendet.data.readers import read_manifest

    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    (tmp_path / "manifest.csv").write_text(
        "path,label,generator,split,source,original_format,original_width,original_height,group\n"
        "a.png,real,photo,val,owner/repo,JPEG,640,480,owner/repo:g1\n")
    (r,) = read_manifest(tmp_path / "manifest.csv", strict=True)
    assert (r.group, r.original_format, r.original_width, r.original_height) == ("owner/repo:g1", "jpeg", 640, 480)
    assert r.group_key == "owner/repo:g1"


def test_the_shipped_detectors_fit_the_size_budget_and_describe_their_recipe():
    from unigendet.shipped import shipped_path

    root = shipped_path().parent
    total = sum(f.stat().st_size for f in root.rglob("*") if f.is_file() and "__pycache__" not in f.parts)
    assert total <= 40 * 2**20, f"{total / 2**20:.1f} MB"
    det = load_detector(shipped_path(), runtime="torch")
    card = (shipped_path() / "MODEL_CARD.md").read_text()
    assert ("fine-tuned end to end" in card) == det.tuned and "leave-one-source-out" in card and "called fake" in card


def test_serve_without_a_checkpoint_uses_the_shipped_detector(monkeypatch):
    import io

    from fastapi.testclient import TestClient

    from unigendet.apps.predictor import Predictor
    from unigendet.apps.server import create_app
    from unigendet.shipped import default_detector, load_default_detector

    monkeypatch.delenv("UNIGENDET_DETECTOR", raising=False)
    shipped = load_default_detector()
    assert shipped.kind == "forensic" and 0 < shipped.threshold < 1
    client = TestClient(create_app(Predictor(default_detector())))
    health = client.get("/healthz").json()
    assert health["kind"] == "forensic" and not health["generate"] and health["explain"]  # the shipped explainer
    img = noise_image(3, (600, 400))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    out = client.post("/api/detect", files={"image": ("x.png", buf.getvalue(), "image/png")}).json()
    crops = shipped.crop_scores([img])[0]
    assert out["p_fake"] == pytest.approx(crops.p_fake, abs=1e-9) and out["spread"] == pytest.approx(crops.spread)
    assert out["threshold"] == pytest.approx(shipped.threshold) and out["label"] in ("real", "fake", "uncertain")
    assert np.array(out["heatmap"]).shape == (4, 4)


def test_row_weights_keep_the_classes_balanced_and_unit_weights_change_nothing(tmp_path):
    """`extra_weight`: the extra source's images weigh less in the head's fit, the two classes still
    weigh half each; with unit weights the fit is the balanced one."""
    from unigendet.models.linear_fit import balanced_weights
    from unigendet_train.forensic_fit import record_weights

    rng = np.random.RandomState(0)
    x = rng.normal(0, 1, (120, 4))
    y = (x[:, 0] + 0.5 * rng.normal(0, 1, 120)) > 0.4  # unbalanced classes
    w = balanced_weights(np.where(np.arange(120) % 3 == 0, 0.1, 1.0), y)
    assert w[y].sum() == pytest.approx(60) and w[~y].sum() == pytest.approx(60)
    plain, unit = fit_linear(x, y, c=1.0), fit_linear(x, y, c=1.0, weight=np.ones(120))
    assert torch.allclose(plain.fc.weight, unit.fc.weight, atol=1e-3)
    # the fakes that weigh 10x less pull the boundary 10x less: flip them and the fit barely moves
    extra = np.arange(120) % 3 == 0
    flipped = np.where(extra, ~y, y)
    light = fit_linear(x, flipped, c=1.0, weight=np.where(extra, 0.01, 1.0))
    heavy = fit_linear(x, flipped, c=1.0)
    assert torch.nn.functional.cosine_similarity(light.fc.weight, plain.fc.weight).item() > \
        torch.nn.functional.cosine_similarity(heavy.fc.weight, plain.fc.weight).item()
    with pytest.raises(ValueError, match="positive"):
        balanced_weights(np.zeros(120), y)
    copies, elsewhere = tmp_path / "copies", tmp_path / "elsewhere.png"  # a manifest may name files anywhere
    copies.mkdir()
    noise_image(0).save(elsewhere)
    (copies / "manifest.csv").write_text(f"path,label,split,generator\n{elsewhere},fake,train,taef2\n")
    records = [Record(tmp_path / "a.png", REAL, "photo"), Record(elsewhere, FAKE, "taef2")]
    cfg = ForensicConfig(extra=str(copies), extra_weight=0.2)
    assert record_weights(cfg, records).tolist() == [1.0, 0.2]
    assert record_weights(dataclasses.replace(cfg, extra_weight=1.0), records) is None
    with pytest.raises(ValueError, match="extra-weight"):
        record_weights(dataclasses.replace(cfg, extra_weight=0.0), records)


def test_tuning_loss_balances_the_classes_or_follows_the_row_weights():
    from unigendet_train.tune import image_loss

    y = torch.tensor([1, 1, 1, 0, 0, 0, 0, 0, 0, 0], dtype=torch.float32)
    logits, share = torch.linspace(-2, 2, 6), torch.tensor([0, 1, 3, 4, 5, 9])
    balanced = image_loss(y)(logits, share)
    unit = image_loss(y, np.ones(10))(logits, share)
    assert unit.item() == pytest.approx(balanced.item() * 10 / (2 * 7))  # the same up to a constant scale
    w = np.ones(10)
    w[[0, 3]] = 1e-9  # two images that count for nothing
    loss = image_loss(y, w)
    moved = logits.clone()
    moved[[0, 2]] += 5.0
    assert loss(moved, share).item() == pytest.approx(loss(logits, share).item(), rel=1e-6)


def test_extra_images_weigh_less_in_the_frozen_fit_and_in_tuning(corpus, tmp_path, one_thread):
    """`--extra-weight` reaches both fits: the head and the tuned networks come out different from the
    unit-weight run's on the same images."""
    from unigendet.data.readers import read_source

    recs = read_source(corpus, strict=True)

    def manifest(folder, records, label=None):
        folder.mkdir()
        (folder / "manifest.csv").write_text("path,label,split,generator\n" + "".join(
            f"{r.path},{label or ('fake' if r.label == FAKE else 'real')},{r.split},{r.generator}\n" for r in records))

    keep = [r for s in ("train", "val") for lab in (FAKE, REAL) for r in [x for x in recs if x.split == s
                                                                         and x.label == lab][:3]]
    manifest(tmp_path / "small", keep)
    photos = [r for r in recs if r.split == "train" and r.label == REAL][3:7]
    manifest(tmp_path / "copies", photos, label="fake")  # stand-ins for regenerated copies
    common = dict(data=str(tmp_path / "small"), extra=str(tmp_path / "copies"), backbones="efficientnet-lite0-taps",
                  side=64, views=1, crops=1, tune_epochs=1, tune_batch=4, cache=str(tmp_path / "cache"))
    dets = []
    for w in (1.0, 0.05):
        run_forensic(ForensicConfig(out=str(tmp_path / f"w{w}"), extra_weight=w, **common))
        dets.append(load_detector(tmp_path / f"w{w}"))
    assert not torch.allclose(dets[0].head.fc.weight, dets[1].head.fc.weight, atol=1e-4)
    nets = [d.networks().state_dict() for d in dets]
    assert any(not torch.equal(nets[0][k], nets[1][k]) for k in nets[0] if nets[0][k].is_floating_point())
