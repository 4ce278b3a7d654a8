"""Every registered preset builds and trains a step; the full-scale one only on meta."""

import json
from pathlib import Path

import pytest
import torch

from conftest import detection_and_t2i
from unigendet import create_model, get_config, list_models
from unigendet.unified.losses import packed_losses
from unigendet.unified.samples import SampleBuilder
from unigendet.unified.tokenizer import ByteTokenizer

FIXTURES = Path(__file__).parent / "fixtures"
FULL_SCALE = "bagel-7b-mot"


@pytest.mark.parametrize("name", [n for n in list_models() if n != FULL_SCALE])
def test_forward_backward_every_preset(name):
    cfg = get_config(name)
    if not cfg.vit.frozen:  # a frozen encoder reads its own crop side
        cfg = cfg.replace(vit_image_size=2 * cfg.vit.patch_size)  # capped size: a few tokens per image
    model = create_model(cfg).train()
    with torch.no_grad():
        model.llm2vae.weight.normal_(std=0.02)  # zero-init blocks gradient into the last gen layer at step 0
    builder = SampleBuilder(cfg, ByteTokenizer())
    det, t2i = detection_and_t2i(cfg, builder, align=True)
    losses = packed_losses(model, builder.pack([det, t2i]), diga_layer=cfg.diga_layer)
    assert set(losses) == {"ce", "mse", "cls", "align"}
    total = losses["ce"] + losses["mse"] + 0.2 * losses["cls"] + 0.5 * losses["align"]
    assert torch.isfinite(total)
    total.backward()
    no_grad = [n for n, p in model.named_parameters()
               if p.requires_grad and (p.grad is None or not p.grad.abs().sum() > 0)]
    assert not no_grad, f"parameters without gradient: {no_grad[:5]}"
    assert (model.vit_model is None) == cfg.vit.frozen
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert sorted(frozen) == ["latent_pos_embed.pos_embed", "vit_pos_embed.pos_embed"]


def test_full_scale_on_meta_device():
    model = create_model(FULL_SCALE, device="meta")
    n = model.num_parameters()
    assert 13e9 <= n <= 16e9, n
    assert all(p.device.type == "meta" for p in model.parameters())


def test_full_scale_names_and_shapes_match_bagel_and_unigendet():
    """The preset's state dict equals the BAGEL-7B-MoT checkpoint layout plus UniGenDet's heads."""
    bagel = json.loads((FIXTURES / "bagel_7b_mot_shapes.json").read_text())
    extra = json.loads((FIXTURES / "unigendet_extra_shapes.json").read_text())
    ours = {k: list(v.shape) for k, v in create_model(FULL_SCALE, device="meta").state_dict().items()}
    heads = {k: v for k, v in extra.items() if k.startswith(("fake_cls_head", "diga_mlp"))}
    assert ours == {**bagel, **heads}


def test_registry_errors_and_config_round_trip():
    with pytest.raises(KeyError, match="available"):
        get_config("huge")
    for name in list_models():
        cfg = get_config(name)
        assert type(cfg).from_dict(json.loads(cfg.to_json())) == cfg
    with pytest.raises(ValueError, match="diga_layer"):
        get_config("tiny", diga_layer=99)
    with pytest.raises(ValueError, match="unknown"):
        type(get_config("tiny")).from_dict({"nope": 1})


@pytest.mark.parametrize("mode", ["autocast", "bf16-weights"])
def test_bf16_forward_backward(tiny, mode):
    cfg, model, builder = tiny
    batch = builder.pack(list(detection_and_t2i(cfg, builder)))
    if mode == "bf16-weights":
        model = model.to(torch.bfloat16)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode == "autocast"):
        losses = packed_losses(model.train(), batch)
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
