"""Checkpoint round trip and clear failures on broken or mismatched files."""

import json

import pytest
import torch

from conftest import detection_and_t2i
from unigendet import create_model, get_config
from unigendet.rundir import read_meta
from unigendet.unified.checkpoint import load_config, load_model, load_optimizer, save_checkpoint
from unigendet.weights import CheckpointError, load_weights


def hidden(model, batch):
    with torch.no_grad():
        return model(batch).hidden


@pytest.fixture
def saved(tiny, tmp_path):
    cfg, model, builder = tiny
    with torch.no_grad():
        model.llm2vae.weight.normal_()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    batch = builder.pack(list(detection_and_t2i(cfg, builder)))
    from unigendet.unified.losses import packed_losses

    sum(packed_losses(model, batch).values()).backward()
    opt.step()
    ema = create_model(cfg)
    path = save_checkpoint(tmp_path / "ckpt", model, cfg, ema=ema, optimizer=opt, meta={"step": 7, "epoch": 1})
    return cfg, model, ema, opt, batch, path


def test_round_trip_restores_identical_outputs(saved):
    cfg, model, ema, opt, batch, path = saved
    assert sorted(p.name for p in path.iterdir()) == [
        "config.json", "ema.safetensors", "meta.json", "model.safetensors", "optimizer.json", "optimizer.safetensors",
    ]
    loaded = load_model(path, ema=False)
    assert loaded.config == cfg
    torch.testing.assert_close(hidden(loaded, batch), hidden(model.eval(), batch), rtol=0, atol=0)
    torch.testing.assert_close(hidden(load_model(path), batch), hidden(ema.eval(), batch), rtol=0, atol=0)
    assert read_meta(path) == {"step": 7, "epoch": 1}


def test_optimizer_round_trip(saved):
    cfg, model, _, opt, _, path = saved
    fresh = torch.optim.AdamW(model.parameters(), lr=1e-3)
    load_optimizer(fresh, path)
    a, b = opt.state_dict(), fresh.state_dict()
    assert a["param_groups"] == b["param_groups"]
    for pid, st in a["state"].items():
        for k, v in st.items():
            torch.testing.assert_close(torch.as_tensor(v), torch.as_tensor(b["state"][pid][k]))


def test_overwrite_is_atomic_and_leaves_no_temporaries(saved):
    cfg, model, _, _, _, path = saved
    save_checkpoint(path, model, cfg, meta={"step": 8})
    assert read_meta(path)["step"] == 8
    assert [p.name for p in path.parent.iterdir()] == ["ckpt"]


def test_truncated_weights_fail_clearly(saved):
    *_, path = saved
    f = path / "model.safetensors"
    f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_model(path, ema=False)


def test_empty_and_garbage_files_fail_clearly(saved):
    *_, path = saved
    (path / "model.safetensors").write_bytes(b"")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_model(path, ema=False)
    (path / "model.safetensors").write_bytes(b"\x80\x04not a safetensors file at all")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        load_model(path, ema=False)


def test_mismatched_checkpoint_names_the_problem(saved, tmp_path):
    *_, path = saved
    small = create_model(get_config("small"))
    shape_msg = r"shape mismatches, e\.g\. .*checkpoint \(\d+, 128\) vs model \(\d+, 256\)"
    with pytest.raises(CheckpointError, match=shape_msg):
        load_weights(small, path / "model.safetensors")
    no_head = create_model(get_config("tiny", cls_head=False))
    with pytest.raises(CheckpointError, match="unexpected keys.*fake_cls_head"):
        load_weights(no_head, path / "model.safetensors")


def test_missing_or_bad_config(saved, tmp_path):
    *_, path = saved
    with pytest.raises(CheckpointError, match="not found"):
        load_model(tmp_path / "nowhere")
    (path / "config.json").write_text(json.dumps({"name": "tiny", "bogus": 1}))
    with pytest.raises(CheckpointError, match="not a UniGenDet checkpoint"):
        load_config(path)
    (path / "config.json").write_text(json.dumps({"format_version": 1, "kind": "unigendet", "name": "tiny",
                                                  "model": {"name": "tiny", "bogus": 1}}))
    with pytest.raises(CheckpointError, match="bogus"):
        load_config(path)
    (path / "config.json").unlink()
    with pytest.raises(CheckpointError, match="no config.json"):
        load_model(path)


def test_one_resolver_reads_every_checkpoint_string(tmp_path):
    """"shipped[:NAME]" names a packaged run; a training run means its latest checkpoint; any other
    directory is itself; anything else is a clear error."""
    from unigendet.weights import latest_checkpoint, resolve_checkpoint, shipped_path

    assert resolve_checkpoint("shipped") == shipped_path() == resolve_checkpoint("shipped:wild")
    assert resolve_checkpoint("shipped:explain") == shipped_path("explain")
    with pytest.raises(CheckpointError, match="no shipped detector 'nope'"):
        resolve_checkpoint("shipped:nope")
    run = tmp_path / "run"
    for step in (3, 6):
        (run / "checkpoints" / f"step-{step:06d}").mkdir(parents=True)
    assert latest_checkpoint(run) is None and resolve_checkpoint(run) == run  # no pointer: the folder itself
    (run / "checkpoints" / "latest").write_text("step-000006\n")
    assert resolve_checkpoint(run) == latest_checkpoint(run) == run / "checkpoints" / "step-000006"
    assert resolve_checkpoint(str(run / "checkpoints" / "step-000003")) == run / "checkpoints" / "step-000003"
    with pytest.raises(CheckpointError, match="no such checkpoint directory"):
        resolve_checkpoint(tmp_path / "missing")
    (run / "checkpoints" / "latest").write_text("step-000009")
    with pytest.raises(CheckpointError, match="points to missing"):
        resolve_checkpoint(run)
