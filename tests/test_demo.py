"""`make demo`'s loop, at toy settings: every phase runs and leaves its artefacts."""

import json

import pytest

from unigendet.corpus.sources import TooFewPhotos
from unigendet_train.demo import DemoConfig, run_demo


def test_demo_stops_at_once_on_a_small_corpus_unless_chosen(tmp_path, capsys):
    with pytest.raises(TooFewPhotos, match="--small-corpus"):
        run_demo(DemoConfig(out=str(tmp_path), photo_sources="python", progress=False))
    out = capsys.readouterr().out
    assert "scikit-image (PyPI)" in out and "photos" in out  # the sources it found, with counts
    assert not any(tmp_path.iterdir())  # nothing was built


def test_demo_loop_runs_every_phase(tmp_path):
    cfg = DemoConfig(out=str(tmp_path), vit_steps=4, codec_steps=5, t2i_steps=3, gduf_steps=3, diga_steps=2, size=64,
                     crops_per_photo=3, autoencoder_steps=5, detector_epochs=2, tsne=0, generate_prompts=4,
                     generate_steps=3, progress=False, photo_sources="python", small_corpus=True)
    summary = run_demo(cfg)
    assert set(summary) == {"photos", "vit-pretrain", "codec", "t2i", "gduf", "diga", "gendet", "linear-probe",
                            "detector", "eval", "generation"}
    from unigendet.data.readers import read_source

    coevo = [r for r in read_source(tmp_path / "data-coevo") if r.generator == "unigendet-tiny"]
    # the trained generator's fakes joined the corpus as content-aligned pairs: for every real crop,
    # the image generated from its caption, both at the generator's size
    reals, fakes = [r for r in coevo if r.label == 1], [r for r in coevo if r.label == 0]
    assert len(reals) == len(fakes) > 0
    assert sorted(r.caption for r in reals) == sorted(r.caption for r in fakes)
    from PIL import Image

    assert {Image.open(r.path).size for r in coevo} == {(64, 64)}
    for run in ("t2i", "gduf", "diga"):
        assert (tmp_path / run / "checkpoints" / "latest").is_file()
    assert json.loads((tmp_path / "demo_summary.json").read_text())["gduf"]["steps"] == 3
    # the demo's five detectors and, beside them, the one the package ships
    assert len(summary["eval"]) == 6 and "forensic-wild" in summary["eval"]
    assert (tmp_path / "eval" / "report.html").is_file()
    from unigendet.detectors import load_detector

    assert load_detector(tmp_path / "detector").kind == "npr"  # the demo's own detector
    # the generator after each stage, beside the references
    assert {"t2i", "gduf", "diga", "reference: noise"} <= set(summary["generation"])
    assert (tmp_path / "eval-generate" / "report.html").is_file()
