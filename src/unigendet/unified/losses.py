"""Loss functions (pure) and the named losses of one packed batch.

Stage weights (the paper's): GDUF = ce + mse + 0.2 * cls; DIGA = mse + 0.5 * align.

Losses of a packed batch come as (sum, count) pairs so that a step split over
micro-batches and processes can be normalised by the *global* count: the result is
then the same however the samples were distributed.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .packing import PackedBatch


def token_ce(logits: torch.Tensor, targets: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Next-token cross-entropy over the answer (or caption) tokens."""
    return F.cross_entropy(logits.float(), targets, reduction=reduction)


def cls_ce(logits: torch.Tensor, labels: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of the 2-way fake_cls_head (0 = fake, 1 = real)."""
    return F.cross_entropy(logits.float(), labels, reduction=reduction)


def flow_sq_error(v_pred: torch.Tensor, v_target: torch.Tensor) -> torch.Tensor:
    """Summed squared velocity error; divided by the element count it is the flow-matching MSE
    (the loss in the `unigendet.unified.flow` docstring)."""
    return (v_pred.float() - v_target.float()).pow(2).sum()


def alignment_loss(projected: torch.Tensor, teacher: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """DIGA / REPA alignment: 1 - cosine similarity, token by token."""
    d = 1 - F.cosine_similarity(projected.float(), teacher.float(), dim=-1)
    return d.mean() if reduction == "mean" else d.sum()


def loss_counts(batch: PackedBatch, token_dim: int) -> dict[str, int]:
    """How many terms each loss of this batch averages over (known before the forward)."""
    counts = {
        "ce": batch.ce_index.numel(),
        "mse": batch.mse_index.numel() * token_dim,
        "cls": int((batch.cls_labels >= 0).sum()),
        "align": batch.align_index.numel(),
    }
    return {k: v for k, v in counts.items() if v}


def packed_loss_sums(model, batch: PackedBatch, diga_layer: int | None = None) -> dict[str, torch.Tensor]:
    """Run the model once; the summed loss of every kind of target the batch holds.

    Keys: ``ce`` (answer tokens), ``mse`` (flow on noised latents), ``cls``
    (fake_cls_head), ``align`` (DIGA projector on the states after `diga_layer` layers).
    """
    capture = (diga_layer - 1,) if diga_layer is not None and batch.align_index.numel() else ()
    out = model(batch, capture=capture)
    sums: dict[str, torch.Tensor] = {}
    if batch.ce_index.numel():
        sums["ce"] = token_ce(model.lm_logits(out.hidden[batch.ce_index]), batch.ce_targets, "sum")
    if batch.mse_index.numel():
        sums["mse"] = flow_sq_error(model.velocity(out.hidden[batch.mse_index]), batch.mse_targets)
    known = batch.cls_labels >= 0
    if known.any():
        logits = model.cls_logits(out.hidden[batch.cls_index[known]])
        sums["cls"] = cls_ce(logits, batch.cls_labels[known], "sum")
    if capture:
        h = out.layers[diga_layer - 1][batch.align_index]
        sums["align"] = alignment_loss(model.project(h), batch.align_targets, "sum")
    return sums


def packed_losses(model, batch: PackedBatch, diga_layer: int | None = None) -> dict[str, torch.Tensor]:
    """Mean losses of one batch on its own (tests, evaluation)."""
    counts = loss_counts(batch, model.config.latent.token_dim)
    return {k: v / counts[k] for k, v in packed_loss_sums(model, batch, diga_layer).items()}
