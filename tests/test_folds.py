"""Held-out folds by source and by family, the cross-fitted threshold, novelty abstention, crops
chosen by evidence and the whole-image view of the forensic detector."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from unigendet.data.records import Record
from unigendet.detectors import ForensicDetector
from unigendet.detectors.forensic import evidence_boxes
from unigendet.evaluation.folds import FoldsResult, ScoredFold, Scores, source_folds
from unigendet.labels import FAKE, REAL
from unigendet.metrics import threshold_at_mean_fpr
from unigendet.models.novelty import fit_novelty, novelty_scores
from unigendet.models.probes import CalibratedLinear

FAST = dict(backbones="residual-stats", side=64, views=1, crops=3, jpeg_prob=0.0, blur_prob=0.0, jitter=0.0)


def rec(i: int, label: int, source: str, split: str = "train", group: str = "", gen: str = "g") -> Record:
    return Record(Path(f"/x/{i}.png"), label, gen if label == FAKE else "photo", split, source=source,
                  group=group or f"{source}:{i}")


def test_source_folds_hold_each_source_out_whole_and_group_small_ones():
    recs = []
    for s, n in (("big-a", 50), ("big-b", 45), ("t1", 10), ("t2", 12), ("t3", 9), ("t4", 30), ("t5", 3)):
        recs += [rec(len(recs), REAL if k % 2 else FAKE, s, "val" if k % 5 == 0 else "train", f"{s}:{k // 3}")
                 for k in range(n)]
    folds = source_folds(recs, min_files=40)
    assert [f.name for f in folds[:2]] == ["big-a", "big-b"]
    tested = [r.path for f in folds for r in f.test]
    assert sorted(tested) == sorted(r.path for r in recs)  # every image tested exactly once
    for f in folds:
        held = set(f.held)
        assert all(r.source in held for r in f.test)
        assert not any(r.source in held for r in f.train + f.calibrate)
        assert not {r.group_key for r in f.test} & {r.group_key for r in f.train + f.calibrate}
        assert all(r.split == "train" for r in f.train) and all(r.split == "val" for r in f.calibrate)
        assert len(f.test) >= 40  # small sources are grouped up to the minimum
    assert sorted(s for f in folds[2:] for s in f.held) == ["t1", "t2", "t3", "t4", "t5"]
    shared = recs + [rec(999, REAL, "t1", group="big-a:0")]  # a group in two sources would leak
    with pytest.raises(ValueError, match="spans sources"):
        source_folds(shared)


def test_threshold_at_mean_fpr_counts_every_source_alike():
    rng = np.random.default_rng(0)
    big, small = rng.random(500), rng.random(20) + 0.5  # a small source whose photos score high
    s, g = np.r_[big, small], np.r_[np.zeros(500), np.ones(20)]
    t = threshold_at_mean_fpr(s, g, 0.05)
    rates = [np.mean(big > t), np.mean(small > t)]
    assert np.mean(rates) <= 0.05
    assert np.mean([np.mean(big > t - 1e-6), np.mean(small > t - 1e-6)]) > 0.05  # the lowest such
    pooled = np.quantile(s, 0.95)
    assert np.mean(small > pooled) > 0.05 * 2 and t > pooled  # pooling lets the small source's photos through
    with pytest.raises(ValueError):
        threshold_at_mean_fpr([0.1], [0, 1], 0.05)


def test_fold_results_rank_held_out_fakes_against_every_out_of_source_photo():
    a = [rec(0, REAL, "a"), rec(1, REAL, "a"), rec(2, FAKE, "a")]
    b = [rec(3, FAKE, "b"), rec(4, FAKE, "b")]
    scored = [ScoredFold("a", ("a",), 0.5, a, {"native": Scores(np.array([0.2, 0.7, 0.9]),
                                                                 np.array([False, True, False]))}),
              ScoredFold("b", ("b",), 0.5, b, {"native": Scores(np.array([0.6, 0.1]))})]
    r = FoldsResult.of("source", "toy", scored)
    fa, fb = (f["views"]["native"] for f in r.folds)
    assert fa["photo_fpr"] == 0.0 and fa["photo_uncertain"] == 0.5  # the 0.7 photo abstained
    assert fa["auc"] == 1.0 and fb["auc"] == pytest.approx(0.25)  # b's fakes against a's photos: 1 pair of 4
    assert fb["recall"] == 0.5 and fb["photos"] == 0
    again = FoldsResult.from_json(json.loads(json.dumps(r.to_json())))
    assert again.folds == r.folds
    with pytest.raises(ValueError, match="schema"):
        FoldsResult.from_json({**r.to_json(), "schema": 99})


def test_novelty_is_low_for_training_rows_and_high_far_from_them():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 20))
    model = fit_novelty(x, dims=8, k=5)
    near, far = novelty_scores(model, x[:50] + 0.01), novelty_scores(model, x[:50] + 8.0)
    assert near.max() < far.min()


def detector(**kw) -> ForensicDetector:
    head = CalibratedLinear(49)
    with torch.no_grad():
        head.fc.weight.normal_(0, 0.2)
    return ForensicDetector("toy", head, ["residual-stats"], crops=3, **kw)


def noise(seed: int, size=(64, 64), scale=60.0) -> Image.Image:
    rng = np.random.RandomState(seed)
    a = np.clip(128 + rng.randn(size[1], size[0], 3) * scale, 0, 255).astype(np.uint8)
    return Image.fromarray(a)


def test_a_novel_image_that_would_be_called_fake_is_uncertain_with_its_reason():
    det = detector(threshold=0.0)  # every image leans fake
    familiar = [noise(s) for s in range(40)]
    det.novelty = fit_novelty(det.image_features(familiar), dims=8, k=5)
    det.novelty_threshold = float(novelty_scores(det.novelty, det.image_features(familiar)).max()) * 1.5
    flat = Image.new("RGB", (64, 64), (200, 30, 30))
    seen, odd = det.crop_scores([noise(3), flat])
    assert not seen.novel and seen.uncertain is None
    assert odd.novel and odd.novelty > det.novelty_threshold and "unlike the images" in odd.uncertain
    det.threshold = 1.0  # called real: nothing to abstain from
    assert not det.crop_scores([flat])[0].novel


def test_crops_are_chosen_where_the_evidence_is():
    a = np.full((512, 512, 3), 120, np.uint8)
    a[:, 256:] = np.asarray(noise(0, (256, 512)))  # the right half textured, the left half flat
    boxes = evidence_boxes(Image.fromarray(a), 128, 3)
    assert len(boxes) == 3 and all(left >= 128 for left, _, _, _ in boxes)
    assert evidence_boxes(noise(1, (100, 100)), 128, 3) == [(0, 0, 100, 100)]


def test_the_whole_image_view_joins_the_verdict_and_the_attribution_still_sums_to_the_logit():
    big, small = noise(4, (300, 200)), noise(5)
    for weight in (0.0, 0.4):
        det = detector(whole_weight=weight, crop_choice="evidence")
        crops = det.crop_features([big, small])
        assert (~crops.native).sum() == (1 if weight else 0)  # the small image fits in one crop
        assert np.allclose(np.bincount(crops.owner, weights=crops.weight), 1.0)
        scores = det.crop_scores([big, small])
        for a, c in zip(det.attribution([big, small]), scores, strict=True):
            assert a.logit == pytest.approx(np.log(c.p_fake / (1 - c.p_fake)), abs=1e-4)
            assert a.base + sum(a.contributions.values()) == pytest.approx(a.logit, abs=1e-6)
    with pytest.raises(ValueError, match="whole_weight"):
        detector(whole_weight=1.0)


def write_pool(root: Path, sources: int = 4, per: int = 16) -> Path:
    """Photos are smooth noise, fakes blocky (upsampled) noise; each source a little brighter."""
    rows = ["path,label,generator,split,source,group"]
    for s in range(sources):
        for i in range(per):
            fake = i % 2 == 0
            rng = np.random.RandomState(100 * s + i)
            base = rng.randn(16 if fake else 64, 16 if fake else 64, 3) * 40 + 110 + 8 * s
            im = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8)).resize((64, 64), Image.NEAREST)
            name = f"s{s}_{i}.png"
            im.save(root / name)
            rows.append(f"{name},{'fake' if fake else 'real'},{'gen' if fake else 'photo'},"
                        f"{'val' if i % 4 in (1, 2) else 'train'},src{s},src{s}:{i}")
    (root / "manifest.csv").write_text("\n".join(rows) + "\n")
    return root


def test_the_cross_fitted_threshold_holds_for_sources_left_out(tmp_path, one_thread):
    from unigendet.data.readers import read_source
    from unigendet_train.forensic_config import ForensicConfig
    from unigendet_train.forensic_features import ViewFeatures
    from unigendet_train.forensic_fit import fit_calibrated

    pool = write_pool(tmp_path)
    recs = read_source(pool, strict=True)
    train, val = [r for r in recs if r.split == "train"], [r for r in recs if r.split == "val"]
    cfg = ForensicConfig(data=str(pool), cache=str(tmp_path / "cache"), max_fpr=0.05, crossfit=4, **FAST)
    feats = ViewFeatures(cfg)
    by_val = fit_calibrated(cfg, feats, train, val)
    crossed = fit_calibrated(ForensicConfig(**{**cfg.__dict__, "threshold_by": "source", "abstain": 0.1}),
                             feats, train, val)
    assert crossed.threshold >= by_val.threshold and by_val.novelty is None
    assert crossed.novelty is not None and np.isfinite(crossed.novelty_threshold)
    with pytest.raises(ValueError, match="threshold-by"):
        fit_calibrated(ForensicConfig(**{**cfg.__dict__, "threshold_by": "nonsense"}), feats, train, val)


def test_eval_folds_by_source_writes_the_schema(tmp_path, one_thread):
    from unigendet.cli import main

    pool = write_pool(tmp_path, sources=3, per=16)
    out = tmp_path / "folds"
    assert main(["eval", "folds", "--data", str(pool), "--out", str(out), "--cache", str(tmp_path / "cache"),
                 "--backbones", "residual-stats", "--side", "64", "--views", "1", "--min-files", "10",
                 "--max-fpr", "0.1", "--threshold-by", "source", "--crossfit", "2", "--abstain", "0.1"]) == 0
    result = FoldsResult.from_json(json.loads((out / "folds.json").read_text()))
    assert result.by == "source" and [f["name"] for f in result.folds] == ["src0", "src1", "src2"]
    s = result.summary["native"]
    assert s["photo_folds"] == 3 and 0 <= s["photo_fpr_mean"] <= s["photo_fpr_worst"] <= 1
    assert s["fake_auc_mean"] > 0.5  # blocky fakes are easy
    lines = (out / "scores.csv").read_text().splitlines()
    assert len(lines) == 1 + 48 and lines[0].startswith("path,label,generator,source,fold,threshold,p_native")
    assert "| src0 |" in (out / "table.md").read_text()


def test_weighing_sources_lets_no_large_source_set_the_boundary_alone():
    from unigendet_train.forensic_config import ForensicConfig
    from unigendet_train.forensic_fit import record_weights

    recs = [rec(i, REAL, "big") for i in range(16)] + [rec(20 + i, REAL, "small") for i in range(4)]
    recs += [rec(40 + i, FAKE, "big") for i in range(4)]
    assert record_weights(ForensicConfig(), recs) is None
    w = record_weights(ForensicConfig(weigh_sources=True), recs)
    np.testing.assert_allclose(w, [1 / 4] * 16 + [1 / 2] * 4 + [1 / 2] * 4)  # 1 / sqrt(rows of its source and class)
    assert w[:16].sum() == 2 * w[16:20].sum()  # the big source still counts more, but by sqrt(4), not 4


def test_novelty_crop_choice_and_whole_weight_travel_with_the_run(tmp_path):
    from unigendet.apps.predictor import Predictor
    from unigendet.detectors import load_detector

    det = detector(crop_choice="evidence", whole_weight=0.3, threshold=0.4)
    det.novelty = fit_novelty(det.image_features([noise(s) for s in range(20)]), dims=4, k=3)
    det.novelty_threshold = 2.5
    det.save_pretrained(tmp_path / "run")
    back = load_detector(tmp_path / "run", runtime="torch")
    assert (back.crop_choice, back.whole_weight, back.novelty_threshold) == ("evidence", 0.3, 2.5)
    images = [noise(7, (300, 200)), Image.new("RGB", (64, 64), (9, 200, 9))]
    assert [c.novelty for c in back.crop_scores(images)] == pytest.approx([c.novelty for c in det.crop_scores(images)])
    pred = Predictor(str(tmp_path / "run"), threshold=0.9, explainer=None)
    assert pred.detector.threshold == 0.9  # the uncertain rules read the threshold the verdict uses


def test_the_summary_says_how_many_held_out_fakes_were_called_real():
    from unigendet.evaluation.folds import summarise

    m = {"photos": 10, "fakes": 10, "photo_fpr": 0.1, "photo_uncertain": 0.0, "auc": 0.8, "bal_acc": 0.6}
    s = summarise([{**m, "recall": 0.3, "fake_uncertain": 0.1}, {**m, "recall": 0.5, "fake_uncertain": 0.0}])
    assert s["fake_missed_mean"] == pytest.approx((0.6 + 0.5) / 2)
