"""KV-cached inference equals full forward passes."""

import torch

from conftest import latent_like
from unigendet.labels import REAL
from unigendet.unified.flow import Guidance
from unigendet.unified.inference import decode_text, detect, generate_latents, prefill
from unigendet.unified.packing import CAUSAL, Sample, Split
from unigendet.unified.prompts import detection_answer


def test_cached_decoding_matches_full_forward(tiny):
    cfg, model, builder = tiny
    z, image = latent_like(cfg, 4), torch.rand(3, 64, 64) * 2 - 1
    answer = builder.turn(detection_answer(REAL, "Natural sensor noise."))
    full = builder.pack([builder.detection(z, image, answer=builder.tok.decode(answer[1:-1]))])
    with torch.no_grad():
        full_out = model(full)
    n_answer = len(answer)
    want = model.lm_logits(full_out.hidden[-n_answer:])  # logits at every answer position

    batch, out, caches = prefill(model, builder, [builder.detection(z, image)])  # ends at <|im_start|>
    got = [model.lm_logits(out.hidden[-1:])]
    cache = caches[0]
    for tok in answer[1:]:
        step = builder.pack([Sample([Split(CAUSAL, text=[tok])], rope_start=cache.next_rope)])
        with torch.no_grad():
            o = model(step, caches=[cache])
        cache = o.caches[0]
        got.append(model.lm_logits(o.hidden))
    torch.testing.assert_close(torch.cat(got), want, atol=1e-5, rtol=1e-4)
    assert cache.length == full.length


def test_greedy_decode_is_deterministic_and_batched(tiny):
    cfg, model, builder = tiny
    z = [latent_like(cfg, 4) for _ in range(2)]
    ims = [torch.rand(3, 64, 64) * 2 - 1 for _ in range(2)]
    both = detect(model, builder, z, ims, explain=True, max_new_tokens=6)
    alone = detect(model, builder, z[1:], ims[1:], explain=True, max_new_tokens=6)
    assert both[1].text == alone[0].text
    assert abs(both[1].p_fake - alone[0].p_fake) < 1e-5
    assert all(0 <= d.p_fake <= 1 for d in both)


def test_decoding_stops_at_end_of_turn(tiny):
    cfg, model, builder = tiny
    with torch.no_grad():
        model.language_model.lm_head.weight.zero_()
        model.language_model.lm_head.weight[builder.tok.im_end] = 1.0  # always predicts <|im_end|>
    model.language_model.model.norm.weight.data.fill_(1.0)
    _, out, caches = prefill(model, builder, [Sample([Split(CAUSAL, text=builder.turn("hi"))])])
    ids = decode_text(model, builder, caches, torch.nn.functional.one_hot(
        torch.tensor([builder.tok.im_end]), cfg.llm.vocab_size).float(), max_new_tokens=5)
    assert ids == [[]]


def test_cached_generation_equals_uncached(tiny):
    cfg, model, builder = tiny
    with torch.no_grad():
        model.llm2vae.weight.normal_(std=0.02)  # non-zero velocity head (as after training)
    kw = dict(grid=(4, 4), steps=4, shift=3.0, guidance=Guidance(scale=3.0, interval=(0.0, 1.0)))
    a = generate_latents(model, builder, ["a cat", "two dogs"], generator=torch.Generator().manual_seed(1), **kw)
    b = generate_latents(model, builder, ["a cat", "two dogs"], generator=torch.Generator().manual_seed(1),
                         use_cache=False, **kw)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
    c = generate_latents(model, builder, ["a cat", "two dogs"], generator=torch.Generator().manual_seed(2), **kw)
    assert not torch.allclose(a, c)  # the seed matters
    assert a.shape == (2, cfg.latent.channels, 8, 8)
