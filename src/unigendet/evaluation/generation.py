"""Generation quality: generated images' backbone features, and the distances
from held-out real images (Frechet / kernel distance named for the backbone),
prompt adherence, diversity within one prompt; the noise images of the ceiling."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..images import tensor_to_pil
from ..metrics import frechet_distance, kernel_distance, mean_pairwise_cosine, nearest_centroid_accuracy


@torch.no_grad()
def image_features(images: torch.Tensor, backbone, preprocess, batch: int = 32) -> np.ndarray:
    """Backbone features of (N, 3, H, W) images in [-1, 1], through the backbone's own preprocessing."""
    feats = []
    for start in range(0, len(images), batch):
        x = torch.stack([preprocess(tensor_to_pil(im)) for im in images[start:start + batch]])
        feats.append(backbone(x.to(backbone.device)).float().cpu())
    return torch.cat(feats).numpy()


def noise_images(n: int, size: int, seed: int = 0) -> torch.Tensor:
    """(n, 3, size, size) independent per-pixel colour noise in [-1, 1]: what an untrained
    generator draws, the ceiling of the distances."""
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 3, size, size, generator=g) * 0.5).clamp(-1, 1)


def generation_report(generated: np.ndarray, real: np.ndarray, backbone: str,
                      groups: Sequence[int] | None = None, classes: Sequence | None = None,
                      real_classes: Sequence | None = None) -> dict[str, float]:
    """Distances from real features; prompt adherence when each image's class (the source photo its
    prompt describes) and the reals' classes are given; diversity (mean pairwise cosine within
    each prompt group, when several images share a prompt)."""
    out = {f"frechet_{backbone}": frechet_distance(generated, real)}
    if classes is not None and real_classes is not None:
        out["adherence"], out["chance"] = nearest_centroid_accuracy(generated, classes, real, real_classes)
    out[f"kernel_{backbone}"], out[f"kernel_{backbone}_std"] = kernel_distance(generated, real)
    if groups is not None:
        g = np.asarray(groups)
        sims = [mean_pairwise_cosine(generated[g == k]) for k in np.unique(g) if (g == k).sum() > 1]
        if sims:
            out["within_prompt_cosine"] = float(np.mean(sims))
    out["n_generated"], out["n_real"] = int(len(generated)), int(len(real))
    return out
