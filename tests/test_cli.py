import json

from unigendet.cli import main


def test_models_lists_every_preset(capsys):
    assert main(["models", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in rows] == ["tiny", "small", "base", "bagel-7b-mot"]
    assert rows[0]["parameters"] < rows[1]["parameters"] < rows[2]["parameters"] < rows[3]["parameters"]


def test_smoke_runs_end_to_end(tmp_path, capsys):
    assert main(["smoke", "--out", str(tmp_path), "--steps", "2"]) == 0
    out = capsys.readouterr().out
    assert "p_fake=" in out
    assert (tmp_path / "generated.png").stat().st_size > 0
    assert (tmp_path / "checkpoint" / "config.json").is_file()
