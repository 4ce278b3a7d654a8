"""The built-in corpus (small settings) and the metadata shortcut guard."""

import csv
import io
import json
import shutil
from collections import Counter

import numpy as np
import pytest
from PIL import Image

from unigendet.cli import main
from unigendet.corpus.build import split_groups
from unigendet.corpus.sources import discover_photos
from unigendet.data.audit import audit
from unigendet.data.readers import read_manifest


def test_corpus_has_generators_packages_and_pairs(corpus):
    recs = read_manifest(corpus / "manifest.csv", strict=True, verify=True)
    fakes = [r for r in recs if r.label == 0]
    reals = [r for r in recs if r.label == 1]
    assert len({r.generator for r in fakes}) >= 3
    packages = {r.source.split("/")[0] for r in reals}
    assert len(packages & {"skimage", "sklearn", "matplotlib", "opencv", "mate", "lomiri"}) >= 2
    # each generator is paired with as many reals as fakes, in every split
    assert Counter((r.split, r.generator) for r in fakes) == Counter((r.split, r.generator) for r in reals)
    assert {r.split for r in recs} == {"train", "val", "test"}
    assert all(r.caption and r.explanation for r in recs)
    assert all(r.explanation.startswith("This is a fake image.") for r in fakes)
    assert all(r.explanation.startswith("This is a real image.") for r in reals)


def test_same_size_and_encoding_for_both_classes(corpus):
    recs = read_manifest(corpus / "manifest.csv")
    sizes = Counter()
    for r in recs:
        with Image.open(r.path) as im:
            sizes[(im.format, im.size, im.mode, r.path.stat().st_size)] += 1
    assert len(sizes) == 1, sizes  # uncompressed PNG: identical byte size too


def test_splits_are_by_photo_group(corpus):
    group = {p.id: p.group for p in discover_photos()}
    recs = read_manifest(corpus / "manifest.csv")
    split_of_group = {}
    for r in recs:
        assert split_of_group.setdefault(group[r.source], r.split) == r.split, r.source


def test_split_groups_keeps_near_duplicates_together():
    photos = discover_photos()
    split = split_groups(photos, (0.6, 0.2, 0.2), seed=0)
    counts = Counter(split[p.group] for p in photos)
    assert set(counts) == {"train", "val", "test"} and counts["train"] > counts["test"]


def test_captions_and_datacard(corpus):
    lines = [json.loads(x) for x in (corpus / "captions.jsonl").read_text().splitlines()]
    assert lines and all((corpus / x["image"]).is_file() and x["caption"] for x in lines)
    card = (corpus / "DATACARD.md").read_text()
    assert "| train |" in card and "licence" in card and "realesrgan-x4plus" in card


def test_audit_passes_on_the_corpus(corpus, capsys):
    assert main(["data", "audit", str(corpus / "manifest.csv")]) == 0
    assert "PASS" in capsys.readouterr().out


def leaky_copy(corpus, dst, how):
    shutil.copytree(corpus, dst)
    rows = list(csv.DictReader((dst / "manifest.csv").open()))
    for row in rows:
        if row["label"] != "real":
            continue
        path = dst / row["path"]
        img = Image.open(path).convert("RGB")
        if how == "format":  # reals as JPEG files, fakes as PNG
            new = path.with_suffix(".jpg")
            img.save(new, quality=90)
            path.unlink()
            row["path"] = new.relative_to(dst).as_posix()
        elif how == "border":  # a black frame on reals only
            arr = np.asarray(img).copy()
            arr[:3], arr[-3:], arr[:, :3], arr[:, -3:] = 0, 0, 0, 0
            Image.fromarray(arr).save(path, compress_level=0)
        elif how == "jpeg-history":  # reals were JPEGs once, re-saved as identical PNGs
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=40)
            Image.open(buf).convert("RGB").save(path, compress_level=0)
    with (dst / "manifest.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return dst / "manifest.csv"


@pytest.mark.parametrize("how", ["format", "border", "jpeg-history"])
def test_audit_fails_on_leaky_fixtures(corpus, tmp_path, how, capsys):
    manifest = leaky_copy(corpus, tmp_path / "leaky", how)
    result = audit(read_manifest(manifest))
    assert not result.passed, result.report()
    assert main(["data", "audit", str(manifest)]) == 1
    assert "FAIL" in capsys.readouterr().out


def test_data_build_reports_sources_and_stops_below_the_minimum(tmp_path, capsys):
    out = tmp_path / "c"
    assert main(["data", "build", "--out", str(out), "--photo-sources", "python", "--quiet"]) == 2
    std = capsys.readouterr()
    assert "scikit-image (PyPI)" in std.out and "7 photos" in std.out  # per-package counts
    assert "apt-get install opencv-doc" in std.err and "--small-corpus" in std.err and len(std.err.splitlines()) == 1
    assert not out.exists()


def test_audit_catches_a_shortcut_in_a_few_dozen_files(corpus, tmp_path):
    manifest = leaky_copy(corpus, tmp_path / "leaky", "format")
    recs = read_manifest(manifest)
    few = [r for r in recs if r.label == 1][:20] + [r for r in recs if r.label == 0][:20]
    assert not audit(few).passed
