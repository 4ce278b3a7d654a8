"""GenDet losses (Zhu et al., section 3), pure functions.

z_t, z_s are teacher and student outputs of one batch, any shape (B, ...); a sample's output is
read as one flat vector. Labels: 0 = fake, 1 = real.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _flat(z: torch.Tensor) -> torch.Tensor:
    return z.float().reshape(z.shape[0], -1)


def teacher_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Teacher pretraining (section 3.2): cross-entropy of the real/fake head."""
    return F.cross_entropy(logits.float(), labels)


def real_student_loss(z_t: torch.Tensor, z_s: torch.Tensor) -> torch.Tensor:
    """Eq. 1, L_dis^r = 1/B sum_b (N_t(x^r) - N_s(x^r))^2 on real features.

    The squared difference of two vectors is averaged over its elements (a constant factor on the
    paper's sum), then over the batch: the mean squared error."""
    return (_flat(z_t) - _flat(z_s)).pow(2).mean()


def normalised_distance(z_t: torch.Tensor, z_s: torch.Tensor) -> torch.Tensor:
    """|| z_t/||z_t|| - z_s/||z_s|| ||^2 per sample (B,), in [0, 4]; equals 2 - 2 cos(z_t, z_s)."""
    a, b = F.normalize(_flat(z_t), dim=1), F.normalize(_flat(z_s), dim=1)
    return (a - b).pow(2).sum(dim=1)


def fake_margin_loss(z_t: torch.Tensor, z_s: torch.Tensor, margin: float = 2.0) -> torch.Tensor:
    """Eq. 2, L_dis^f = [M - || z_t/||z_t|| - z_s/||z_s|| ||^2]_+ on (augmented) fake features,
    averaged over the batch. Zero once the normalised distance reaches the margin M (M = 2:
    the outputs are orthogonal or further). The trainer weights it by alpha."""
    return (margin - normalised_distance(z_t, z_s)).clamp_min(0).mean()


def augmenter_loss(z_t: torch.Tensor, z_s: torch.Tensor) -> torch.Tensor:
    """Eq. 3, L_dis^g = 1/B sum_b (N_t(G(x^f)) - N_s(G(x^f)))^2, minimised over the augmenter G
    (teacher and student frozen): G looks for fake features whose discrepancy is small."""
    return (_flat(z_t) - _flat(z_s)).pow(2).mean()


def discrepancy(z_t: torch.Tensor, z_s: torch.Tensor) -> torch.Tensor:
    """Eq. 4, D = (z_t - z_s)^2 element-wise, the classifier's input (same shape as z)."""
    return (z_t.float() - z_s.float()).pow(2)


def classifier_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Eq. 4 training target: cross-entropy of N_c(D) against the real/fake labels."""
    return F.cross_entropy(logits.float(), labels)
