"""Folder scans: decoding in threads ahead of the model gives the same rows in the same order as
decoding in line, rows stream as batches finish, and `--resume` finishes a killed scan with no
row lost or repeated."""

import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from odd_inputs import build_odd_inputs
from unigendet.apps.detect import expand, finished_paths, run_detect
from unigendet.apps.predictor import Predictor
from unigendet.shipped import default_detector


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Small photos-like images of mixed sizes and formats, with the odd inputs mixed in."""
    root = tmp_path_factory.mktemp("scan")
    rng = np.random.default_rng(0)
    for i in range(24):
        w, h = int(rng.integers(40, 300)), int(rng.integers(40, 300))
        img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
        img.save(root / f"img{i:02d}.{('png', 'jpg', 'webp')[i % 3]}")
    build_odd_inputs(root / "odd")
    return root


def test_threads_give_the_rows_of_the_sequential_path_in_order(folder):
    predictor = Predictor(default_detector(), explainer=None)
    items = list(expand([str(folder)]))
    one = list(run_detect(predictor, items, batch=5, progress=False, workers=0))
    many = list(run_detect(predictor, items, batch=5, progress=False, workers=3))
    assert [r.path for r in one] == [p for p, _ in items] == [r.path for r in many]
    for a, b in zip(one, many, strict=True):
        assert (a.label, a.error) == (b.label, b.error)
        assert a.p_fake == b.p_fake or abs(a.p_fake - b.p_fake) < 1e-9
    assert any(r.error for r in one) and any(r.label for r in one)


def test_rows_stream_as_batches_finish(folder):
    predictor = Predictor(default_detector(), explainer=None)
    calls = []
    detect = predictor.detect
    predictor.detect = lambda images, explain=False: calls.append(len(images)) or detect(images, explain)
    rows = run_detect(predictor, list(expand([str(folder / "img00.png"), str(folder)])), batch=4, progress=False)
    first = next(rows)
    assert first.path.endswith("img00.png") and calls == [4]  # one batch scored, not the whole folder
    assert len(list(rows)) > 20


def test_finished_paths_cut_a_torn_last_line(tmp_path):
    out = tmp_path / "out.jsonl"
    out.write_text('{"path": "a", "label": "real"}\n{"path": "b", "label": "fake"}\n{"path": "c", "lab')
    assert finished_paths(out) == {"a", "b"}
    assert out.read_text().endswith('"fake"}\n')
    assert finished_paths(tmp_path / "none.jsonl") == set()


SCAN = [sys.executable, "-m", "unigendet.cli", "detect", "--quiet", "--batch", "4"]


def test_a_killed_scan_resumes_without_losing_or_repeating_a_row(folder, tmp_path):
    whole = subprocess.run([*SCAN, "--format", "jsonl", str(folder)], capture_output=True, text=True, timeout=600)
    assert whole.returncode == 0
    expected = {json.loads(x)["path"]: json.loads(x) for x in whole.stdout.splitlines()}
    out = tmp_path / "scan.jsonl"
    proc = subprocess.Popen([*SCAN, "--resume", str(out), str(folder)])
    deadline = time.time() + 300
    while time.time() < deadline and (not out.is_file() or out.read_text().count("\n") < 5):
        assert proc.poll() is None, "the scan ended before it could be killed"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(30)
    assert 5 <= len(finished_paths(out)) < len(expected)
    again = subprocess.run([*SCAN, "--resume", str(out), str(folder)], capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-2000:]
    rows = [json.loads(x) for x in out.read_text().splitlines()]
    assert sorted(r["path"] for r in rows) == sorted(expected)  # every image once
    for r in rows:
        e = expected[r["path"]]
        assert r.get("label") == e.get("label") and r.get("error") == e.get("error")
        assert r.get("p_fake") is None or abs(r["p_fake"] - e["p_fake"]) < 1e-6
