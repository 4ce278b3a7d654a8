"""Loss functions (pure) and the named losses of one packed batch.

Stage weights (METHOD.md): GDUF = ce + mse + 0.2 * cls; DIGA = mse + 0.5 * align.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .flow import flow_loss
from .packing import PackedBatch


def token_ce(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Next-token cross-entropy over the answer (or caption) tokens."""
    return F.cross_entropy(logits.float(), targets)


def cls_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the 2-way fake_cls_head (0 = fake, 1 = real)."""
    return F.cross_entropy(logits.float(), labels)


def alignment_loss(projected: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """DIGA / REPA alignment: 1 - mean cosine similarity, token by token."""
    return 1 - F.cosine_similarity(projected.float(), teacher.float(), dim=-1).mean()


def packed_losses(model, batch: PackedBatch, diga_layer: int | None = None) -> dict[str, torch.Tensor]:
    """Run the model once and return every loss whose targets the batch holds.

    Keys: ``ce`` (answer tokens), ``mse`` (flow on noised latents), ``cls``
    (fake_cls_head), ``align`` (DIGA projector on the states after `diga_layer` layers).
    """
    capture = (diga_layer - 1,) if diga_layer is not None and batch.align_index.numel() else ()
    out = model(batch, capture=capture)
    losses: dict[str, torch.Tensor] = {}
    if batch.ce_index.numel():
        losses["ce"] = token_ce(model.lm_logits(out.hidden[batch.ce_index]), batch.ce_targets)
    if batch.mse_index.numel():
        losses["mse"] = flow_loss(model.velocity(out.hidden[batch.mse_index]), batch.mse_targets)
    known = batch.cls_labels >= 0
    if known.any():
        logits = model.cls_logits(out.hidden[batch.cls_index[known]])
        losses["cls"] = cls_ce(logits, batch.cls_labels[known])
    if capture:
        h = out.layers[diga_layer - 1][batch.align_index]
        losses["align"] = alignment_loss(model.project(h), batch.align_targets)
    return losses
