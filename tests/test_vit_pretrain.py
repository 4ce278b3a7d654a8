"""Stage 0: the ViT pre-training learns, and its checkpoint is a full UniGenDet model."""

import json

import torch
from safetensors.torch import load_file

from unigendet.unified.checkpoint import load_model
from unigendet.unified.presets import create_model, get_config
from unigendet_train.vit_pretrain import ViTPretrainConfig, run_vit_pretrain


def test_vit_pretrain_learns_and_writes_a_unigendet_checkpoint(corpus, tmp_path):
    torch.manual_seed(0)
    result = run_vit_pretrain(ViTPretrainConfig(data=str(corpus), out=str(tmp_path), steps=60, batch=16,
                                                warmup=5, eval_every=60, progress=False))
    metrics = result.metrics
    rows = [json.loads(x) for x in (tmp_path / "log.jsonl").read_text().splitlines()]
    first = sum(r["loss"] for r in rows[:10]) / 10
    last = sum(r["loss"] for r in rows[-10:]) / 10
    assert last < first - 0.05, (first, last)
    assert 0.0 <= metrics["val_acc"] <= 1.0
    model = load_model(result.checkpoint)  # loads strictly as the preset it was trained for
    torch.manual_seed(0)  # the stage seeds before building: this is its initial model
    fresh = create_model(get_config("tiny")).state_dict()
    trained = load_file(str(result.checkpoint / "ema.safetensors"))
    changed = {k for k in trained if not torch.equal(trained[k], fresh[k])}
    assert changed and all(k.startswith("vit_model.") for k in changed), sorted(changed)[:5]
    assert model.config == get_config("tiny")
    assert (tmp_path / "checkpoints" / "step-000060" / "vit_probe.safetensors").is_file()


def test_gduf_from_the_pretrained_vit_keeps_it_frozen(corpus, codec_run, tmp_path):
    from unigendet_train.config import GDUFConfig
    from unigendet_train.unified import run_unified

    vit = run_vit_pretrain(ViTPretrainConfig(data=str(corpus), out=str(tmp_path / "vit"), steps=4, batch=4,
                                             warmup=1, eval_every=4, progress=False))
    run_unified(GDUFConfig(data=str(corpus), out=str(tmp_path / "gduf"), init=str(vit.checkpoint), freeze_vit=True,
                            codec=str(codec_run),
                            steps=3, det_per_step=4, t2i_per_step=2, eval_every=0, ckpt_every=3, progress=False))
    before = load_file(str(vit.checkpoint / "model.safetensors"))
    after = load_file(str(tmp_path / "gduf" / "checkpoints" / "step-000003" / "model.safetensors"))
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and not any(k.startswith("vit_model.") for k in changed)
