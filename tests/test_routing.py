"""Expert routing and the symbiotic property."""

import torch

from conftest import detection_and_t2i, latent_like
from unigendet.unified.losses import packed_losses
from unigendet.unified.packing import CAUSAL, Sample, Split


def gen_expert_params(model):
    return {n: p for n, p in model.named_parameters() if "_moe_gen" in n}


def test_perturbing_generation_expert_changes_only_latent_dependent_outputs(tiny):
    cfg, model, builder = tiny
    det, t2i = detection_and_t2i(cfg, builder)
    text_only = Sample([Split(CAUSAL, text=builder.turn("just words"))])
    batch = builder.pack([det, t2i, text_only])
    with torch.no_grad():
        before = model(batch).hidden.clone()
        for p in gen_expert_params(model).values():
            p.add_(torch.randn_like(p) * 0.1)
        after = model(batch).hidden
    changed = (before - after).abs().amax(-1) > 1e-5
    n_det, n_t2i, _ = batch.sample_lens
    caption = slice(n_det, n_det + len(t2i.splits[0].text))
    assert not changed[caption].any(), "a caption never sees latents"
    assert not changed[n_det + n_t2i:].any(), "a text-only sample has no latent tokens"
    assert changed[batch.gen_index].all(), "latent tokens run through the generation expert"
    after_latents = slice(batch.latent_index[15].item() + 2, n_det)  # ViT, question, answer
    assert changed[after_latents].all(), "every split after the clean latents attends to them"


def test_answer_loss_trains_generation_expert(tiny):
    cfg, model, builder = tiny
    det, _ = detection_and_t2i(cfg, builder)
    losses = packed_losses(model.train(), builder.pack([det]))
    assert set(losses) == {"ce", "cls"}  # no flow loss in a detection sample
    losses["ce"].backward()
    gen = gen_expert_params(model)
    for layer in range(cfg.llm.num_layers):
        for name in ("self_attn.k_proj_moe_gen.weight", "self_attn.v_proj_moe_gen.weight"):
            g = gen[f"language_model.model.layers.{layer}.{name}"].grad
            assert g is not None and g.abs().sum() > 0, f"layer {layer} {name} gets no gradient from the answer"


def test_caption_outputs_ignore_its_noised_latents(tiny):
    cfg, model, builder = tiny
    caption = "a lighthouse"
    z1, z2 = latent_like(cfg, 4), latent_like(cfg, 4)
    b1 = builder.pack([builder.text_to_image(caption, z1, 0.5)])
    b2 = builder.pack([builder.text_to_image(caption, z2, 0.5)])
    with torch.no_grad():
        h1, h2 = model(b1).hidden, model(b2).hidden
    n = len(builder.turn(caption))
    torch.testing.assert_close(h1[:n], h2[:n], rtol=0, atol=0)
    assert not torch.allclose(h1[b1.latent_index], h2[b2.latent_index])


def test_gradient_checkpointing_gives_same_gradients(tiny):
    cfg, model, builder = tiny
    batch = builder.pack(list(detection_and_t2i(cfg, builder)))
    with torch.no_grad():
        model.llm2vae.weight.normal_(std=0.02)
    grads = []
    for ckpt in (False, True):
        model.zero_grad()
        model.language_model.model.gradient_checkpointing = ckpt
        sum(packed_losses(model.train(), batch).values()).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys()
    for n in grads[0]:
        torch.testing.assert_close(grads[0][n], grads[1][n], rtol=1e-4, atol=1e-6)
