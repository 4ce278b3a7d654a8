"""Qwen2-style decoder with two experts per layer (Mixture-of-Transformers).

Every layer holds an *understanding* expert (text and ViT tokens) and a
*generation* expert (image-latent tokens, names suffixed ``_moe_gen`` as in
BAGEL). A token is normalised, projected and fed through the MLP by its own
expert, but attention runs jointly over all tokens of a sample.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from .config import LLMConfig
from .layers import RMSNorm, SwiGLU, apply_rope, rope_cos_sin
from .packing import PackedBatch


@dataclass
class KVCache:
    """Keys and values of one sample's context, per layer: (kv_heads, P, head_dim).

    Only visible splits are cached (never a noised latent block), so every later
    query may attend to the whole cache.
    """

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    next_rope: int = 0

    @property
    def length(self) -> int:
        return self.keys[0].shape[1] if self.keys else 0


def _route(x: torch.Tensor, und: torch.Tensor, gen: torch.Tensor, f_und, f_gen) -> torch.Tensor:
    """Apply f_und to rows `und` and f_gen to rows `gen` of x, in place of each other.
    index_select / index_copy_ rather than x[idx] / out[idx] = y: their backward passes are an
    index_add and a gather, where advanced indexing's is a sort-based accumulate (slow on CPU)."""
    parts = [(idx, f(x.index_select(0, idx))) for idx, f in ((und, f_und), (gen, f_gen)) if idx.numel()]
    ref = parts[0][1]  # under autocast the output dtype may differ from x's
    out = ref.new_empty((x.shape[0], *ref.shape[1:]))
    for idx, y in parts:
        out.index_copy_(0, idx, y.to(out.dtype))
    return out


class MoTAttention(nn.Module):
    def __init__(self, cfg: LLMConfig):
        super().__init__()
        d, h, kv, hd = cfg.hidden_size, cfg.num_heads, cfg.num_kv_heads, cfg.head_dim
        self.num_heads, self.num_kv_heads, self.head_dim = h, kv, hd
        for suffix in ("", "_moe_gen"):
            setattr(self, "q_proj" + suffix, nn.Linear(d, h * hd, bias=cfg.qkv_bias))
            setattr(self, "k_proj" + suffix, nn.Linear(d, kv * hd, bias=cfg.qkv_bias))
            setattr(self, "v_proj" + suffix, nn.Linear(d, kv * hd, bias=cfg.qkv_bias))
            setattr(self, "o_proj" + suffix, nn.Linear(h * hd, d, bias=False))
            setattr(self, "q_norm" + suffix, RMSNorm(hd, cfg.rms_norm_eps))
            setattr(self, "k_norm" + suffix, RMSNorm(hd, cfg.rms_norm_eps))

    def forward(
        self,
        x: torch.Tensor,
        batch: PackedBatch,
        masks: list[torch.Tensor],
        cos_sin: tuple[torch.Tensor, torch.Tensor],
        past: list[tuple[torch.Tensor, torch.Tensor] | None],
    ) -> tuple[torch.Tensor, list[tuple[torch.Tensor, torch.Tensor]]]:
        und, gen = batch.und_index, batch.gen_index
        h, kv, hd = self.num_heads, self.num_kv_heads, self.head_dim

        def project(name: str, heads: int) -> torch.Tensor:
            proj, proj_gen = getattr(self, name + "_proj"), getattr(self, name + "_proj_moe_gen")
            y = _route(x, und, gen, proj, proj_gen).view(-1, heads, hd)
            if name == "v":
                return y
            norm, norm_gen = getattr(self, name + "_norm"), getattr(self, name + "_norm_moe_gen")
            return _route(y, und, gen, norm, norm_gen)

        q, k, v = project("q", h), project("k", kv), project("v", kv)
        cos, sin = cos_sin
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)

        out, present = [], []
        start = 0
        for s, n in enumerate(batch.sample_lens):
            qs, ks, vs = (t[start : start + n].transpose(0, 1) for t in (q, k, v))
            mask = masks[s]
            if past[s] is not None:
                pk, pv = past[s]
                ks, vs = torch.cat([pk, ks], dim=1), torch.cat([pv, vs], dim=1)
                mask = torch.cat([mask.new_ones(n, pk.shape[1]), mask], dim=1)
            present.append((ks, vs))
            o = F.scaled_dot_product_attention(qs[None], ks[None], vs[None], attn_mask=mask, enable_gqa=h != kv)
            out.append(o[0].transpose(0, 1).reshape(n, h * hd))
            start += n
        attn = torch.cat(out) if out else x.new_zeros(0, h * hd)
        return _route(attn, und, gen, self.o_proj, self.o_proj_moe_gen), present


class MoTDecoderLayer(nn.Module):
    def __init__(self, cfg: LLMConfig):
        super().__init__()
        d = cfg.hidden_size
        self.self_attn = MoTAttention(cfg)
        self.mlp = SwiGLU(d, cfg.intermediate_size)
        self.mlp_moe_gen = SwiGLU(d, cfg.intermediate_size)
        self.input_layernorm = RMSNorm(d, cfg.rms_norm_eps)
        self.input_layernorm_moe_gen = RMSNorm(d, cfg.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(d, cfg.rms_norm_eps)
        self.post_attention_layernorm_moe_gen = RMSNorm(d, cfg.rms_norm_eps)

    def forward(self, x, batch, masks, cos_sin, past):
        und, gen = batch.und_index, batch.gen_index
        y = _route(x, und, gen, self.input_layernorm, self.input_layernorm_moe_gen)
        y, present = self.self_attn(y, batch, masks, cos_sin, past)
        x = x + y
        y = _route(x, und, gen, self.post_attention_layernorm, self.post_attention_layernorm_moe_gen)
        x = x + _route(y, und, gen, self.mlp, self.mlp_moe_gen)
        return x, present


class MoTModel(nn.Module):
    """The decoder stack (`language_model.model` in BAGEL's names)."""

    def __init__(self, cfg: LLMConfig):
        super().__init__()
        self.cfg = cfg
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList(MoTDecoderLayer(cfg) for _ in range(cfg.num_layers))
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.norm_moe_gen = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.gradient_checkpointing = False

    def forward(
        self,
        x: torch.Tensor,
        batch: PackedBatch,
        caches: list[KVCache | None] | None = None,
        capture: tuple[int, ...] = (),
    ) -> tuple[torch.Tensor, dict[int, torch.Tensor], list[KVCache]]:
        """Run the layers on embedded tokens x (L, d).

        Returns final-normed hidden states, the raw hidden states after each layer
        in `capture`, and per-sample caches extended with this batch's tokens.
        """
        n = len(batch.sample_lens)
        caches = caches or [None] * n
        masks = batch.masks()
        cos_sin = rope_cos_sin(batch.rope_pos, self.cfg.head_dim, self.cfg.rope_theta, x.dtype)
        captured: dict[int, torch.Tensor] = {}
        keys: list[list[torch.Tensor]] = [[] for _ in range(n)]
        values: list[list[torch.Tensor]] = [[] for _ in range(n)]
        for i, layer in enumerate(self.layers):
            past = [(c.keys[i], c.values[i]) if c is not None and c.length else None for c in caches]
            if self.gradient_checkpointing and self.training:
                x, present = torch.utils.checkpoint.checkpoint(
                    layer, x, batch, masks, cos_sin, past, use_reentrant=False
                )
            else:
                x, present = layer(x, batch, masks, cos_sin, past)
            for s, (k, v) in enumerate(present):
                keys[s].append(k)
                values[s].append(v)
            if i in capture:
                captured[i] = x
        x = _route(x, batch.und_index, batch.gen_index, self.norm, self.norm_moe_gen)
        new_caches = [KVCache(keys[s], values[s], batch.next_rope[s]) for s in range(n)]
        return x, captured, new_caches
