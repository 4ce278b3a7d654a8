"""Every reader on a small fixture tree, including malformed entries."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unigendet.data import DataError
from unigendet.data.readers import (
    Issues,
    detect_layout,
    read_captions,
    read_fakeclue,
    read_genimage,
    read_manifest,
    read_source,
    read_ufd,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data" / "cnndetection-ranking" / "manifest.csv"


def png(path: Path, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 255, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)
    return path


def test_manifest_reports_each_malformed_row(tmp_path):
    png(tmp_path / "a.png"), png(tmp_path / "sub" / "b.png", 1)
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
    (tmp_path / "m.csv").write_text(
        "path,label,generator,split,caption\n"
        "a.png,real,gan,train,a red thing\n"
        "sub/b.png,fake,gan,test,\n"
        "missing.png,fake,gan,train,\n"
        "a.png,maybe,gan,train,\n"
        "corrupt.png,fake,gan,train,\n"
    )
    issues = Issues()
    recs = read_manifest(tmp_path / "m.csv", verify=True, issues=issues)
    assert [(r.path.name, r.label, r.split) for r in recs] == [("a.png", 1, "train"), ("b.png", 0, "test")]
    assert recs[0].caption == "a red thing"
    where = [w for w, _ in issues]
    assert where == [f"{tmp_path / 'm.csv'}:{n}" for n in (4, 5, 6)]
    assert "missing.png" in issues[0][1] and "maybe" in issues[1][1] and "corrupt" in issues[2][1]
    with pytest.raises(DataError, match=r"m\.csv:4: missing file"):
        read_manifest(tmp_path / "m.csv", strict=True)
    (tmp_path / "bad.csv").write_text("file,label\nx,real\n")
    with pytest.raises(DataError, match="missing columns"):
        read_manifest(tmp_path / "bad.csv")


def test_genimage_layout(tmp_path):
    for gen in ("adm", "midjourney"):
        for split in ("train", "val"):
            png(tmp_path / gen / split / "ai" / "x.png")
            png(tmp_path / gen / split / "nature" / "y.JPG")
    recs = read_genimage(tmp_path)
    assert len(recs) == 8
    assert {(r.generator, r.split, r.label) for r in recs} == {
        (g, s, lab) for g in ("adm", "midjourney") for s in ("train", "val") for lab in (0, 1)}
    assert detect_layout(tmp_path) == "genimage"
    with pytest.raises(DataError, match="no images"):
        read_genimage(tmp_path / "adm" / "train")


def test_ufd_layout_with_and_without_classes(tmp_path):
    png(tmp_path / "progan" / "car" / "0_real" / "a.png")
    png(tmp_path / "progan" / "cat" / "1_fake" / "b.png")
    png(tmp_path / "stylegan" / "0_real" / "c.png")
    png(tmp_path / "stylegan" / "1_fake" / "d.png")
    (tmp_path / "stylegan" / "1_fake" / "notes.txt").write_text("not an image")
    recs = read_ufd(tmp_path, split="test")
    assert sorted((r.generator, r.label, r.path.name) for r in recs) == [
        ("progan", 0, "b.png"), ("progan", 1, "a.png"), ("stylegan", 0, "d.png"), ("stylegan", 1, "c.png")]
    assert detect_layout(tmp_path) == "ufd" and all(r.split == "test" for r in recs)


def test_fakeclue_json(tmp_path):
    png(tmp_path / "img" / "1.png"), png(tmp_path / "img" / "2.png", 2)
    entries = [
        {"image": "img/1.png", "label": 0, "cate": "face", "conversations": [
            {"from": "human", "value": "<image>\nDoes this image look real/fake?"},
            {"from": "gpt", "value": "This is a fake image. The hair melts into the background."}]},
        {"image": "img/2.png", "label": 1, "conversations": [{"from": "gpt", "value": "This is a real image."}]},
        {"image": "img/3.png", "label": 1, "conversations": []},
        {"label": 1},
    ]
    (tmp_path / "fc.json").write_text(json.dumps(entries))
    issues = Issues()
    recs = read_fakeclue(tmp_path / "fc.json", issues=issues)
    assert [(r.label, r.generator) for r in recs] == [(0, "face"), (1, "")]
    assert recs[0].explanation.startswith("This is a fake image. The hair")
    assert [w.rsplit("[", 1)[1] for w, _ in issues] == ["2]", "3]"]


def test_captions_jsonl(tmp_path):
    png(tmp_path / "a.png")
    (tmp_path / "c.jsonl").write_text('{"image": "a.png", "caption": "a cat"}\n\nnot json\n{"image": "a.png"}\n')
    issues = Issues()
    recs = read_captions(tmp_path / "c.jsonl", issues=issues)
    assert [(r.caption, r.label) for r in recs] == [("a cat", 1)]
    assert [w.rsplit(":", 1)[1] for w, _ in issues] == ["3", "4"]
    assert detect_layout(tmp_path / "c.jsonl") == "captions"


def test_read_source_errors(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        read_source(tmp_path / "nowhere")
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(DataError, match="unknown data file type"):
        read_source(tmp_path / "x.txt")


@pytest.mark.skipif(not SHARED.is_file(), reason="shared CNNDetection set not present")
def test_shared_cnndetection_manifest():
    recs = read_source(SHARED, strict=True)
    assert len(recs) == 400
    gens = {r.generator for r in recs}
    assert len(gens) == 10
    assert sum(r.label for r in recs) == 200
