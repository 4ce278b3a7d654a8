"""Generation quality: images from prompts, their backbone features, and the distances
from held-out real images (Frechet / kernel distance named for the backbone),
diversity within one prompt."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..images import tensor_to_pil
from ..inference import DEFAULT_GUIDANCE, Guidance, generate_latents
from ..metrics import frechet_distance, kernel_distance, mean_pairwise_cosine


@torch.no_grad()
def generate_images(model, codec, builder, prompts: Sequence[str], size: int | None = None, steps: int = 50,
                    shift: float = 3.0, guidance: Guidance | None = DEFAULT_GUIDANCE, seed: int = 0,
                    batch: int = 16) -> torch.Tensor:
    """(N, 3, S, S) images in [-1, 1], one per prompt; prompt i always uses noise seed (seed, i)."""
    size = size or model.config.image_size
    side = size // model.config.latent.pixels_per_token
    out = []
    for start in range(0, len(prompts), batch):
        chunk = list(prompts[start:start + batch])
        lat = [generate_latents(model, builder, [p], (side, side), steps=steps, shift=shift, guidance=guidance,
                                generator=torch.Generator().manual_seed(seed * 1_000_003 + start + j))
               for j, p in enumerate(chunk)]
        param = next(codec.parameters(), None)
        z = torch.cat(lat).to(param.device, param.dtype) if param is not None else torch.cat(lat).float().cpu()
        out.append(codec.decode(z).float().cpu())
    return torch.cat(out)


@torch.no_grad()
def image_features(images: torch.Tensor, backbone, preprocess, batch: int = 32) -> np.ndarray:
    """Backbone features of (N, 3, H, W) images in [-1, 1], through the backbone's own preprocessing."""
    feats = []
    for start in range(0, len(images), batch):
        x = torch.stack([preprocess(tensor_to_pil(im)) for im in images[start:start + batch]])
        feats.append(backbone(x.to(backbone.device)).float().cpu())
    return torch.cat(feats).numpy()


def generation_report(generated: np.ndarray, real: np.ndarray, backbone: str,
                      groups: Sequence[int] | None = None) -> dict[str, float]:
    """Distances from real features, plus diversity (mean pairwise cosine within each prompt
    group, when several images share a prompt)."""
    out = {f"frechet_{backbone}": frechet_distance(generated, real)}
    out[f"kernel_{backbone}"], out[f"kernel_{backbone}_std"] = kernel_distance(generated, real)
    if groups is not None:
        g = np.asarray(groups)
        sims = [mean_pairwise_cosine(generated[g == k]) for k in np.unique(g) if (g == k).sum() > 1]
        if sims:
            out["within_prompt_cosine"] = float(np.mean(sims))
    out["n_generated"], out["n_real"] = int(len(generated)), int(len(real))
    return out
