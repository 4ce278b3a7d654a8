"""Every benchmark script imports and answers --help, so a moved module cannot break one unnoticed;
the streaming-load bench also runs end to end at the tiny preset (its measurement runs in child
processes, which import the library anew)."""

import importlib
from pathlib import Path

import numpy as np
import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench"
SCRIPTS = sorted(p.stem for p in BENCH.glob("*.py"))


@pytest.fixture
def bench_path(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))  # as when a script is run: its folder is on sys.path


def test_every_bench_script_is_found():
    assert len(SCRIPTS) >= 12 and "wild_detection" in SCRIPTS


@pytest.mark.parametrize("name", SCRIPTS)
def test_bench_imports_and_answers_help(name, bench_path, capsys):
    module = importlib.import_module(name)
    with pytest.raises(SystemExit) as stop:
        module.main(["--help"])
    assert stop.value.code == 0
    assert "usage:" in capsys.readouterr().out


def test_streaming_load_runs(bench_path, capsys):
    importlib.import_module("streaming_load").main(["--preset", "tiny", "--shards", "2"])
    out = capsys.readouterr().out
    assert "naive / streaming peak" in out and out.count("MiB") >= 2


def test_wild_table_rows_merge_fold_by_fold(bench_path):
    """A long row (e.g. fine-tuned, about 12 minutes a fold) can be measured a few folds at a time:
    new folds join the old, a fold measured again is replaced, the means cover every fold held, and a
    column the new run skipped (CNNDetection) is kept."""
    from unigendet.evaluation.folds import FoldsResult, summarise

    wild = importlib.import_module("wild_detection")

    def fold(name, auc):
        m = {"photos": 10, "fakes": 10, "photo_fpr": 0.1, "photo_uncertain": 0.0, "recall": auc, "fake_uncertain": 0.0,
             "auc": auc, "bal_acc": auc}
        return {"name": name, "held": [name], "threshold": 0.5, "views": {"native": m, "circulated": m}}

    def row(*folds, **extra):
        views = {v: summarise([f["views"][v] for f in folds]) for v in ("native", "circulated")}
        return {"folds": FoldsResult("family", "r", list(folds), views).to_json(), **extra}

    old = row(fold("a", 0.6), fold("b", 0.8), cnn={"mean_auc": 0.65})
    merged = wild.merge_row(old, row(fold("b", 0.9), fold("c", 1.0)))
    assert [f["name"] for f in merged["folds"]["folds"]] == ["a", "b", "c"]
    assert merged["folds"]["folds"][1]["views"]["native"]["auc"] == 0.9
    assert merged["folds"]["summary"]["native"]["fake_auc_mean"] == pytest.approx((0.6 + 0.9 + 1.0) / 3)
    assert merged["cnn"] == {"mean_auc": 0.65}
    assert "| r | 0.600 | 0.900 | 1.000 | 0.833 |" in wild.table({"r": merged})


def test_head_choices_deal_families_into_groups_and_weigh_rows(bench_path):
    """A head is chosen inside a fold's training split by leaving its families out a group at a time:
    every family is left out exactly once, and never more groups than families. The row weightings
    give each family (and, with "+ source", each source of reals) the share they say."""
    from unigendet.data.records import Record
    from unigendet.labels import FAKE, REAL

    heads = importlib.import_module("head_choices")
    assert heads.family_groups(["e", "a", "d", "b", "c"]) == [{"a", "d"}, {"b", "e"}, {"c"}]
    assert heads.family_groups(["x", "y"]) == [{"x"}, {"y"}]
    recs = ([Record(f"f{i}", FAKE, "sdxl") for i in range(4)] + [Record("g", FAKE, "stylegan2")]
            + [Record(f"r{i}", REAL, "photo", source="a" if i < 3 else "b") for i in range(4)])
    assert heads.row_weights(recs, "class") is None
    np.testing.assert_allclose(heads.row_weights(recs, "family"), [0.25] * 4 + [1] + [1] * 4)
    np.testing.assert_allclose(heads.row_weights(recs, "sqrt family"), [0.5] * 4 + [1] + [1] * 4)
    np.testing.assert_allclose(heads.row_weights(recs, "family + source"), [0.25] * 4 + [1] + [1 / 3] * 3 + [1])
    with pytest.raises(ValueError, match="weighting"):
        heads.row_weights(recs, "bogus")
