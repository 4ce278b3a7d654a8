"""`unigendet scan` on a local two-CPU Ray instance: every listed image appears once, unreadable ones
as error rows, with the verdicts `unigendet detect` gives; manifests in, Parquet out; and without
Ray, one line saying how to install it."""

import io
import json
import logging
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from unigendet.apps.detect import DetectConfig, detect_paths
from unigendet.apps.predictor import Predictor
from unigendet.apps.scan import ScanConfig, scan_paths
from unigendet.cli import main

COLUMNS = ["path", "label", "p_fake", "spread", "uncertain", "error"]

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:ray.data.context")  # Ray's own settings


@pytest.fixture(scope="module")
def ray_local():
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'unigendet[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield ray
    ray.shutdown()


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Eight images of different sizes (PNG and JPEG), a truncated PNG, text named .jpg, and a .txt
    file that folder listing skips."""
    root = tmp_path_factory.mktemp("ray-scan")
    (root / "sub").mkdir()
    rng = np.random.default_rng(1)
    sizes = [(40, 30), (300, 200), (520, 380), (256, 256), (90, 700), (640, 480), (128, 96), (333, 277)]
    for i, (w, h) in enumerate(sizes):
        where = root / "sub" if i % 3 == 0 else root
        pixels = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(where / f"img{i}.{'png' if i % 2 else 'jpg'}")
    (root / "broken.png").write_bytes((root / "img1.png").read_bytes()[:300])
    (root / "notes.jpg").write_text("not an image")
    (root / "readme.txt").write_text("skipped")
    return root


@pytest.fixture(scope="module")
def detected(folder):
    """`unigendet detect`'s rows for the folder, by path."""
    out = io.StringIO()
    detect_paths(DetectConfig(paths=(str(folder),), format="jsonl", quiet=True), out=out)
    return {r["path"]: r for r in map(json.loads, out.getvalue().splitlines())}


def agree(row: dict, expected: dict):
    """A scan row says what detect said: label and p_fake, or an error."""
    if "error" in expected:
        assert row["error"] and row["label"] is None and row["p_fake"] is None and row["spread"] is None, row
    else:
        assert row["error"] is None and row["label"] == expected["label"], (row, expected)
        assert abs(row["p_fake"] - expected["p_fake"]) < 1e-6, (row, expected)
        assert row["spread"] is None if "spread" not in expected else abs(row["spread"] - expected["spread"]) < 1e-6
        assert row["uncertain"] == expected.get("uncertain")


def test_a_folder_scan_gives_detects_verdicts_once_each(ray_local, folder, detected, tmp_path, capsys):
    out = tmp_path / "out"
    assert scan_paths(ScanConfig(out=str(out), paths=(str(folder),), actors=2, batch=3, shard=4, quiet=True)) == 0
    rows = [json.loads(line) for f in sorted(out.glob("*.json")) for line in f.read_text().splitlines()]
    assert all(list(r) == COLUMNS for r in rows)
    assert sorted(r["path"] for r in rows) == sorted(detected)  # each once; readme.txt not listed
    assert len(detected) == 10 and {Path(p).name for p, r in detected.items() if "error" in r} == {
        "broken.png", "notes.jpg"}
    for r in rows:
        agree(r, detected[r["path"]])
    summary = capsys.readouterr().out
    fake = sum(r.get("label") == "fake" for r in detected.values())
    assert f"scan: 10 images: {fake} fake, " in summary and ", 2 errors in " in summary


def test_a_manifest_scan_writes_parquet(ray_local, folder, detected, tmp_path, monkeypatch):
    import pyarrow.parquet as pq

    files = sorted(detected)
    monkeypatch.chdir(folder)
    relative = str(Path(files[0]).relative_to(folder))  # read from the current directory
    uri = Path(files[1]).as_uri()  # file://..., read through pyarrow's filesystems
    listed = [relative, uri, *files[2:], str(folder / "gone.png")]
    manifest = tmp_path / "manifest.txt"
    manifest.write_text("\n".join(listed) + "\n\n")
    out = tmp_path / "out"
    report = tmp_path / "scan.html"
    assert scan_paths(ScanConfig(out=str(out), manifest=str(manifest), format="parquet", actors=1, quiet=True,
                                 report=str(report))) == 0
    table = pq.read_table(out)
    assert table.schema.names == COLUMNS and str(table.schema.field("p_fake").type) == "double"
    rows = {r["path"]: r for r in table.to_pylist()}
    assert sorted(rows) == sorted(listed) and len(rows) == table.num_rows
    # the triage page of the shards: every row, a thumbnail for each readable image (URIs included)
    page = json.loads(re.search(r'id="rows">(.*?)</script>', report.read_text(), re.S)[1])
    assert sorted(r["path"] for r in page) == sorted(listed)
    assert all(("thumb" in r) == (rows[r["path"]]["error"] is None) for r in page)
    about = json.loads(re.search(r'id="about">(.*?)</script>', report.read_text(), re.S)[1])
    assert about["detector"] == "shipped" and about["threshold"] == pytest.approx(Predictor("shipped").threshold)
    assert rows[str(folder / "gone.png")]["error"] == "no such file"
    for path, file in zip(listed, files, strict=False):
        agree(rows[path], detected[file])


def test_an_image_the_detector_fails_on_is_an_error_row_not_a_failed_batch(folder, detected):
    pa = pytest.importorskip("pyarrow", reason="Ray's extra brings pyarrow")
    from unigendet.apps.scan import Scorer

    scorer = Scorer("shipped", threshold=None, batch=16, max_pixels=10**8, root=str(folder))
    detect = scorer.predictor.detect

    def failing(images, explain=False):  # the detector cannot take the 40 x 30 image
        if any(im.size == (40, 30) for im in images):
            raise RuntimeError("boom")
        return detect(images, explain)

    scorer.predictor.detect = failing
    files = sorted(p for p, r in detected.items() if "error" not in r)
    rows = scorer(pa.table({"path": files})).to_pylist()
    failed = [r for r in rows if r["error"]]
    assert [Path(r["path"]).name for r in failed] == ["img0.jpg"] and "RuntimeError: boom" in failed[0]["error"]
    for r in rows:
        agree(r, detected[r["path"]] if r["error"] is None else {"error": r["error"]})


def test_a_non_empty_output_directory_is_refused(ray_local, folder, tmp_path, capsys):
    (tmp_path / "old.json").write_text("{}\n")
    assert main(["scan", "--out", str(tmp_path), str(folder)]) == 2
    assert "is not empty" in capsys.readouterr().err


def test_without_ray_scan_says_how_to_install_it(folder, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now fails as if it were not installed
    assert main(["scan", "--out", str(tmp_path / "out"), str(folder)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "pip install 'unigendet[ray]'" in err


def test_the_cli_and_the_scan_module_do_not_import_ray():
    code = "import sys, unigendet.cli, unigendet.apps.scan; print('ray' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True).stdout.strip() == "False"
