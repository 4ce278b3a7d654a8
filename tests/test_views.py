"""The view table: rows keyed by image and view, appended and kept across runs; a write that dies
midway leaves the previous table; views draw from their own random streams."""

from pathlib import Path

import pytest
import torch

from unigendet_train.views import ViewTable, view_key, view_rng


def test_rows_are_kept_extended_and_read_in_any_order(tmp_path):
    file = tmp_path / "t.safetensors"
    table = ViewTable(file, ("a", "b"))
    keys = [view_key(tmp_path / "x.png", v) for v in range(3)]
    assert table.missing(keys + keys[:1]) == keys
    table.add(keys[:2], a=torch.arange(2.0)[:, None], b=torch.tensor([[1, 2], [3, 4]], dtype=torch.uint8))
    table.meta["grid"] = [4, 4]
    table.save()
    again = ViewTable(file, ("a", "b"))
    assert again.missing(keys) == keys[2:] and again.meta == {"grid": [4, 4]}
    again.add(keys[2:], a=torch.tensor([[7.0]]), b=torch.tensor([[5, 6]], dtype=torch.uint8))
    again.save()
    rows = ViewTable(file, ("a", "b")).rows([keys[2], keys[0]])
    assert rows["a"].flatten().tolist() == [7.0, 0.0] and rows["b"].tolist() == [[5, 6], [1, 2]]
    with pytest.raises(ValueError, match="fields"):
        again.add(keys[:1], a=torch.zeros(1, 1))


def test_a_write_killed_midway_leaves_the_previous_table(tmp_path, monkeypatch):
    import unigendet_train.views as views

    file = tmp_path / "t.safetensors"
    table = ViewTable(file, ("a",))
    table.add(["k#0"], a=torch.ones(1, 2))
    table.save()
    before = file.read_bytes()
    table.add(["k#1"], a=torch.zeros(1, 2))

    def dies(tensors, path, metadata=None):
        Path(path).write_bytes(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(views, "save_file", dies)
    with pytest.raises(KeyboardInterrupt):
        table.save()
    assert file.read_bytes() == before and ViewTable(file, ("a",)).missing(["k#0", "k#1"]) == ["k#1"]


def test_each_view_has_its_own_stream():
    assert view_rng(0, "a.png", 1).random() == view_rng(0, "a.png", 1).random()
    assert len({view_rng(s, p, v).random() for s in (0, 1) for p in ("a.png", "b.png") for v in (0, 1)}) == 8
