"""`make demo`'s loop, at toy settings: every phase runs and leaves its artefacts."""

import json

import pytest

from unigendet.data.corpus.sources import TooFewPhotos
from unigendet_train.demo import DemoConfig, run_demo


def test_demo_stops_at_once_on_a_small_corpus_unless_chosen(tmp_path, capsys):
    with pytest.raises(TooFewPhotos, match="--small-corpus"):
        run_demo(DemoConfig(out=str(tmp_path), photo_sources="python", progress=False))
    out = capsys.readouterr().out
    assert "scikit-image (PyPI)" in out and "photos" in out  # the sources it found, with counts
    assert not any(tmp_path.iterdir())  # nothing was built


def test_demo_loop_runs_every_phase(tmp_path):
    cfg = DemoConfig(out=str(tmp_path), vit_steps=4, gduf_steps=3, diga_steps=2, size=64, crops_per_photo=3,
                     autoencoder_steps=5, rich_crops_per_photo=2, detector_epochs=2, tsne=0, progress=False,
                     photo_sources="python", small_corpus=True)
    summary = run_demo(cfg)
    assert set(summary) == {"photos", "vit-pretrain", "gduf", "diga", "gendet", "linear-probe", "detector",
                            "eval"}
    coevo = (tmp_path / "data-coevo" / "manifest.csv").read_text()
    assert "unigendet-tiny" in coevo  # the trained generator's fakes joined the corpus
    for run in ("gduf", "diga"):
        assert (tmp_path / run / "checkpoints" / "latest").is_file()
    assert json.loads((tmp_path / "demo_summary.json").read_text())["gduf"]["steps"] == 3
    # the demo's five detectors and, beside them, the one the package ships
    assert len(summary["eval"]) == 6 and "forensic-wild" in summary["eval"]
    assert (tmp_path / "eval" / "report.html").is_file()
    from unigendet.detectors import load_detector

    assert load_detector(tmp_path / "detector").kind == "npr"  # the demo's own detector
    assert "conv-ae-transposed" in (tmp_path / "data-rich" / "manifest.csv").read_text()
