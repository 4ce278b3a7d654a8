"""`unigendet train forensic`: the in-the-wild detector (unigendet.detectors.forensic).

Phases: read the pool (and an optional second source of training images); features of
augmented native-crop views of every training image, cached per backbone and view; a logistic
regression on them (balanced classes); on the validation split, Platt scaling of its logit and the
threshold (`forensic_fit`); optionally fine-tune the networks with the head (`tune`); save with its
model card (`forensic_card`). Selection uses the validation split only.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
import torch

from unigendet.data.degrade import get_degradation
from unigendet.data.imageio import open_image
from unigendet.data.readers import read_source
from unigendet.data.records import DataError, Record
from unigendet.detectors import ForensicDetector
from unigendet.evaluation.detection import score_report
from unigendet.labels import FAKE
from unigendet.models.linear_fit import platt

from .dist import barrier, cleanup, init_distributed, shared_out
from .forensic_card import model_card
from .forensic_config import CIRCULATED, ForensicConfig, untrained
from .forensic_features import ViewFeatures
from .forensic_fit import calibrated_p, fit_calibrated, photo_threshold, record_weights
from .stages import StageResult, register_stage
from .tune import tune
from .views import recipe_key


def training_records(cfg: ForensicConfig) -> tuple[list[Record], list[Record]]:
    """(train, val): the pool's splits, plus the extra source's train split in training."""
    pool = read_source(cfg.data, strict=True)
    train = [r for r in pool if r.split == "train"]
    val = [r for r in pool if r.split == "val"]
    if cfg.extra:
        train += [r for r in read_source(cfg.extra, strict=True) if r.split == "train"]
    for name, recs in (("train", train), ("val", val)):
        if {r.label == FAKE for r in recs} != {True, False}:
            raise DataError(cfg.data, f"the {name} split needs real and fake images")
    return train, val


def fit_detector(cfg: ForensicConfig, train: list[Record], val: list[Record]) -> tuple[ForensicDetector, dict]:
    """Fit the head on augmented views of `train`, calibrate on `val`'s centre crops; with
    `tune_epochs`, then fine-tune the networks with the head and calibrate again."""
    if cfg.tune_epochs and (cfg.threshold_by != "val" or cfg.abstain):
        raise ValueError("--threshold-by source and --abstain cross-fit heads on frozen features; they do not "
                         "apply to tuned networks (--tune-epochs)")
    feats = ViewFeatures(cfg)
    fitted = fit_calibrated(cfg, feats, train, val)
    head, n_views = fitted.head, fitted.train_views
    detector = untrained(cfg)
    detector.head, detector.threshold = head, fitted.threshold
    detector.novelty, detector.novelty_threshold = fitted.novelty, fitted.novelty_threshold
    photos = [r for r in train if r.label != FAKE]  # the typical photo attributions are measured from
    if not cfg.tune_epochs:
        detector.reference = torch.from_numpy(feats(photos, 1, augmented=False).mean(0))
        report = score_report(calibrated_p(head, feats, val), val, detector.threshold)
        return detector, {"val": report["mean"], "val_pooled": report["all"], "train_views": n_views}
    state = Path(cfg.cache) / f"tune-{recipe_key(tuning_recipe(cfg, train, val))}"
    curve = tune(detector, cfg, train, val, state, weight=record_weights(cfg, train))
    p_val = calibrate_tuned(detector, cfg, val)
    rows = shared_out(lambda recs: detector.feature_rows([open_image(r.path) for r in recs]).numpy(), photos)
    detector.reference = torch.from_numpy(rows.mean(0))
    report = score_report(p_val, val, detector.threshold)
    return detector, {"val": report["mean"], "val_pooled": report["all"], "train_views": n_views, **curve}


@torch.no_grad()
def calibrate_tuned(detector: ForensicDetector, cfg: ForensicConfig, val: list[Record]) -> np.ndarray:
    """Platt scaling and the threshold of a tuned detector on the val split's centre crops (with
    `max_fpr`, raised for the val photos as they are and circulated); returns val's calibrated p_fake."""
    images = [open_image(r.path) for r in val]
    is_fake = np.array([r.label == FAKE for r in val])
    x = torch.from_numpy(shared_out(lambda ims: detector.feature_rows(ims).numpy(), images))
    detector.threshold = platt(detector.head, detector.head.raw(x).numpy().astype(np.float64), is_fake)
    p = torch.sigmoid(detector.logits(x)).numpy().astype(np.float64)
    if cfg.max_fpr:
        degrade = get_degradation(CIRCULATED)
        photos = [degrade(im) for im, f in zip(images, is_fake, strict=True) if not f]
        circulated = shared_out(detector.predict_images, photos)
        detector.threshold = photo_threshold(detector.threshold, [p[~is_fake], circulated], cfg.max_fpr)
    return p


def tuning_recipe(cfg: ForensicConfig, train: list[Record], val: list[Record]) -> dict:
    """What a tuning run's saved epochs depend on (not where the result goes): the recipe and the
    images it trains and selects on (a grown pool or a held-out family is another run)."""
    skip = ("out", "name", "bench", "cache", "crops", "data", "extra", "crop_choice", "whole_weight", "threshold_by",
            "crossfit", "abstain", "folds")  # inference and thresholds do not change tuning; the records say the data
    recipe = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in skip}
    for field, default in (("extra_weight", 1.0), ("weigh_sources", False)):  # added later: at their defaults
        if recipe[field] == default:  # they leave earlier runs' keys as they were
            recipe.pop(field)

    def files(records):
        return [(str(Path(r.path).resolve()), r.label) for r in records]  # the same data however it is named

    return {**recipe, "train": files(train), "val": files(val)}


@register_stage("forensic", ForensicConfig)
def run_forensic(cfg: ForensicConfig) -> StageResult:
    """Under torchrun the ranks share out the feature extraction and the tuning; rank 0 writes the run."""
    t0 = time.time()
    info = init_distributed(cfg.device)
    train, val = training_records(cfg)
    detector, metrics = fit_detector(cfg, train, val)
    meta = {"seed": cfg.seed, "seconds": round(time.time() - t0, 2), "train_size": len(train), "val_size": len(val),
            "processes": info.world}
    if info.main:
        detector.save_pretrained(cfg.out, meta=meta, json_files={"metrics.json": metrics},
                                 train=dataclasses.asdict(cfg))
        (Path(cfg.out) / "MODEL_CARD.md").write_text(model_card(cfg, train, val, detector, metrics))
    barrier()
    cleanup()
    return StageResult.of_run(cfg.out, {"threshold": detector.threshold,
                                        **{f"val_{k}": v for k, v in metrics["val"].items()}})
