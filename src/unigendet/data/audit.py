"""The shortcut guard: can the label be read off metadata alone?

For every file we measure what a detector should *not* be able to use: width,
height, file size, format, JPEG quality (from the quantisation tables) and border
statistics (how the outer frame differs from the inside). A shallow classifier is
cross-validated on these features; if its balanced accuracy is well above chance
the set has a shortcut and the audit fails.

JPEG history that survives in the pixels of re-encoded files is checked apart: the
audit fails when real images show an 8x8 block grid markedly more often than
fakes. (The other direction is not a shortcut but an artefact of the generator,
e.g. an 8x upsampling decoder, which is what a detector should find.)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .readers import read_source
from .records import Record

FEATURES = ("width", "height", "file_size", "is_jpeg", "is_png", "jpeg_quality",
            "border_mean_diff", "border_std_ratio", "border_uniformity")
# what a manifest says about the published original, before the pool re-encoded it
ORIGINAL_FEATURES = ("original_width", "original_height", "original_jpeg", "original_png", "original_webp")
GRID = 1.25  # blockiness above this: a visible 8x8 grid


@dataclass(frozen=True)
class AuditConfig:
    """`unigendet data audit`: fails (exit 1) when metadata alone separates real from fake."""

    source: str  # manifest CSV or any supported layout
    split: str = ""  # audit one split only
    threshold: float = 0.6  # the audit fails above this balanced accuracy


def jpeg_quality(img: Image.Image) -> float:
    """IJG-style quality estimate from the luminance quantisation table (0 if not JPEG)."""
    tables = getattr(img, "quantization", None)
    if not tables:
        return 0.0
    q = np.array(tables[0], dtype=np.float64)
    std = np.array([16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
                    14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113,
                    92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], dtype=np.float64)
    scale = 100.0 * np.mean(q / std)
    return float(np.clip((200 - scale) / 2 if scale <= 100 else 5000 / scale, 1, 100))


def blockiness(grey: np.ndarray) -> float:
    """Mean jump across 8-px column/row boundaries over the mean jump elsewhere (1 = no grid)."""
    dx = np.abs(np.diff(grey, axis=1))
    dy = np.abs(np.diff(grey, axis=0))
    on_x, on_y = dx[:, 7::8], dy[7::8, :]
    off = (dx.sum() - on_x.sum() + dy.sum() - on_y.sum()) / max(dx.size - on_x.size + dy.size - on_y.size, 1)
    on = (on_x.sum() + on_y.sum()) / max(on_x.size + on_y.size, 1)
    return float(on / max(off, 1e-6))


def border_stats(grey: np.ndarray, width: int = 3) -> tuple[float, float, float]:
    h, w = grey.shape
    if h <= 4 * width or w <= 4 * width:
        return 0.0, 1.0, 0.0
    frame = np.concatenate([grey[:width].ravel(), grey[-width:].ravel(), grey[:, :width].ravel(),
                            grey[:, -width:].ravel()])
    inner = grey[2 * width:-2 * width, 2 * width:-2 * width]
    uniform = float(np.mean([grey[:width].std(), grey[-width:].std(), grey[:, :width].std(), grey[:, -width:].std()]))
    return float(frame.mean() - inner.mean()), float(frame.std() / max(inner.std(), 1e-6)), uniform


def file_features(path: str | os.PathLike) -> tuple[list[float], float]:
    """The metadata features of one file, and its pixel blockiness."""
    path = Path(path)
    with Image.open(path) as img:
        fmt = img.format or ""
        q = jpeg_quality(img) if fmt == "JPEG" else 0.0
        grey = np.asarray(img.convert("L"), dtype=np.float64)
        w, h = img.size
    return [w, h, path.stat().st_size, fmt == "JPEG", fmt == "PNG", q, *border_stats(grey)], blockiness(grey)


@dataclass
class AuditResult:
    accuracy: float  # cross-validated balanced accuracy of the metadata classifier
    chance: float
    threshold: float
    n: int
    top_features: list[tuple[str, float]]  # single-feature balanced accuracies, best first
    grid_real: float  # fraction of reals with a visible 8x8 grid
    grid_fake: float
    grouped: bool = False  # folds kept each group (crops of one original) on one side

    @property
    def separating(self) -> list[tuple[str, float]]:
        """Single features that alone read the label well above chance."""
        return [(n, a) for n, a in self.top_features if a > self.threshold]

    @property
    def jpeg_history_leak(self) -> bool:
        return self.grid_real > self.grid_fake + 0.1

    @property
    def passed(self) -> bool:
        return self.accuracy <= self.threshold and not self.jpeg_history_leak

    def report(self) -> str:
        verdict = "PASS"
        if self.accuracy > self.threshold:
            verdict = "FAIL: the label is readable from metadata (a shortcut)"
        elif self.jpeg_history_leak:
            verdict = "FAIL: real images carry a JPEG block grid that fakes lack (a shortcut)"
        feats = ", ".join(f"{n} {a:.2f}" for n, a in self.top_features[:4])
        sep = ", ".join(f"{n} {a:.2f}" for n, a in self.separating) or "none"
        return (f"metadata audit on {self.n} images{' (folds by group)' if self.grouped else ''}: balanced accuracy "
                f"{self.accuracy:.3f} (chance {self.chance:.2f}, fail above {self.threshold:.2f}) -> {verdict}\n"
                f"  best single features: {feats}\n"
                f"  features that separate the classes on their own: {sep}\n"
                f"  8x8 block grid: {self.grid_real:.1%} of reals, {self.grid_fake:.1%} of fakes")


def audit(records: list[Record], threshold: float = 0.6, folds: int = 5, seed: int = 0) -> AuditResult:
    """Cross-validated balanced accuracy of a gradient-boosted tree classifier on metadata."""
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold, cross_val_predict

    feats = [file_features(r.path) for r in records]
    X = np.array([f for f, _ in feats], dtype=np.float64)
    names = list(FEATURES)
    if any(r.original_format or r.original_width for r in records):
        X = np.concatenate([X, np.array([original_features(r) for r in records])], axis=1)
        names += ORIGINAL_FEATURES
    grid = np.array([b > GRID for _, b in feats])
    y = np.array([r.label for r in records])
    if len(set(y.tolist())) < 2:
        raise ValueError("the audit needs both real and fake images")
    folds = max(2, min(folds, int(np.bincount(y).min())))
    groups = [r.group_key for r in records]
    grouped = any(r.group for r in records) and len(set(groups)) >= 2
    if grouped:  # crops of one original never on both sides of a fold
        folds = min(folds, len(set(groups)))
        cv = list(StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed).split(X, y, groups))
    else:
        cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    # Leaves small enough that a shortcut in a set of a few dozen files can still be split on
    leaf = int(np.clip(len(y) // (4 * folds), 2, 20))
    clf = HistGradientBoostingClassifier(max_depth=3, max_iter=100, min_samples_leaf=leaf, random_state=seed)
    acc = balanced_accuracy_score(y, cross_val_predict(clf, X, y, cv=cv))
    singles = []
    for j, name in enumerate(names):
        if np.ptp(X[:, j]) == 0:
            singles.append((name, 0.5))
            continue
        pred = cross_val_predict(HistGradientBoostingClassifier(max_depth=2, max_iter=50, min_samples_leaf=leaf,
                                                                random_state=seed),
                                 X[:, [j]], y, cv=cv)
        singles.append((name, float(balanced_accuracy_score(y, pred))))
    singles.sort(key=lambda t: -t[1])
    real = y == 1
    return AuditResult(float(acc), 0.5, threshold, len(records), singles, float(grid[real].mean()),
                       float(grid[~real].mean()), grouped)


def original_features(r: Record) -> list[float]:
    fmt = r.original_format.lower()
    return [r.original_width, r.original_height, fmt in ("jpeg", "jpg"), fmt == "png", fmt == "webp"]


def audit_source(cfg: AuditConfig) -> AuditResult:
    """`audit` of the records `cfg.source` lists (those of `cfg.split` when given)."""
    records = read_source(cfg.source, strict=True)
    return audit([r for r in records if not cfg.split or r.split == cfg.split], threshold=cfg.threshold)
