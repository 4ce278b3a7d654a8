"""Detection metrics on scores p_fake in [0, 1] and labels is_fake in {0, 1}.

Written out rather than imported so that each is a few readable lines; the tests
check every one against hand-computed values and against scikit-learn.
"""

from __future__ import annotations

import numpy as np


def _arrays(scores, is_fake) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(is_fake).astype(bool).ravel()
    if s.shape != y.shape:
        raise ValueError(f"{s.size} scores for {y.size} labels")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    return s, y


def _both_classes(y: np.ndarray, what: str) -> None:
    if y.all() or not y.any():
        raise ValueError(f"{what} needs both real and fake examples")


def accuracy_at(scores, is_fake, threshold: float = 0.5) -> dict[str, float]:
    """Accuracy on reals, on fakes and overall, calling `score > threshold` fake.
    A class with no examples gets NaN."""
    s, y = _arrays(scores, is_fake)
    pred = s > threshold
    nan = float("nan")
    return {
        "acc_real": float(np.mean(~pred[~y])) if (~y).any() else nan,
        "acc_fake": float(np.mean(pred[y])) if y.any() else nan,
        "acc": float(np.mean(pred == y)) if y.size else nan,
    }


def balanced_accuracy(scores, is_fake, threshold: float = 0.5) -> float:
    """Mean of the accuracy on reals and the accuracy on fakes (blind to the class ratio)."""
    s, y = _arrays(scores, is_fake)
    _both_classes(y, "balanced accuracy")
    pred = s > threshold
    return float((np.mean(pred[y]) + np.mean(~pred[~y])) / 2)


def balanced_threshold(scores, is_fake) -> float:
    """The threshold that maximises balanced accuracy: the midpoint between the best score and the
    next, so it never sits on a score it was fitted to."""
    s, y = _arrays(scores, is_fake)
    _both_classes(y, "a balanced threshold")
    cands = np.unique(np.r_[s, 0.5])
    bal = [(np.mean(s[y] > t) + np.mean(s[~y] <= t)) / 2 for t in cands]
    i = int(np.argmax(bal))
    return float((cands[i] + cands[min(i + 1, len(cands) - 1)]) / 2)


def threshold_at_fpr(real_scores, max_fpr: float) -> float:
    """The lowest threshold at which at most `max_fpr` of these real images score above it (are called
    fake by `score > threshold`)."""
    s = np.sort(np.asarray(real_scores, dtype=np.float64))
    if not len(s) or not 0 <= max_fpr < 1:
        raise ValueError("a false-positive threshold needs real scores and 0 <= max_fpr < 1")
    allowed = int(np.floor(len(s) * max_fpr + 1e-9))  # photos that may score above it
    return float(s[len(s) - 1 - allowed])


def threshold_at_mean_fpr(real_scores, groups, max_fpr: float) -> float:
    """The lowest threshold at which the real images of the average group are called fake at most
    `max_fpr` of the time (each group's false-positive rate counts alike, however many images it has)."""
    s = np.asarray(real_scores, dtype=np.float64)
    g = np.asarray(groups)
    if not len(s) or len(g) != len(s) or not 0 <= max_fpr < 1:
        raise ValueError("a per-group false-positive threshold needs real scores, one group each, 0 <= max_fpr < 1")
    names, index, counts = np.unique(g, return_inverse=True, return_counts=True)
    weight = 1.0 / (len(names) * counts[index])  # each group sums to 1 / groups
    order = np.argsort(-s, kind="stable")
    above = np.cumsum(weight[order])  # weight of the scores at or above each, highest first
    j = int(np.argmax(above > max_fpr + 1e-12))  # the first score that may not be called fake
    return float(s[order][j])


def false_positive_rate(scores, is_fake, threshold: float) -> float:
    """The fraction of real images called fake (`score > threshold`)."""
    s, y = _arrays(scores, is_fake)
    return float(np.mean(s[~y] > threshold)) if (~y).any() else float("nan")


def roc_curve(scores, is_fake) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false-positive rate, true-positive rate, thresholds), one point per distinct score,
    starting at (0, 0) with threshold +inf."""
    s, y = _arrays(scores, is_fake)
    _both_classes(y, "a ROC curve")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # last index of each tied run
    tps, fps = np.cumsum(y)[last], np.cumsum(~y)[last]
    return np.r_[0, fps] / (~y).sum(), np.r_[0, tps] / y.sum(), np.r_[np.inf, s[last]]


def roc_auc(scores, is_fake) -> float:
    """Area under the ROC curve: the chance that a random fake outscores a random real
    (ties count one half)."""
    fpr, tpr, _ = roc_curve(scores, is_fake)
    return float(np.trapezoid(tpr, fpr))


def pr_curve(scores, is_fake) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, thresholds) at each distinct score, in decreasing threshold order."""
    s, y = _arrays(scores, is_fake)
    _both_classes(y, "a precision-recall curve")
    order = np.argsort(-s, kind="mergesort")
    s, y = s[order], y[order]
    last = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]
    tps, fps = np.cumsum(y)[last], np.cumsum(~y)[last]
    return tps / (tps + fps), tps / y.sum(), s[last]


def average_precision(scores, is_fake) -> float:
    """Step-wise AP: the sum over thresholds of precision x the recall gained there."""
    precision, recall, _ = pr_curve(scores, is_fake)
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def macro_f1(scores, is_fake, threshold: float = 0.5) -> float:
    """Mean of the F1 scores of the real and the fake class (a class never predicted nor
    present scores 0)."""
    s, y = _arrays(scores, is_fake)
    pred = s > threshold
    f1s = []
    for cls in (False, True):
        tp = np.sum((pred == cls) & (y == cls))
        denom = np.sum(pred == cls) + np.sum(y == cls)
        f1s.append(2 * tp / denom if denom else 0.0)
    return float(np.mean(f1s))


def _best_threshold(s: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """Threshold (midpoint between neighbouring scores) maximising overall accuracy."""
    cands = np.unique(s)
    cuts = np.r_[cands[0] - 1.0, (cands[:-1] + cands[1:]) / 2, cands[-1] + 1.0]
    accs = [np.mean((s > c) == y) for c in cuts]
    i = int(np.argmax(accs))
    return float(cuts[i]), float(accs[i])


def oracle_accuracy(scores, is_fake) -> tuple[float, float]:
    """(best accuracy, its threshold) chosen on the evaluated data itself: an upper bound,
    never a result."""
    s, y = _arrays(scores, is_fake)
    t, acc = _best_threshold(s, y)
    return acc, t


def calibrate_threshold(val_scores, val_is_fake) -> float:
    """The threshold that maximises accuracy on a validation split."""
    s, y = _arrays(val_scores, val_is_fake)
    return _best_threshold(s, y)[0]


def expected_calibration_error(scores, is_fake, bins: int = 15) -> float:
    """ECE of p_fake as a probability: |mean(is_fake) - mean(p_fake)| per equal-width bin,
    weighted by the bin's share of examples."""
    s, y = _arrays(scores, is_fake)
    if ((s < 0) | (s > 1)).any():
        raise ValueError("calibration needs probabilities in [0, 1]")
    idx = np.minimum((s * bins).astype(int), bins - 1)
    err = 0.0
    for b in range(bins):
        m = idx == b
        if m.any():
            err += m.mean() * abs(y[m].mean() - s[m].mean())
    return float(err)


def detection_report(scores, is_fake, threshold: float = 0.5) -> dict[str, float]:
    """Everything the tables print for one set of scores."""
    s, y = _arrays(scores, is_fake)
    out = {**accuracy_at(s, y, 0.5), "macro_f1": macro_f1(s, y, 0.5), "n": int(s.size),
           "n_fake": int(y.sum())}
    if threshold != 0.5:
        out["acc_calibrated"] = accuracy_at(s, y, threshold)["acc"]
        out["threshold"] = float(threshold)
    if y.any() and (~y).any():
        out["ap"] = average_precision(s, y)
        out["auc"] = roc_auc(s, y)
        out["oracle_acc"], out["oracle_threshold"] = oracle_accuracy(s, y)
    if ((s >= 0) & (s <= 1)).all():
        out["ece"] = expected_calibration_error(s, y)
    return out


def detection_metrics(p_fake, labels) -> dict[str, float]:
    """The training logs' summary, from dataset labels (0 = fake, 1 = real): accuracy at 0.5
    overall, on reals and on fakes, and AP (NaN when one class is absent)."""
    s = np.asarray(p_fake, dtype=np.float64).reshape(-1)
    y = np.asarray(labels).reshape(-1)
    if s.shape != y.shape or s.size == 0:
        raise ValueError(f"p_fake {s.shape} and labels {y.shape} must be equal, non-empty")
    is_fake = y == 0
    out = {**accuracy_at(s, is_fake), "n": int(y.size)}
    out["ap"] = average_precision(s, is_fake) if is_fake.any() and (~is_fake).any() else float("nan")
    return out
