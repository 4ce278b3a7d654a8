"""The detection protocol (pairing, means, calibration, text verdicts, degradations) and
`unigendet eval detect / generate` end to end on the small corpus."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unigendet.cli import main
from unigendet.data.records import Record
from unigendet.evaluation.detection import (
    degraded_copies,
    evaluate_detector,
    generator_groups,
    score_report,
    text_report,
)
from unigendet.labels import FAKE, REAL
from unigendet.metrics import roc_auc
from unigendet.unified.inference import Detection
from unigendet.unified.pipeline import codec_for


def rec(i, label, gen, explanation=None):
    return Record(Path(f"/x/{i}.png"), label, gen, "test", explanation=explanation)


def test_reals_pair_with_their_generator_or_are_shared():
    records = [rec(0, REAL, "a"), rec(1, FAKE, "a"), rec(2, REAL, "b"), rec(3, FAKE, "b"), rec(4, REAL, "real")]
    groups = generator_groups(records)
    assert groups["a"].tolist() == [0, 1, 4] and groups["b"].tolist() == [2, 3, 4]
    with pytest.raises(ValueError, match="'b' has no real"):
        generator_groups([rec(0, FAKE, "a"), rec(1, REAL, "a"), rec(2, FAKE, "b")])


def test_reals_named_after_no_generator_are_shared_by_all():
    # wild-train's layout: every real is a "photo", which no fake names
    records = [rec(0, REAL, "photo"), rec(1, FAKE, "flux.1"), rec(2, FAKE, "sdxl"), rec(3, REAL, "photo")]
    groups = generator_groups(records)
    assert groups["flux.1"].tolist() == [0, 1, 3] and groups["sdxl"].tolist() == [0, 2, 3]


def test_means_are_over_generators():
    records = [rec(0, REAL, "a"), rec(1, FAKE, "a"), rec(2, REAL, "b"), rec(3, REAL, "b"), rec(4, FAKE, "b")]
    scores = np.array([0.2, 0.9, 0.6, 0.1, 0.5])
    rep = score_report(scores, records)
    assert rep["per_generator"]["a"]["auc"] == 1.0
    assert rep["per_generator"]["b"]["auc"] == pytest.approx(0.5)  # fake 0.5 beats 0.1, loses to 0.6
    assert rep["mean"]["auc"] == pytest.approx(0.75)
    assert rep["all"]["auc"] == pytest.approx(roc_auc(scores, [r.label == FAKE for r in records]))


def test_unparseable_verdicts_count_as_wrong():
    records = [rec(0, FAKE, "a", "This is a fake image."), rec(1, REAL, "a", "This is a real image."),
               rec(2, REAL, "a")]
    out = text_report(["This is a fake image.", "gibberish", "Well, this is a real image."], records)
    assert out["text_acc"] == pytest.approx(2 / 3) and out["unparsed_rate"] == pytest.approx(1 / 3)
    assert out["n_references"] == 2 and 0.4 < out["rouge_l"] < 0.8


class Brightness:
    """A stand-in detector: p_fake = mean brightness; it 'explains' with a fixed verdict."""

    name = "brightness"

    def predict(self, paths):
        return np.array([np.asarray(Image.open(p).convert("L")).mean() / 255 for p in paths])

    def explain(self, paths):
        return [Detection(float(p), "This is a fake image." if p > 0.5 else "no idea") for p in self.predict(paths)]

    def explain_images(self, images):  # with `explain`, this makes it an Explainer
        raise NotImplementedError


def write_set(root, n=12, split="test"):
    rng = np.random.default_rng(0)
    recs = []
    for i in range(n):
        label = FAKE if i % 2 else REAL
        level = (0.7 if label == FAKE else 0.3) + rng.normal(0, 0.1)
        arr = np.clip(rng.normal(level * 255, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
        p = Path(root) / f"{split}-{i}.png"
        Image.fromarray(arr).save(p)
        recs.append(Record(p, label, "g1" if i % 4 < 2 else "g2", split))
    return recs


def test_evaluate_detector_calibrates_on_validation_and_scores_text(tmp_path):
    test, val = write_set(tmp_path), write_set(tmp_path, split="val")
    res = evaluate_detector(Brightness(), test, val, explain=True)
    assert set(res.report["per_generator"]) == {"g1", "g2"}
    assert res.report["mean"]["auc"] == 1.0
    assert 0.3 < res.threshold < 0.7 and res.report["all"]["acc_calibrated"] == 1.0
    assert res.report["text"]["unparsed_rate"] == pytest.approx(0.5)  # every real says "no idea"


def test_degraded_copies_keep_labels_and_change_pixels(tmp_path):
    recs = write_set(tmp_path, n=4)
    out = degraded_copies(recs, "down64", tmp_path / "deg")
    assert [r.label for r in out] == [r.label for r in recs]
    assert all(r.path.is_file() and r.path.suffix == ".png" for r in out)
    blurred = degraded_copies(recs, "blur3", tmp_path / "deg")
    assert not np.array_equal(np.asarray(Image.open(blurred[0].path)), np.asarray(Image.open(recs[0].path)))


@pytest.fixture(scope="module")
def trained(corpus, codec_run, tmp_path_factory):
    from unigendet_train.baselines import LinearProbeConfig, run_linear_probe
    from unigendet_train.vit_pretrain import ViTPretrainConfig, run_vit_pretrain

    root = tmp_path_factory.mktemp("detectors")
    run_linear_probe(LinearProbeConfig(data=str(corpus), out=str(root / "lp"), cache=str(root / "cache"), epochs=5))
    vit = run_vit_pretrain(ViTPretrainConfig(data=str(corpus), out=str(root / "uni"), steps=2, batch=4, warmup=1,
                                             eval_every=2, progress=False))
    shutil.copy(codec_run / "codec.safetensors", vit.checkpoint)  # a complete UniGenDet: it can generate
    return root, str(vit.checkpoint)


def test_eval_detect_end_to_end(corpus, trained, tmp_path):
    root, uni = trained
    out = tmp_path / "ev"
    assert main(["eval", "detect", "--checkpoint", str(root / "lp"), "--checkpoint", str(root / "uni"),
                 "--data", str(corpus), "--out", str(out), "--cache", str(root / "cache"), "--degrade", "jpeg65",
                 "--explain", "--tsne", "24"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    gens = {r.split(",")[2] for r in (corpus / "manifest.csv").read_text().splitlines()[1:] if ",fake," in r}
    for name, d in metrics["detectors"].items():
        assert set(d["per_generator"]) == gens, name
        assert {"auc", "ap", "acc", "acc_real", "acc_fake", "macro_f1", "ece", "oracle_acc"} <= set(d["mean"])
        assert set(d["degraded"]) == {"jpeg65"}
    assert "text" in metrics["detectors"]["unigendet-tiny"]
    html = (out / "report.html").read_text()
    assert html.count("data:image/png;base64,") == 5  # roc, pr, scores, two t-SNE plots
    assert "oracle acc (upper bound)" in (out / "table.md").read_text()


def test_eval_generate_end_to_end(corpus, trained, tmp_path):
    _, uni = trained
    out = tmp_path / "gen"
    assert main(["eval", "generate", "--checkpoint", uni, "--checkpoint", uni, "--data", str(corpus), "--out",
                 str(out), "--max-prompts", "6", "--per-prompt", "2", "--steps", "2"]) == 0
    rows = json.loads((out / "metrics.json").read_text())["rows"]
    assert list(rows) == ["uni", "uni-2", "reference: codec reconstructions", "reference: noise",
                          "reference: training crops"]
    m = rows["uni"]
    assert m["n_generated"] == 12 and m["frechet_efficientnet-lite0"] > 0 and -1 <= m["within_prompt_cosine"] <= 1
    assert 0 <= m["adherence"] <= 1 and 0 < m["chance"] <= 0.5
    assert rows["uni"] == rows["uni-2"]  # the same checkpoint and seed: the same images
    # the references bracket the scale: noise is far from photos, other crops of the same photos close
    fd = {k: v["frechet_efficientnet-lite0"] for k, v in rows.items()}
    assert fd["reference: training crops"] < fd["reference: noise"]
    assert rows["reference: training crops"]["adherence"] > rows["reference: noise"]["adherence"]
    # each grid row: a held-out real crop, then its caption's generated images
    assert Image.open(out / "samples-uni.png").size == (3 * 64, 6 * 64)
    assert (out / "report.html").read_text().count("data:image/png;base64,") == 2


CNNDET = Path(__file__).resolve().parents[2] / "shared" / "data" / "cnndetection-ranking" / "manifest.csv"


@pytest.mark.skipif(not CNNDET.is_file(), reason="shared CNNDetection set not present")
def test_eval_on_the_shared_cnndetection_set_lists_all_ten_generators(tmp_path):
    import torch

    from unigendet.unified.checkpoint import save_checkpoint
    from unigendet.unified.presets import create_model, get_config

    torch.manual_seed(0)
    cfg = get_config("tiny")
    save_checkpoint(tmp_path / "ckpt", create_model(cfg), cfg, files={"codec": codec_for(cfg)})
    out = tmp_path / "ev"
    assert main(["eval", "detect", "--checkpoint", str(tmp_path / "ckpt"), "--data", str(CNNDET), "--out", str(out),
                 "--tsne", "0"]) == 0
    table = (out / "table.md").read_text()
    gens = ["biggan", "crn", "cyclegan", "deepfake", "gaugan", "imle", "san", "seeingdark", "stargan", "stylegan"]
    assert all(f"| {g} |" in table for g in gens)
    per = json.loads((out / "metrics.json").read_text())["detectors"]["unigendet-tiny"]["per_generator"]
    assert sorted(per) == gens and all(p["n"] == 40 for p in per.values())
