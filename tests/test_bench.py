"""Every benchmark script imports and answers --help, so a moved module cannot break one unnoticed;
the streaming-load bench also runs end to end at the tiny preset (its measurement runs in child
processes, which import the library anew)."""

import importlib
from pathlib import Path

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
