"""Distances between sets of image features (rows), for generation quality.

Named for what they are: a Frechet distance or kernel distance on the features of
whichever backbone produced them. "FID"/"KID" mean Inception-v3 features, which
this project does not have offline.
"""

from __future__ import annotations

import numpy as np


def _features(x) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] < 2:
        raise ValueError(f"need a (n >= 2, d) feature matrix, got shape {x.shape}")
    return x


def _sqrtm_psd(a: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((a + a.T) / 2)
    return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(a, b) -> float:
    """||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2) between Gaussians
    fitted to the two feature sets."""
    a, b = _features(a), _features(b)
    mu = a.mean(0) - b.mean(0)
    sa, sb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    ra = _sqrtm_psd(sa)
    cross = _sqrtm_psd(ra @ sb @ ra)
    return float(mu @ mu + np.trace(sa) + np.trace(sb) - 2 * np.trace(cross))


def kernel_distance(a, b, subsets: int = 20, subset_size: int = 100, seed: int = 0) -> tuple[float, float]:
    """Unbiased squared MMD with the cubic polynomial kernel (x.y/d + 1)^3, averaged over
    random subsets: (mean, std)."""
    a, b = _features(a), _features(b)
    m = min(subset_size, len(a), len(b))
    d = a.shape[1]
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(subsets):
        x, y = a[rng.choice(len(a), m, replace=False)], b[rng.choice(len(b), m, replace=False)]
        kxx, kyy, kxy = ((x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3)
        off = m * (m - 1)
        vals.append((kxx.sum() - np.trace(kxx)) / off + (kyy.sum() - np.trace(kyy)) / off - 2 * kxy.mean())
    return float(np.mean(vals)), float(np.std(vals))


def mean_pairwise_cosine(x) -> float:
    """Mean cosine similarity over distinct pairs (lower = more diverse)."""
    x = _features(x)
    x = x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)
    g = x @ x.T
    n = len(x)
    return float((g.sum() - np.trace(g)) / (n * (n - 1)))


def nearest_centroid_accuracy(x, labels, ref, ref_labels) -> tuple[float, float]:
    """(top-1 accuracy, chance): each row of `x` is assigned the class whose mean `ref` row it is
    closest to by cosine; chance is one over the number of classes. Prompt adherence, when `x` are
    images generated from a class's captions and `ref` that class's real images."""
    x, ref = _features(x), _features(ref)
    labels, ref_labels = np.asarray(labels), np.asarray(ref_labels)
    if len(labels) != len(x) or len(ref_labels) != len(ref):
        raise ValueError("one label per feature row")
    classes = np.unique(ref_labels)
    if not np.isin(labels, classes).all():
        raise ValueError("every generated image's class needs real images")
    cent = np.stack([ref[ref_labels == c].mean(0) for c in classes])
    cent /= np.linalg.norm(cent, axis=1, keepdims=True).clip(1e-12)
    xn = x / np.linalg.norm(x, axis=1, keepdims=True).clip(1e-12)
    pred = classes[np.argmax(xn @ cent.T, axis=1)]
    return float(np.mean(pred == labels)), 1.0 / len(classes)
