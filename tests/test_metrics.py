"""Metric functions against hand-computed values and against scikit-learn / scipy."""

import numpy as np
import pytest
from sklearn import metrics as skm

from unigendet.metrics import (
    accuracy_at,
    average_precision,
    balanced_accuracy,
    balanced_threshold,
    calibrate_threshold,
    css,
    detection_report,
    expected_calibration_error,
    frechet_distance,
    kernel_distance,
    macro_f1,
    mean_pairwise_cosine,
    oracle_accuracy,
    roc_auc,
    rouge_l,
)

S = [0.9, 0.8, 0.7, 0.6, 0.4, 0.2]
Y = [1, 0, 1, 1, 0, 0]


def test_hand_computed_detection_values():
    # Pairs fake>real: 0.9 beats all 3 reals, 0.7 and 0.6 beat 2 each -> 7 of 9.
    assert roc_auc(S, Y) == pytest.approx(7 / 9)
    # Ranked: F R F F R R -> precision at each fake: 1, 2/3, 3/4.
    assert average_precision(S, Y) == pytest.approx((1 + 2 / 3 + 3 / 4) / 3)
    acc = accuracy_at(S, Y, 0.5)  # predicted fake: 0.9 0.8 0.7 0.6
    assert acc == {"acc_real": pytest.approx(2 / 3), "acc_fake": 1.0, "acc": pytest.approx(5 / 6)}
    # fake F1 = 2*3/(4+3) = 6/7; real F1 = 2*2/(2+3) = 4/5
    assert macro_f1(S, Y) == pytest.approx((6 / 7 + 4 / 5) / 2)
    best, t = oracle_accuracy(S, Y)
    assert best == pytest.approx(5 / 6) and np.mean((np.array(S) > t) == np.array(Y)) == best
    # ECE, 2 bins: [0, .5): scores .4 .2, both real -> |0 - .3| ; [.5, 1]: mean .75, 3/4 fake -> 0
    assert expected_calibration_error(S, Y, bins=2) == pytest.approx(2 / 6 * 0.3)


def test_ties_count_half():
    assert roc_auc([0.5, 0.5], [1, 0]) == pytest.approx(0.5)
    assert roc_auc([0.5, 0.5, 0.1], [1, 0, 0]) == pytest.approx(0.75)


@pytest.mark.parametrize("seed", range(5))
def test_detection_metrics_match_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = 200
    y = rng.integers(0, 2, n)
    s = np.clip(rng.normal(0.5 + 0.15 * (y - 0.5), 0.2), 0, 1)
    s[:20] = np.round(s[:20], 1)  # some ties
    assert roc_auc(s, y) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    assert average_precision(s, y) == pytest.approx(skm.average_precision_score(y, s), abs=1e-12)
    pred = (s > 0.5).astype(int)
    assert macro_f1(s, y) == pytest.approx(skm.f1_score(y, pred, average="macro"), abs=1e-12)
    assert accuracy_at(s, y)["acc"] == pytest.approx(skm.accuracy_score(y, pred))
    assert accuracy_at(s, y)["acc_fake"] == pytest.approx(skm.recall_score(y, pred))
    assert accuracy_at(s, y)["acc_real"] == pytest.approx(skm.recall_score(1 - y, 1 - pred))


def test_calibrated_threshold_comes_from_validation():
    val_s, val_y = [0.1, 0.2, 0.3, 0.4], [0, 0, 1, 1]
    t = calibrate_threshold(val_s, val_y)
    assert 0.2 < t < 0.3
    rep = detection_report([0.25, 0.35, 0.05, 0.9], [0, 1, 0, 1], threshold=t)
    assert rep["threshold"] == t and rep["acc_calibrated"] == 1.0 and rep["acc"] == 0.75


def test_balanced_accuracy_ignores_the_class_ratio():
    # 1 fake, 9 reals: calling everything real scores 0.9 accuracy but 0.5 balanced accuracy
    s, y = [0.1] * 9 + [0.2], [0] * 9 + [1]
    assert balanced_accuracy(s, y, 0.5) == 0.5
    assert balanced_accuracy(S, Y, 0.5) == pytest.approx((1 + 2 / 3) / 2)
    t = balanced_threshold(s, y)
    assert 0.1 < t < 0.2 and balanced_accuracy(s, y, t) == 1.0
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = rng.random(300) * 0.5 + 0.3 * y
    assert balanced_accuracy(s, y, 0.4) == pytest.approx(skm.balanced_accuracy_score(y, s > 0.4))
    assert balanced_accuracy(s, y, balanced_threshold(s, y)) >= max(
        balanced_accuracy(s, y, t) for t in np.linspace(0, 1, 101))


def test_bad_inputs_are_refused():
    with pytest.raises(ValueError, match="both"):
        roc_auc([0.1, 0.2], [1, 1])
    with pytest.raises(ValueError, match="labels"):
        roc_auc([0.1, 0.2], [1])
    with pytest.raises(ValueError, match="finite"):
        roc_auc([np.nan, 0.2], [1, 0])
    assert np.isnan(accuracy_at([0.7], [1])["acc_real"])


def test_frechet_distance_matches_scipy():
    from scipy import linalg

    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(300, 8)), rng.normal(0.3, 1.5, size=(250, 8)) @ rng.normal(size=(8, 8))
    mu = a.mean(0) - b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ref = mu @ mu + np.trace(sa + sb - 2 * linalg.sqrtm(sa @ sb).real)
    assert frechet_distance(a, b) == pytest.approx(ref, rel=1e-6)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)


def test_kernel_distance_separates_and_is_unbiased():
    rng = np.random.default_rng(1)
    a, a2, b = rng.normal(size=(400, 16)), rng.normal(size=(400, 16)), rng.normal(0.5, 1, size=(400, 16))
    same, _ = kernel_distance(a, a2, subsets=30)
    diff, _ = kernel_distance(a, b, subsets=30)
    assert abs(same) < 0.02 < diff


def test_pairwise_cosine():
    assert mean_pairwise_cosine([[1, 0], [0, 1]]) == pytest.approx(0.0)
    assert mean_pairwise_cosine([[1, 1], [2, 2], [3, 3]]) == pytest.approx(1.0)


def test_text_metrics():
    ref = ["This is a fake image. Its textures are too smooth."]
    assert rouge_l(ref, ref) == [pytest.approx(1.0)]
    assert rouge_l(["smoothed textures"], ["smooth texture"]) == [pytest.approx(1.0)]  # stemming
    assert css(ref, ref) == [pytest.approx(1.0)]
    assert css(["totally unrelated words"], ref) == [0.0]
    assert css([""], ref) == [0.0] and css(["..."], ref) == [0.0]
    with pytest.raises(ValueError):
        css(["a"], [])


def test_training_summary_uses_dataset_labels():
    from unigendet.metrics import detection_metrics

    out = detection_metrics(S, [1 - y for y in Y])  # dataset labels: 0 = fake
    assert out["acc"] == pytest.approx(5 / 6) and out["ap"] == pytest.approx(average_precision(S, Y))
    assert np.isnan(detection_metrics([0.2, 0.7], [1, 1])["ap"])
