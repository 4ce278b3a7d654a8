"""Pure metric functions: numpy in, numbers out. Fake is the positive class throughout."""

from .detection import (
    accuracy_at,
    average_precision,
    balanced_accuracy,
    balanced_threshold,
    calibrate_threshold,
    detection_metrics,
    detection_report,
    expected_calibration_error,
    false_positive_rate,
    macro_f1,
    oracle_accuracy,
    pr_curve,
    roc_auc,
    roc_curve,
    threshold_at_fpr,
    threshold_at_mean_fpr,
)
from .generation import frechet_distance, kernel_distance, mean_pairwise_cosine, nearest_centroid_accuracy
from .text import css, rouge_l

__all__ = [
    "accuracy_at", "average_precision", "balanced_accuracy", "balanced_threshold", "calibrate_threshold", "css",
    "detection_metrics", "detection_report", "expected_calibration_error", "false_positive_rate",
    "frechet_distance", "kernel_distance",
    "macro_f1", "mean_pairwise_cosine", "nearest_centroid_accuracy", "oracle_accuracy", "pr_curve", "roc_auc",
    "roc_curve", "rouge_l", "threshold_at_fpr", "threshold_at_mean_fpr",
]
