"""Inference with a KV cache: prefill a context, decode text, generate images.

A context (text, ViT, clean latents) is run once and its keys/values cached per
sample. Text decoding then feeds one token per step; image generation runs the
noised latent block against the cached context at every Euler step (the block
itself is never cached: no other split may see it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from ..labels import FAKE
from .flow import Guidance, euler_sample
from .mot import KVCache
from .packing import CAUSAL, ImageTokens, Sample, Split
from .patches import unpatchify
from .prompts import DETECTION_QUESTION
from .samples import SampleBuilder

MAX_ANSWER = 384  # tokens an explanation may take (a verdict, its reasons and three cue sentences fit)
DEFAULT_GUIDANCE = Guidance()  # text CFG 4.0 with renormalisation, as the paper's sampler


@torch.no_grad()
def prefill(model, builder: SampleBuilder, samples: list[Sample]):
    """Run contexts once; returns (packed batch, model output, per-sample caches)."""
    batch = builder.pack(samples).to(model.device)
    out = model(batch)
    return batch, out, out.caches


@torch.no_grad()
def decode_text(
    model,
    builder: SampleBuilder,
    caches: list[KVCache],
    first_logits: torch.Tensor,
    max_new_tokens: int = MAX_ANSWER,
    temperature: float = 0.0,
    generator: torch.Generator | None = None,
) -> list[list[int]]:
    """Greedy (temperature 0) or sampled decoding of each sample until <|im_end|>.

    `first_logits` (B, V) are the logits at each context's last position.
    """
    eos = builder.tok.im_end
    logits, out_ids = first_logits, [[] for _ in caches]
    live = list(range(len(caches)))
    for _ in range(max_new_tokens):
        nxt = _pick(logits, temperature, generator).tolist()
        still = []
        for j, i in enumerate(live):
            if nxt[j] == eos:
                continue
            out_ids[i].append(nxt[j])
            still.append((i, nxt[j]))
        if not still:
            break
        live = [i for i, _ in still]
        samples = [Sample([Split(CAUSAL, text=[tok])], rope_start=caches[i].next_rope) for i, tok in still]
        batch = builder.pack(samples).to(model.device)
        out = model(batch, caches=[caches[i] for i in live])
        for j, i in enumerate(live):
            caches[i] = out.caches[j]
        logits = model.lm_logits(out.hidden)
    return out_ids


def _pick(logits: torch.Tensor, temperature: float, generator: torch.Generator | None) -> torch.Tensor:
    if temperature <= 0:
        return logits.argmax(-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@dataclass
class Detection:
    p_fake: float  # from fake_cls_head on the prefill (no decoding needed)
    text: str | None  # the written answer, when asked for
    state: torch.Tensor | None = None  # the hidden state the cls head reads (final-normed)


@torch.no_grad()
def detect(
    model,
    builder: SampleBuilder,
    latents: list[torch.Tensor],
    images: list[torch.Tensor | ImageTokens],
    explain: bool = False,
    question: str | Sequence[str] = DETECTION_QUESTION,
    max_new_tokens: int = MAX_ANSWER,
) -> list[Detection]:
    """Detect with exactly the layout the model was trained with: clean latents (SMSA)
    + ViT + question (one for all images, or one each); a model trained latent-free
    (`config.smsa=False`) gets no latents."""
    if not model.config.smsa:
        latents = [None] * len(images)
    questions = [question] * len(images) if isinstance(question, str) else list(question)
    if len(questions) != len(images):
        raise ValueError(f"{len(questions)} questions for {len(images)} images")
    samples = [builder.detection(z, im, q) for z, im, q in zip(latents, images, questions)]
    batch, out, caches = prefill(model, builder, samples)
    last = out.hidden[batch.cls_index]
    p_fake = torch.softmax(model.cls_logits(last).float(), -1)[:, FAKE].tolist()
    texts: list[str | None] = [None] * len(samples)
    if explain:
        ids = decode_text(model, builder, caches, model.lm_logits(last), max_new_tokens)
        texts = [builder.tok.decode(x) for x in ids]
    states = last.float().cpu()
    return [Detection(p, t, h) for p, t, h in zip(p_fake, texts, states)]


@torch.no_grad()
def generate_latents(
    model,
    builder: SampleBuilder,
    prompts: list[str],
    grid: tuple[int, int],
    steps: int = 50,
    shift: float = 3.0,
    guidance: Guidance | None = DEFAULT_GUIDANCE,
    generator: torch.Generator | None = None,
    use_cache: bool = True,
    noise: torch.Tensor | None = None,
) -> torch.Tensor:
    """Text-to-image latents (B, C, h, w) for a latent token `grid` (h, w).

    The conditional context is the prompt; the unconditional one is empty.
    `use_cache=False` re-runs the prompt at every step (for testing the cache). `noise` (B, C, h*p,
    w*p), when given, is the starting noise instead of a draw from `generator`.
    """
    cfg = model.config.latent
    p, n = cfg.patch_size, len(prompts)
    h, w = grid
    if noise is None:
        noise = torch.randn(n, cfg.channels, h * p, w * p, generator=generator)
    elif noise.shape != (n, cfg.channels, h * p, w * p):
        raise ValueError(f"noise of shape {tuple(noise.shape)} for {n} prompts on a {h}x{w} token grid")
    noise = noise.to(model.device, model.llm2vae.weight.dtype)  # drawn on CPU: same seed, same image
    cond = prefill(model, builder, [Sample([Split(CAUSAL, text=builder.turn(c))]) for c in prompts])[2]
    use_cfg = guidance is not None and guidance.scale != 1.0

    def run(x: torch.Tensor, t: float, conditional: bool) -> torch.Tensor:
        samples, caches = [], []
        for i in range(n):
            caption = prompts[i] if conditional else None
            if use_cache:
                s = builder.text_to_image(None, x[i], t)
                s.rope_start = cond[i].next_rope if conditional else 0
                samples.append(s)
                caches.append(cond[i] if conditional else None)
            else:
                samples.append(builder.text_to_image(caption, x[i], t))
        batch = builder.pack(samples).to(model.device)
        out = model(batch, caches=caches if use_cache else None)
        v = model.velocity(out.hidden[batch.latent_index]).view(n, h * w, -1)
        return torch.stack([unpatchify(v[i], grid, p) for i in range(n)])

    return euler_sample(
        lambda x, t: run(x, t, True),
        noise,
        steps=steps,
        shift=shift,
        guidance=guidance if use_cfg else None,
        uncond_velocity=(lambda x, t: run(x, t, False)) if use_cfg else None,
    )
