"""The generator's side: which crops teach it and which measure it, its latent space (the codec
stage), text-to-image pre-training, batched sampling, the EMA warm-up, and prompt adherence."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from unigendet.data.generation import generation_split
from unigendet.data.readers import read_source
from unigendet.data.records import Record
from unigendet.labels import FAKE, REAL
from unigendet.metrics import nearest_centroid_accuracy
from unigendet.unified.pipeline import UniGenDetPipeline, codec_for
from unigendet.unified.presets import get_config
from unigendet_train.codec import CodecConfig, load_images, reconstruction_error, run_codec
from unigendet_train.config import GDUFConfig, T2IConfig
from unigendet_train.ema import EMA
from unigendet_train.unified import run_unified


def rec(group: str, i: int, label=REAL, split="train", caption="a cat") -> Record:
    return Record(Path(f"/x/{group}/{i:02d}.png"), label, "g", split, caption=caption, group=group)


def test_generation_split_holds_out_crops_of_the_training_photos():
    records = [rec("a", i) for i in range(8)] + [rec("b", i) for i in range(5)] + [rec("lone", 0)]
    records += [rec("few", i) for i in range(3)]  # fewer crops than the period: the last is held out
    records += [rec("a", i, label=FAKE) for i in range(8)] + [rec("v", i, split="val") for i in range(4)]
    records += [rec("a", 0)]  # the same real listed twice (paired with two fakes) counts once
    records += [rec("c", i, caption="") for i in range(4)]  # no caption: nothing to prompt with
    train, held = generation_split(records)
    assert [r.path.name for r in held] == ["03.png", "07.png", "03.png", "02.png"]  # every 4th crop of a, b
    assert [r.group for r in held] == ["a", "a", "b", "few"] and "lone" in {r.group for r in train}
    assert not {r.path for r in train} & {r.path for r in held}
    assert all(r.label == REAL and r.split == "train" and r.caption for r in train + held)
    assert len(train) == 6 + 4 + 1 + 2
    assert generation_split(list(reversed(records))) == (train, held)  # order of the manifest does not matter


def test_prompt_adherence_is_nearest_class_centroid():
    ref = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    ref_cls = ["cat", "cat", "dog", "dog"]
    x = np.array([[1.0, 0.2], [0.2, 1.0], [1.0, 0.0]])
    assert nearest_centroid_accuracy(x, ["cat", "dog", "dog"], ref, ref_cls) == (pytest.approx(2 / 3), 0.5)
    with pytest.raises(ValueError, match="real images"):
        nearest_centroid_accuracy(x, ["cat", "dog", "bird"], ref, ref_cls)


def test_codec_stage_learns_the_latent_space_it_hands_on(corpus, tmp_path):
    cfg = get_config("tiny")
    untrained = codec_for(cfg)
    _, held = generation_split(read_source(corpus))
    images = load_images(held, cfg.image_size)
    result = run_codec(CodecConfig(data=str(corpus), out=str(tmp_path / "codec"), steps=60, batch=8))
    assert result.checkpoint == result.out == tmp_path / "codec"
    metrics = result.metrics
    trained = codec_for(cfg, tmp_path / "codec")
    assert reconstruction_error(trained, images)["l1"] < 0.7 * reconstruction_error(untrained, images)["l1"]
    assert metrics["heldout_psnr"] == pytest.approx(reconstruction_error(trained, images)["psnr"], rel=1e-4)
    with torch.no_grad():  # latents are normalised for the flow
        z = trained.encode(images)
    assert z.shape[1:] == (cfg.latent.channels, 16, 16) and abs(z.mean()) < 0.3 and 0.5 < z.std() < 2.0
    assert json.loads((tmp_path / "codec" / "codec.json").read_text())["channels"] == cfg.latent.channels


def test_a_trained_codec_is_required_and_then_carried_on(corpus, codec_run, tmp_path):
    with pytest.raises(ValueError, match="unigendet train codec"):
        run_unified(GDUFConfig(data=str(corpus), out=str(tmp_path / "no-codec"), steps=1, progress=False))
    cfg = T2IConfig(data=str(corpus), out=str(tmp_path / "t2i"), codec=str(codec_run), steps=40, t2i_per_step=8,
                    warmup=2, eval_every=0, ckpt_every=40, log_every=1, progress=False)
    result = run_unified(cfg)
    metrics = result.metrics
    assert result.checkpoint == tmp_path / "t2i" / "checkpoints" / "step-000040"  # what a later stage starts from
    rows = [json.loads(x) for x in (tmp_path / "t2i" / "log.jsonl").read_text().splitlines() if '"train"' in x]
    assert set(rows[0]) >= {"mse", "loss"} and "ce" not in rows[0]  # text-to-image samples only
    assert np.mean([r["mse"] for r in rows[-10:]]) < 0.8 * np.mean([r["mse"] for r in rows[:5]])
    assert set(metrics) >= {"val_mse"} and "val_acc" not in metrics
    ckpt = tmp_path / "t2i" / "checkpoints" / "step-000040"
    from safetensors.torch import load_file

    assert all(torch.equal(a, b) for a, b in zip(load_file(str(ckpt / "codec.safetensors")).values(),
                                                  load_file(str(codec_run / "codec.safetensors")).values(),
                                                  strict=True))
    # GDUF goes on from it without --codec: the checkpoint carries the codec
    run_unified(GDUFConfig(data=str(corpus), out=str(tmp_path / "gduf"), init=str(ckpt), steps=1, det_per_step=2,
                            t2i_per_step=2, eval_every=0, ckpt_every=1, progress=False))


def test_batched_sampling_gives_each_prompt_its_own_seeded_image(codec_run, tmp_path):
    from unigendet.unified.checkpoint import save_checkpoint
    from unigendet.unified.presets import create_model

    cfg = get_config("tiny")
    save_checkpoint(tmp_path / "ckpt", create_model(cfg), cfg, files={"codec": codec_for(cfg, codec_run)})
    pipe = UniGenDetPipeline.from_pretrained(tmp_path / "ckpt")
    prompts = ["a cat", "a red apple", "two dogs", "a cat"]
    together = pipe.generate(prompts, steps=3, seed=5, batch=4)
    alone = torch.cat([pipe.generate(prompts, steps=3, seed=5, batch=1)])
    assert together.shape == (4, 3, 64, 64) and torch.allclose(together, alone, atol=1e-5)
    assert not torch.allclose(together[0], together[3])  # the same prompt twice: two noise draws


def test_ema_warms_up_so_short_runs_are_not_their_initial_weights():
    lin = torch.nn.Linear(2, 2)
    ema = EMA(lin, decay=0.999)
    assert ema.decay_at(0) == pytest.approx(0.1) and ema.decay_at(10**6) == 0.999
    with torch.no_grad():
        lin.weight.fill_(1.0)
    for step in range(100):
        ema.update(lin, step)
    assert ema.model.weight.mean().item() > 0.9  # a constant decay of 0.999 would still be 90% the start


def test_the_codec_stage_is_reproducible(corpus, codec_run, tmp_path):
    """The same config gives the same codec, bit for bit (its initial weights are seeded too)."""
    from safetensors.torch import load_file

    run_codec(CodecConfig(data=str(corpus), out=str(tmp_path / "again"), steps=20, batch=8))
    a, b = load_file(str(codec_run / "codec.safetensors")), load_file(str(tmp_path / "again" / "codec.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
