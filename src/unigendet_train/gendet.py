"""`unigendet train gendet`: GenDet (Zhu et al.) on cached frozen-backbone features.

Phases: teacher N_t by cross-entropy, then frozen; `rotations` x (a: student on real features,
eq. 1; b: student on augmented fakes, eq. 2 weighted by alpha; c: augmenter, eq. 3), skipping
what the variant leaves out; then the classifier N_c on discrepancies (eq. 4). The classifier
sees the discrepancies of the training features without the augmenter, as at inference (eq. 5).

Learning rates: the paper's (teacher 1e-5, student 1e-4 / 1e-5, classifier 1e-5 / 1e-3) are for
360K-720K training images, thousands of AdamW steps per epoch. The built-in corpus has ~400
training images (~13 steps of 32 per epoch), so every network defaults to 1e-3 (the paper's largest,
its GenImage classifier rate); the augmenter, whose rate the paper does not give, shares the
student's. The paper does not give teacher / classifier epochs: 10 / 20 here.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from unigendet.data.records import DataError
from unigendet.detectors import GenDetDetector
from unigendet.labels import FAKE, REAL
from unigendet.models import gendet_losses as L
from unigendet.models.gendet import GenDet, GenDetConfig

from .config import FeatureStageConfig
from .epochs import run_epoch, seed_everything
from .features import cached_features, evaluate
from .log import RunLogger
from .stages import StageResult, register_stage, split_metrics


@dataclass(frozen=True)
class GenDetTrainConfig(FeatureStageConfig):
    """GenDet: teacher, adversarial teacher-student rotations, discrepancy classifier."""

    out: str = "runs/gendet"
    variant: str = "full"  # teacher | ts-real | ts-fakes | full (the paper's ablation rows)
    dim: int = 196  # transformer width (paper: 196)
    heads: int = 4
    tokens: int = 8  # sequence length T of every block
    embed: str = "project"  # pooled feature -> tokens: "project" (learned Linear D -> T*dim) or "split" (chunks)
    margin: float = 2.0  # M, eq. 2
    alpha: float = 0.1  # weight of eq. 2
    rotations: int = 10  # (a, b, c) rotations (paper: 10)
    stage_epochs: int = 1  # epochs of each of a, b, c per rotation (paper: 1)
    teacher_epochs: int = 10  # more overfits ~400 images (train loss < 0.01, val accuracy falls)
    classifier_epochs: int = 20
    batch_size: int = 32
    lr_teacher: float = 1e-3
    lr_student: float = 1e-3
    lr_augmenter: float = 1e-3
    lr_classifier: float = 1e-3
    weight_decay: float = 0.01  # AdamW default

    def __post_init__(self):
        self.model_config(self.tokens * 64)  # validates variant, embed, heads (before any feature is extracted)

    def model_config(self, feature_dim: int) -> GenDetConfig:
        return GenDetConfig(feature_dim=feature_dim, dim=self.dim, heads=self.heads, tokens=self.tokens,
                            embed=self.embed, margin=self.margin, alpha=self.alpha, variant=self.variant)


# --- one epoch of each phase --------------------------------------------------------------------


@contextlib.contextmanager
def frozen(*modules: nn.Module):
    """Stop gradients into `modules` (they still pass gradients through) and put them in eval mode."""
    saved = [(p, p.requires_grad) for m in modules for p in m.parameters()]
    modes = [(m, m.training) for m in modules]
    for m in modules:
        m.requires_grad_(False).eval()
    try:
        yield
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)
        for m, mode in modes:
            m.train(mode)


def teacher_epoch(model: GenDet, opt, x, labels, batch_size, gen) -> float:
    """Teacher pretraining: cross-entropy of N_t's head on all (standardised) training features."""
    t = model.teacher
    return run_epoch(t, opt, len(x), batch_size, gen, lambda i: L.teacher_loss(t.logits(t(x[i])), labels[i]))


def student_real_epoch(model: GenDet, opt, real, batch_size, gen) -> float:
    """Stage a (eq. 1): the student imitates the frozen teacher on real features."""
    def step(i):
        with torch.no_grad():
            z_t = model.teacher(real[i])
        return L.real_student_loss(z_t, model.student(real[i]))

    with frozen(model.teacher):
        return run_epoch(model.student, opt, len(real), batch_size, gen, step)


def student_fake_epoch(model: GenDet, opt, fake, batch_size, gen, augment: bool) -> float:
    """Stage b (eq. 2): the student moves away from the teacher on (augmented) fakes; returns the
    unweighted L_dis^f, optimises alpha * L_dis^f. Teacher and augmenter frozen."""
    alpha, margin = model.cfg.alpha, model.cfg.margin
    raw: list[float] = []

    def step(i):
        with torch.no_grad():
            x = model.augmenter(fake[i]) if augment else fake[i]
            z_t = model.teacher(x)
        loss = L.fake_margin_loss(z_t, model.student(x), margin)
        raw.append(loss.item() * len(i))
        return alpha * loss

    with frozen(model.teacher, model.augmenter):
        run_epoch(model.student, opt, len(fake), batch_size, gen, step)
    return sum(raw) / max(len(fake), 1)


def augmenter_epoch(model: GenDet, opt, fake, batch_size, gen) -> float:
    """Stage c (eq. 3): the augmenter makes fakes whose teacher-student discrepancy is small."""
    def step(i):
        g = model.augmenter(fake[i])
        return L.augmenter_loss(model.teacher(g), model.student(g))

    with frozen(model.teacher, model.student):
        return run_epoch(model.augmenter, opt, len(fake), batch_size, gen, step)


@torch.no_grad()
def all_discrepancies(model: GenDet, x: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """The teacher-student discrepancies of standardised features x, in eval mode."""
    model.eval()
    return torch.cat([model.discrepancy(x[s : s + batch_size]) for s in range(0, len(x), batch_size)])


def classifier_epoch(model: GenDet, opt, disc, labels, batch_size, gen) -> float:
    """Eq. 4: cross-entropy of N_c on the (fixed) discrepancies."""
    c = model.classifier
    return run_epoch(c, opt, len(disc), batch_size, gen, lambda i: L.classifier_loss(c(disc[i]), labels[i]))


# --- the whole schedule -------------------------------------------------------------------------


def _adamw(module: nn.Module, lr: float, weight_decay: float) -> torch.optim.AdamW:
    return torch.optim.AdamW(module.parameters(), lr=lr, weight_decay=weight_decay)


def _finished(model: GenDet) -> GenDet:
    model.zero_grad(set_to_none=True)
    return model.requires_grad_(False).eval()


def fit_gendet(cfg: GenDetTrainConfig, features: torch.Tensor, labels: torch.Tensor,
               log: Callable[..., None] | None = None) -> tuple[GenDet, dict[str, list[float]]]:
    """Train GenDet on features (N, D) with labels (N,) (0 fake, 1 real). Returns the model (eval mode, on
    cfg.device) and the per-epoch mean loss of every phase. Deterministic for a given cfg.seed."""
    log = log or (lambda **row: None)
    labels = labels.long()
    if set(labels.unique().tolist()) != {0, 1}:
        raise DataError(f"GenDet needs real and fake training features; got labels {sorted(set(labels.tolist()))}")
    gen = seed_everything(cfg.seed)
    device = torch.device(cfg.device)
    model = GenDet(cfg.model_config(features.shape[1]))
    model.fit_standardisation(features)
    model.to(device)
    mc = model.cfg
    with torch.no_grad():
        xs = model.standardise(features.to(device))
    labels = labels.to(device)
    real, fake = xs[labels == REAL], xs[labels == FAKE]
    curves: dict[str, list[float]] = {"teacher": []}
    bs, wd = cfg.batch_size, cfg.weight_decay

    # Teacher (cross-entropy), then frozen for good
    opt = _adamw(model.teacher, cfg.lr_teacher, wd)
    for epoch in range(cfg.teacher_epochs):
        curves["teacher"].append(teacher_epoch(model, opt, xs, labels, bs, gen))
        log(phase="teacher", epoch=epoch, loss=curves["teacher"][-1])
    model.teacher.requires_grad_(False).eval()
    if not mc.uses_student:
        return _finished(model), curves

    # Rotations of stages a (eq. 1), b (eq. 2), c (eq. 3)
    # stages a and b keep separate AdamW states for the student: a shared one lets stage a's momentum and
    # second moments swamp stage b's alpha-weighted gradients (the loss of b then rises while it is trained)
    opt_a, opt_b = _adamw(model.student, cfg.lr_student, wd), _adamw(model.student, cfg.lr_student, wd)
    opt_g = _adamw(model.augmenter, cfg.lr_augmenter, wd)
    curves["student_real"] = []
    if mc.uses_fakes:
        curves["student_fake"] = []
    if mc.uses_augmenter:
        curves["augmenter"] = []
    for rotation in range(cfg.rotations):
        for epoch in range(cfg.stage_epochs):
            curves["student_real"].append(student_real_epoch(model, opt_a, real, bs, gen))
            log(phase="student_real", rotation=rotation, epoch=epoch, loss=curves["student_real"][-1])
        if mc.uses_fakes:
            for epoch in range(cfg.stage_epochs):
                loss = student_fake_epoch(model, opt_b, fake, bs, gen, augment=mc.uses_augmenter)
                curves["student_fake"].append(loss)
                log(phase="student_fake", rotation=rotation, epoch=epoch, loss=loss)
        if mc.uses_augmenter:
            for epoch in range(cfg.stage_epochs):
                curves["augmenter"].append(augmenter_epoch(model, opt_g, fake, bs, gen))
                log(phase="augmenter", rotation=rotation, epoch=epoch, loss=curves["augmenter"][-1])
    model.student.requires_grad_(False)
    model.augmenter.requires_grad_(False)

    # Classifier on the discrepancies (eq. 4)
    disc = all_discrepancies(model, xs)
    model.classifier.fit_standardisation(disc)
    opt_c = _adamw(model.classifier, cfg.lr_classifier, wd)
    curves["classifier"] = []
    for epoch in range(cfg.classifier_epochs):
        curves["classifier"].append(classifier_epoch(model, opt_c, disc, labels, bs, gen))
        log(phase="classifier", epoch=epoch, loss=curves["classifier"][-1])
    return _finished(model), curves


@torch.no_grad()
def score_features(model: GenDet, features: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    """p_fake of raw (unstandardised) features, on the CPU."""
    device = model.feature_mean.device
    parts = [model.score(features[s : s + batch_size].to(device)).cpu() for s in range(0, len(features), batch_size)]
    return torch.cat(parts) if parts else torch.empty(0)


# --- the stage ----------------------------------------------------------------------------------


@register_stage("gendet", GenDetTrainConfig)
def run_gendet(cfg: GenDetTrainConfig) -> StageResult:
    # Setup: features of the train / val splits
    t0 = time.time()
    out = Path(cfg.out)
    data, feature_dim = cached_features(cfg.data, cfg.backbone, cfg.backbone_path, cfg.cache, cfg.device)
    x, y, _ = data["train"]
    t_features = time.time() - t0

    # Train
    log = RunLogger(out, progress=False, fresh=True, tensorboard=False)
    try:
        log(phase="setup", train=len(y), val=len(data["val"][1]) if "val" in data else 0, feature_dim=feature_dim,
            config=dataclasses.asdict(cfg))
        model, curves = fit_gendet(cfg, x, y, log)
        metrics = evaluate(lambda f: score_features(model, f), data)
        log(phase="eval", **{f"{s}_{k}": v for s, m in metrics.items() for k, v in m.items()})
    finally:
        log.close()

    # Save
    metrics["curves"] = curves
    meta = {"seed": cfg.seed, "feature_seconds": round(t_features, 2), "seconds": round(time.time() - t0, 2),
            "train_size": len(y)}
    detector = GenDetDetector(f"gendet-{cfg.variant}", model.cpu(), cfg.backbone, cfg.backbone_path)
    detector.save_pretrained(out, meta=meta, json_files={"metrics.json": metrics}, train=dataclasses.asdict(cfg))
    return StageResult.of_run(out, split_metrics(metrics))
