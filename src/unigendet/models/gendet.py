"""GenDet (Zhu et al.): teacher-student discrepancy detection on frozen features.

Four small networks sit on a frozen backbone's pooled feature x (B, D); each is one pre-norm
transformer block (1 layer, 4 heads, MLP ratio 4, width `dim`; the paper uses 196):

    teacher N_t     block + a 2-way head (trained first with cross-entropy, then frozen)
    student N_s     block, same shape as the teacher's block
    augmenter G     block + a zero-initialised projection back to feature space, residual:
                    G(x) = x + proj(block(x)), so it starts as the identity
    classifier N_c  block + a 2-way head on the discrepancy (z_t - z_s)^2 (eqs 4, 5)

Tokens (the paper, on CLIP features, does not say): `embed="project"` (default) maps the pooled
vector with a learned Linear(D -> T * dim) to T tokens; `embed="split"` cuts it into T contiguous
chunks of D/T embedded by one shared Linear(D/T -> dim). Both add learned positions. z = N(x) is
the block's output sequence (B, T, dim) after a final LayerNorm. Features are standardised with
training-set statistics (buffers `feature_mean` / `feature_std`) before everything, and the
classifier standardises the discrepancy with its own training-set statistics (`disc_mean` /
`disc_std`): a pre-norm block is otherwise blind to the discrepancy's overall magnitude, the signal.

Labels everywhere: 0 = fake, 1 = real; heads output 2 logits in that order, so p_fake = softmax[:, 0].
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .gendet_losses import discrepancy

EMBEDS = ("project", "split")
VARIANTS = ("teacher", "ts-real", "ts-fakes", "full")
"""The paper's ablation rows (Tables 1-2): teacher only; teacher-student AD on real features only;
TS-AD with fakes (eq. 2 on raw fake features, no augmenter); full GenDet (with the augmenter)."""


@dataclass(frozen=True)
class GenDetConfig:
    feature_dim: int = 1280  # the backbone's pooled feature size (EfficientNet-Lite0: 1280)
    dim: int = 196  # transformer width (paper: 196)
    heads: int = 4
    tokens: int = 8  # T, the sequence length of every block
    embed: str = "project"  # "project": Linear(D -> T * dim); "split": T chunks of D/T, Linear(D/T -> dim)
    mlp_ratio: float = 4.0
    margin: float = 2.0  # M in eq. 2
    alpha: float = 0.1  # weight of eq. 2
    variant: str = "full"

    def __post_init__(self):
        if self.variant not in VARIANTS:
            raise ValueError(f"variant {self.variant!r} is not one of {VARIANTS}")
        if self.embed not in EMBEDS:
            raise ValueError(f"embed {self.embed!r} is not one of {EMBEDS}")
        if self.embed == "split" and self.feature_dim % self.tokens:
            raise ValueError(f"tokens={self.tokens} does not divide feature_dim={self.feature_dim}")
        if self.dim % self.heads:
            raise ValueError(f"heads={self.heads} does not divide dim={self.dim}")

    @property
    def uses_student(self) -> bool:
        return self.variant != "teacher"

    @property
    def uses_fakes(self) -> bool:
        return self.variant in ("ts-fakes", "full")

    @property
    def uses_augmenter(self) -> bool:
        return self.variant == "full"

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> GenDetConfig:
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - names
        if unknown:
            raise ValueError(f"unknown GenDetConfig fields {sorted(unknown)}")
        return cls(**d)


# --- blocks -------------------------------------------------------------------------------------


class Block(nn.Module):
    """Pre-norm transformer block: x + Attn(LN(x)), then x + MLP(LN(x)) (GELU, hidden = ratio * dim)."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).view(b, t, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(b, t, d)
        x = x + self.proj(attn)
        return x + self.mlp(self.norm2(x))


class Embed(nn.Module):
    """(B, in_dim) vector -> (B, T, dim) tokens with learned positions ("project" or "split", see above)."""

    def __init__(self, in_dim: int, dim: int, tokens: int, mode: str):
        super().__init__()
        self.mode, self.tokens = mode, tokens
        self.proj = nn.Linear(in_dim, tokens * dim) if mode == "project" else nn.Linear(in_dim // tokens, dim)
        self.pos = nn.Parameter(torch.randn(1, tokens, dim) * 0.02)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        h = self.proj(x).view(b, self.tokens, -1) if self.mode == "project" else self.proj(x.view(b, self.tokens, -1))
        return h + self.pos


class FeatureTransformer(nn.Module):
    """(B, D) standardised feature -> z (B, T, dim): Embed, one Block, final LayerNorm."""

    def __init__(self, cfg: GenDetConfig):
        super().__init__()
        self.embed = Embed(cfg.feature_dim, cfg.dim, cfg.tokens, cfg.embed)
        self.block = Block(cfg.dim, cfg.heads, cfg.mlp_ratio)
        self.norm = nn.LayerNorm(cfg.dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(self.block(self.embed(x)))


class Teacher(FeatureTransformer):
    """N_t: z_t = block(x) (B, T, dim); `logits(z)` is the real/fake head on the token mean."""

    def __init__(self, cfg: GenDetConfig):
        super().__init__(cfg)
        self.head = nn.Linear(cfg.dim, 2)

    def logits(self, z: torch.Tensor) -> torch.Tensor:
        return self.head(z.mean(dim=1))


class Augmenter(nn.Module):
    """G: (B, D) -> (B, D) in standardised feature space, residual, the identity at initialisation."""

    def __init__(self, cfg: GenDetConfig):
        super().__init__()
        self.cfg = cfg
        self.net = FeatureTransformer(cfg)
        if cfg.embed == "project":
            self.out = nn.Linear(cfg.tokens * cfg.dim, cfg.feature_dim)
        else:
            self.out = nn.Linear(cfg.dim, cfg.feature_dim // cfg.tokens)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.net(x)
        delta = self.out(h.flatten(1)) if self.cfg.embed == "project" else self.out(h).flatten(1)
        return x + delta


class Classifier(nn.Module):
    """N_c: standardised discrepancy (B, T, dim) -> 2 logits (block + linear head)."""

    def __init__(self, cfg: GenDetConfig):
        super().__init__()
        self.embed = nn.Linear(cfg.dim, cfg.dim)
        self.pos = nn.Parameter(torch.randn(1, cfg.tokens, cfg.dim) * 0.02)
        self.block = Block(cfg.dim, cfg.heads, cfg.mlp_ratio)
        self.norm = nn.LayerNorm(cfg.dim)
        self.head = nn.Linear(cfg.dim, 2)
        self.register_buffer("disc_mean", torch.zeros(cfg.tokens, cfg.dim))
        self.register_buffer("disc_std", torch.ones(cfg.tokens, cfg.dim))

    @torch.no_grad()
    def fit_standardisation(self, d: torch.Tensor) -> None:
        self.disc_mean.copy_(d.mean(dim=0))
        self.disc_std.copy_(d.std(dim=0).clamp_min(1e-6))

    def forward(self, d: torch.Tensor) -> torch.Tensor:
        h = self.embed((d - self.disc_mean) / self.disc_std) + self.pos
        return self.head(self.norm(self.block(h)).mean(dim=1))


# --- the model ----------------------------------------------------------------------------------


class GenDet(nn.Module):
    """All four networks plus the feature standardisation; `score(x)` is eq. 5's p_fake."""

    def __init__(self, cfg: GenDetConfig):
        super().__init__()
        self.cfg = cfg
        self.teacher = Teacher(cfg)
        self.student = FeatureTransformer(cfg)
        self.augmenter = Augmenter(cfg)
        self.classifier = Classifier(cfg)
        self.register_buffer("feature_mean", torch.zeros(cfg.feature_dim))
        self.register_buffer("feature_std", torch.ones(cfg.feature_dim))

    @torch.no_grad()
    def fit_standardisation(self, features: torch.Tensor) -> None:
        """Set the feature mean / std from training features (call once, before training)."""
        self.feature_mean.copy_(features.mean(dim=0))
        self.feature_std.copy_(features.std(dim=0).clamp_min(1e-6))

    def standardise(self, features: torch.Tensor) -> torch.Tensor:
        """(B, D) raw features -> (B, D) standardised features, the networks' input."""
        if features.ndim != 2 or features.shape[1] != self.cfg.feature_dim:
            raise ValueError(f"expected features (B, {self.cfg.feature_dim}), got {tuple(features.shape)}")
        return (features - self.feature_mean) / self.feature_std

    def discrepancy(self, x: torch.Tensor) -> torch.Tensor:
        """Eq. 4: D = (N_t(x) - N_s(x))^2 element-wise, (B, T, dim), for standardised features x."""
        return discrepancy(self.teacher(x), self.student(x))

    def score(self, features: torch.Tensor) -> torch.Tensor:
        """p_fake (B,) for raw features. Eq. 5, Y = N_c((N_t(x) - N_s(x))^2), without the augmenter;
        the teacher-only variant uses the teacher's own head."""
        x = self.standardise(features)
        if not self.cfg.uses_student:
            logits = self.teacher.logits(self.teacher(x))
        else:
            logits = self.classifier(self.discrepancy(x))
        return logits.softmax(dim=-1)[:, 0]

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.score(features)
