"""Streaming load of large-model checkpoints, checked on tiny random weights with the
real parameter names: sharded or single file, dtype cast, device map, missing keys
filled from a base checkpoint, and clear errors."""

import json

import pytest
import torch
from safetensors.torch import save_file

from unigendet.checkpoint import CheckpointError
from unigendet.loading import device_for, load_large, shard_files, stream_into
from unigendet.registry import create_model, get_config


def save_sharded(state, root, shards=3):
    root.mkdir(parents=True, exist_ok=True)
    names = sorted(state)
    weight_map = {}
    for i in range(shards):
        part = {k: state[k].contiguous() for k in names[i::shards]}
        fname = f"model-{i + 1:05d}-of-{shards:05d}.safetensors"
        save_file(part, str(root / fname))
        weight_map.update({k: fname for k in part})
    (root / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return root


@pytest.fixture(scope="module")
def reference():
    torch.manual_seed(0)
    cfg = get_config("tiny")
    return cfg, create_model(cfg).eval()


def test_sharded_checkpoint_streams_into_a_meta_model_and_runs(reference, tmp_path, tiny):
    from conftest import detection_and_t2i

    cfg, ref = reference
    path = save_sharded({k: v.clone() for k, v in ref.state_dict().items()}, tmp_path / "sharded")
    seen = []
    model, report = load_large(cfg, path, dtype=None, on_tensor=seen.append)
    assert report.loaded == len(ref.state_dict()) == len(seen) and not report.missing
    for k, v in ref.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k
    _, _, builder = tiny
    batch = builder.pack(detection_and_t2i(cfg, builder))
    torch.testing.assert_close(model(batch).hidden, ref(batch).hidden)


def test_single_file_casts_to_bf16_and_places_by_device_map(reference, tmp_path):
    cfg, ref = reference
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(tmp_path / "ema.safetensors"))
    model, _ = load_large(cfg, tmp_path, dtype=torch.bfloat16, device="cpu", device_map={"vit_model": "cpu"})
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert device_for("vit_model.vision_model.x", {"": "cuda:1", "vit_model": "cpu"}, "cuda:0").type == "cpu"
    assert device_for("language_model.x", {"": "cuda:1", "vit_model": "cpu"}, "cuda:0") == torch.device("cuda:1")
    assert device_for("a", None, "cpu") == torch.device("cpu")


def test_missing_keys_fail_clearly_or_come_from_a_base_checkpoint(reference, tmp_path):
    cfg, ref = reference
    state = ref.state_dict()
    fine_tuned = {k: v + 1 for k, v in state.items() if not k.startswith("fake_cls_head")}
    save_file({k: v.contiguous() for k, v in fine_tuned.items()}, str(tmp_path / "ft.safetensors"))
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp_path / "base.safetensors"))
    with pytest.raises(CheckpointError, match="missing, e.g. \\['fake_cls_head"):
        load_large(cfg, tmp_path / "ft.safetensors", dtype=None)
    model, report = load_large(cfg, tmp_path / "ft.safetensors", dtype=None, fill_from=tmp_path / "base.safetensors")
    assert report.filled and all(k.startswith("fake_cls_head") for k in report.filled)
    got = model.state_dict()
    assert torch.equal(got["fake_cls_head.3.weight"], state["fake_cls_head.3.weight"])  # from the base
    assert torch.equal(got["connector.fc1.weight"], fine_tuned["connector.fc1.weight"])  # from the fine-tune


def test_unexpected_and_mismatched_tensors(reference, tmp_path):
    cfg, ref = reference
    state = {k: v.contiguous() for k, v in ref.state_dict().items()}
    save_file({**state, "extra.weight": torch.zeros(2)}, str(tmp_path / "extra.safetensors"))
    with pytest.raises(CheckpointError, match="1 unexpected"):
        load_large(cfg, tmp_path / "extra.safetensors", dtype=None)
    _, report = load_large(cfg, tmp_path / "extra.safetensors", dtype=None, strict=False)
    assert report.unexpected == ["extra.weight"]
    bad = dict(state)
    bad["connector.fc1.weight"] = torch.zeros(3, 3)
    save_file(bad, str(tmp_path / "bad.safetensors"))
    with pytest.raises(CheckpointError, match="connector.fc1.weight: checkpoint \\(3, 3\\)"):
        stream_into(create_model(cfg, device="meta"), tmp_path / "bad.safetensors", strict=False)
    with pytest.raises(CheckpointError, match="no .safetensors"):
        shard_files(tmp_path / "nothing-here")


def test_truncated_shard_is_refused_before_reading(reference, tmp_path):
    cfg, ref = reference
    save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(tmp_path / "m.safetensors"))
    data = (tmp_path / "m.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        load_large(cfg, tmp_path / "cut.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        load_large(cfg, tmp_path / "junk.safetensors")
