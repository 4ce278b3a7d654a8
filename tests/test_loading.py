"""Streaming load of large-model checkpoints, checked on tiny random weights with the
real parameter names: sharded or single file, dtype cast, device map, missing keys
filled from a base checkpoint, and clear errors."""

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from unigendet.unified.loading import device_for, load_large, shard_files, stream_into
from unigendet.unified.presets import create_model, get_config
from unigendet.weights import CheckpointError


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


def test_a_released_style_directory_loads_and_detects(tmp_path):
    """A reduced bagel-layout model written as BAGEL ships it - sharded weights, ae.safetensors,
    tokenizer.json, no config.json - loads through `load_detector` and detects and generates."""
    from test_codecs_tokenizer import write_tokenizer_json
    from unigendet.codecs.flux_ae import FluxAE
    from unigendet.detectors import load_detector
    from unigendet.unified.config import LLMConfig, ViTConfig
    from unigendet.unified.pipeline import UniGenDetPipeline
    from unigendet.unified.tokenizer import LocalTokenizer

    root = write_tokenizer_json(tmp_path / "release")
    tok = LocalTokenizer(root)
    full = get_config("bagel-7b-mot")
    cfg = full.replace(
        tokenizer="local", image_size=64, vit_image_size=56, diga_layer=1,
        llm=LLMConfig(vocab_size=tok.vocab_size + 7, hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2,
                      head_dim=16, intermediate_size=96, rope_theta=1e6, rms_norm_eps=1e-6),
        vit=ViTConfig(hidden_size=32, num_layers=2, num_heads=2, intermediate_size=64, patch_size=14,
                      max_patches_per_side=70))
    torch.manual_seed(0)
    ref = create_model(cfg).eval()
    save_sharded({k: v.clone() for k, v in ref.state_dict().items()}, root, shards=2)
    ae = FluxAE(16, 8, ch=32, ch_mult=(1, 1, 2, 2), num_res_blocks=1)
    save_file({k: v.contiguous() for k, v in ae.state_dict().items()}, str(root / "ae.safetensors"))

    with pytest.raises(ValueError, match="ids differ"):
        UniGenDetPipeline.from_pretrained(root, config=cfg.replace(tokenizer="qwen2"), dtype=None)
    det = UniGenDetPipeline.from_pretrained(root, config=cfg.replace(llm=cfg.llm.__class__(**{**cfg.llm.__dict__,
                                                                                          "vocab_size": 999})),
                                            dtype=None)
    report = det.load_report
    assert det.model.config.llm.vocab_size == tok.vocab_size + 7  # read from the header
    assert report.loaded == len(ref.state_dict()) and det.codec.encoder.conv_in.weight.shape[0] == 32
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (80, 96, 3), dtype=np.uint8))
    found = det.explain([image])
    assert 0 <= found[0].p_fake <= 1 and isinstance(found[0].text, str)
    gen = det.generate(["a fox"], steps=2)
    assert gen.shape == (1, 3, 64, 64)
    bf16 = UniGenDetPipeline.from_pretrained(root, config=cfg, dtype=torch.bfloat16)
    assert bf16.model.lm_logits.__self__.language_model.lm_head.weight.dtype == torch.bfloat16
    assert 0 <= bf16.detect_images([image])[0].p_fake <= 1
    with pytest.raises(CheckpointError, match="shape mismatches"):  # routed by its layout to the full preset
        load_detector(root)

    # A fine-tune that lacks the cls head: refused alone, complete with --base.
    import shutil

    from unigendet.apps.predictor import Predictor

    ft = tmp_path / "finetune"
    ft.mkdir()
    for f in ("tokenizer.json", "ae.safetensors"):
        shutil.copy(root / f, ft / f)
    save_file({k: v.contiguous() for k, v in ref.state_dict().items() if not k.startswith("fake_cls_head")},
              str(ft / "ema.safetensors"))
    with pytest.raises(CheckpointError, match="missing"):
        UniGenDetPipeline.from_pretrained(ft, config=cfg, dtype=None)
    report = UniGenDetPipeline.from_pretrained(ft, config=cfg, base=root, dtype=None).load_report
    assert report.filled and all(k.startswith("fake_cls_head") for k in report.filled)
    with pytest.raises(CheckpointError):
        Predictor(str(ft), base=str(root))  # the CLI path uses the full preset: this file is reduced
