"""The unified generation-detection model (BAGEL-style MoT + UniGenDet heads).

Read top to bottom: embeddings of the three token kinds, the two-expert decoder,
then the heads. Losses live in `unigendet.unified.losses`, the flow in `unigendet.unified.flow`,
batch construction in `unigendet.unified.packing`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from .config import ModelConfig
from .layers import PositionTable, TimestepEmbedder
from .mot import KVCache, MoTModel
from .packing import PackedBatch
from .vit import MLPConnector, SiglipNaViT


class LanguageModel(nn.Module):
    """`language_model.model` (decoder) and `language_model.lm_head`."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.model = MoTModel(cfg.llm)
        self.lm_head = nn.Linear(cfg.llm.hidden_size, cfg.llm.vocab_size, bias=False)
        if cfg.llm.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight


class TokenStandardizer(nn.Module):
    """Per-channel standardisation of a frozen encoder's tokens before the connector; its mean
    and std are fitted once on training tokens (`fit`) and saved with the weights."""

    def __init__(self, dim: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def fit(self, tokens: torch.Tensor) -> None:
        rows = tokens.reshape(-1, tokens.shape[-1]).float()
        self.mean.copy_(rows.mean(0))
        self.std.copy_(rows.std(0).clamp(min=1e-3))
        self.fitted.fill_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)


def fake_cls_head(d: int) -> nn.Sequential:
    """UniGenDet detection head: LayerNorm, Linear d->d/4, ReLU, Linear -> 2 (0 fake, 1 real)."""
    return nn.Sequential(nn.LayerNorm(d), nn.Linear(d, d // 4), nn.ReLU(), nn.Linear(d // 4, 2))


def diga_projector(d: int) -> nn.Sequential:
    """DIGA projector on generator hidden states: Linear d->4d, GELU, Linear 4d->d."""
    return nn.Sequential(nn.Linear(d, 4 * d), nn.GELU(), nn.Linear(4 * d, d))


@dataclass
class ModelOutput:
    hidden: torch.Tensor  # (L, d) after the expert-specific final norms
    layers: dict[int, torch.Tensor]  # raw hidden states after the captured layers
    caches: list[KVCache]  # per sample, the cache extended with this batch


class UniGenDet(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.config = cfg
        d = cfg.llm.hidden_size
        lat = cfg.latent
        self.language_model = LanguageModel(cfg)
        # understanding path: ViT -> connector, plus a fixed sin-cos table at LLM width
        self.vit_model = None if cfg.vit.frozen else SiglipNaViT(cfg.vit)  # a frozen encoder lives outside
        self.vit_norm = TokenStandardizer(cfg.vit.encoder_dim) if cfg.vit.frozen else None
        self.connector = MLPConnector(cfg.vit.encoder_dim if cfg.vit.frozen else cfg.vit.hidden_size, d)
        self.vit_pos_embed = PositionTable(d, cfg.vit.max_patches_per_side)
        # generation path: latent patches in and velocities out
        self.vae2llm = nn.Linear(lat.token_dim, d)
        self.llm2vae = nn.Linear(d, lat.token_dim)
        self.time_embedder = TimestepEmbedder(d, lat.timestep_freq_dim)
        self.latent_pos_embed = PositionTable(d, lat.max_latent_side)
        # UniGenDet heads
        self.fake_cls_head = fake_cls_head(d) if cfg.cls_head else None
        self.diga_mlp = diga_projector(d) if cfg.projector else None
        self.reset_parameters()

    def reset_parameters(self) -> None:
        std = 0.02
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, std=std)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Embedding):
                nn.init.normal_(m.weight, std=std)
        nn.init.zeros_(self.llm2vae.weight)  # BAGEL: the velocity head starts at zero
        nn.init.zeros_(self.llm2vae.bias)
        # UniGenDet adds its heads with PyTorch's default init; a 0.02-std head would start
        # with gradients ~1000x smaller than the language loss's and barely learn
        for head in (self.fake_cls_head, self.diga_mlp):
            for m in head.modules() if head is not None else ():
                if hasattr(m, "reset_parameters") and m is not head:
                    m.reset_parameters()

    # -- embeddings --------------------------------------------------------
    def embed(self, batch: PackedBatch) -> torch.Tensor:
        """Embed every token of the packed sequence into (L, d)."""
        lm = self.language_model.model
        dtype = lm.embed_tokens.weight.dtype
        x = lm.embed_tokens.weight.new_zeros(batch.length, self.config.llm.hidden_size)
        x[batch.text_index] = lm.embed_tokens(batch.text_ids)
        if batch.vit_index.numel():
            vit = batch.vit_patches.to(dtype)  # a frozen encoder's tokens, or patches the ViT reads
            if self.vit_model is not None:
                vit = self.vit_model(vit, batch.vit_pos_ids, batch.vit_lens)
            else:
                vit = self.vit_norm(vit)
            x[batch.vit_index] = (self.connector(vit) + self.vit_pos_embed(batch.vit_pos_ids)).to(dtype)
        if batch.latent_index.numel():
            lat = self.vae2llm(batch.latent_patches.to(dtype)) + self.time_embedder(batch.latent_t)
            x[batch.latent_index] = (lat + self.latent_pos_embed(batch.latent_pos_ids)).to(dtype)
        return x

    def forward(
        self,
        batch: PackedBatch,
        caches: list[KVCache | None] | None = None,
        capture: tuple[int, ...] = (),
    ) -> ModelOutput:
        hidden, layers, new_caches = self.language_model.model(self.embed(batch), batch, caches, capture)
        return ModelOutput(hidden, layers, new_caches)

    # -- heads -------------------------------------------------------------
    def lm_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.language_model.lm_head(hidden)

    def velocity(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.llm2vae(hidden)

    def cls_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.fake_cls_head is None:
            raise RuntimeError("this model was built without fake_cls_head")
        return self.fake_cls_head(hidden)

    def project(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.diga_mlp is None:
            raise RuntimeError("this model was built without the DIGA projector")
        return self.diga_mlp(hidden)

    # -- groups of parameters ---------------------------------------------
    def generation_parameters(self) -> list[nn.Parameter]:
        """What DIGA trains: generation expert, timestep embedder, vae2llm, llm2vae, projector."""
        gen = [p for n, p in self.language_model.named_parameters() if "_moe_gen" in n]
        heads = [self.time_embedder, self.vae2llm, self.llm2vae] + ([self.diga_mlp] if self.diga_mlp else [])
        return gen + [p for m in heads for p in m.parameters()]

    @property
    def device(self) -> torch.device:
        return self.llm2vae.weight.device

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)


UNDERSTANDING = ("vit_model.", "vit_norm.", "connector.")  # parameters of the understanding path that a swap replaces


def swap_understanding(model: UniGenDet, source: ModelConfig) -> UniGenDet:
    """A copy of `model` whose understanding path (encoder, crop side) is `source`'s: the decoder,
    the generation path and the heads keep their weights; a fresh connector (and ViT) replace the
    old ones. How a generator pre-trained with one encoder starts detection with another."""
    cfg = model.config.replace(vit=source.vit, vit_image_size=source.vit_image_size)
    new = UniGenDet(cfg).to(model.device)
    kept = {k: v for k, v in model.state_dict().items() if not k.startswith(UNDERSTANDING)}
    missing, unexpected = new.load_state_dict(kept, strict=False)
    stray = [k for k in missing if not k.startswith(UNDERSTANDING)] + list(unexpected)
    if stray:
        raise ValueError(f"cannot swap the understanding path: unmatched keys {stray[:5]}")
    return new
