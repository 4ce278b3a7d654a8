"""Product surfaces on a tiny random UniGenDet checkpoint: `unigendet detect` and
`generate` on the command line and the FastAPI app, fed a corpus of odd inputs."""

import json
import threading

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from odd_inputs import build_odd_inputs
from unigendet.apps.predictor import Predictor
from unigendet.apps.server import Limits, create_app
from unigendet.cli import main
from unigendet.unified.checkpoint import save_checkpoint
from unigendet.unified.pipeline import codec_for
from unigendet.unified.presets import create_model, get_config


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    torch.manual_seed(0)
    cfg = get_config("tiny")
    model = create_model(cfg)
    path = tmp_path_factory.mktemp("ckpt") / "step-000001"
    save_checkpoint(path, model, cfg, ema=model, files={"codec": codec_for(cfg)})  # an untrained codec
    return str(path)


@pytest.fixture(scope="module")
def odd(tmp_path_factory):
    root = tmp_path_factory.mktemp("odd")
    return root, build_odd_inputs(root)


def test_the_odd_corpus_is_big_enough(odd):
    _, expect = odd
    assert len(expect) >= 30 and sum(e != "ok" for e in expect.values()) >= 8


def detect_jsonl(capsys, *argv):
    rc = main(["detect", *argv, "--format", "jsonl", "--quiet"])
    return rc, [json.loads(x) for x in capsys.readouterr().out.splitlines()]


def test_cli_gives_every_odd_file_a_verdict_or_a_clear_error(ckpt, odd, capsys):
    root, expect = odd
    rc, rows = detect_jsonl(capsys, "--checkpoint", ckpt, str(root), str(root / "no-extension"))
    assert rc == 0
    by_name = {}
    for r in rows:
        by_name.setdefault(r["path"].rsplit("/", 1)[-1], r)
    assert set(by_name) == set(expect)  # folders: image suffixes; named files: whatever their name
    for name, e in expect.items():
        r = by_name[name]
        if e == "ok":
            assert r["label"] in ("real", "fake") and 0 <= r["p_fake"] <= 1, (name, r)
        else:
            assert "label" not in r and e in r["error"], (name, r)


def test_cli_exit_code_only_fails_when_nothing_was_read(ckpt, odd, capsys):
    root, _ = odd
    rc, rows = detect_jsonl(capsys, "--checkpoint", ckpt, str(root / "empty.png"), str(root / "missing.png"))
    assert rc == 1 and [r["error"] for r in rows] == ["empty file", "no such file or folder"]
    assert main(["detect", "--checkpoint", str(root), str(root / "rgba.png"), "--quiet"]) == 2  # not a checkpoint
    assert "error" in capsys.readouterr().err


def test_cli_formats_and_explanations(ckpt, odd, capsys):
    root, _ = odd
    assert main(["detect", "--checkpoint", ckpt, str(root / "rgba.png"), str(root / "empty.jpg"), "--format", "csv",
                 "--quiet"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "path,label,p_fake,spread,explanation,error,note,evidence,uncertain"
    assert lines[2].endswith("empty file,,,")
    rc, rows = detect_jsonl(capsys, "--checkpoint", ckpt, str(root / "rgba.png"), "--explain")
    assert rc == 0 and isinstance(rows[0]["explanation"], str) and "p_fake" in rows[0]["evidence"]
    assert main(["detect", "--checkpoint", ckpt, str(root / "rgba.png"), "--quiet"]) == 0
    assert "verdict" in capsys.readouterr().out


def test_generate_same_seed_same_image(ckpt, tmp_path):
    args = ["generate", "a red square", "--checkpoint", ckpt, "--steps", "3"]
    for name, seed in (("a.png", "1"), ("b.png", "1"), ("c.png", "2")):
        assert main([*args, "--seed", seed, "-o", str(tmp_path / name)]) == 0
    a, b, c = (np.asarray(Image.open(tmp_path / n)) for n in ("a.png", "b.png", "c.png"))
    assert a.shape == (64, 64, 3) and np.array_equal(a, b) and not np.array_equal(a, c)
    assert main([*args, "--n", "2", "--size", "32", "-o", str(tmp_path / "n.png")]) == 0
    assert Image.open(tmp_path / "n-1.png").size == (32, 32)
    assert main([*args, "--size", "30", "-o", str(tmp_path / "x.png")]) == 2  # not a multiple of 8


@pytest.fixture(scope="module")
def client(ckpt):
    return TestClient(create_app(Predictor(ckpt), Limits(max_bytes=2_000_000)))


def test_server_answers_every_odd_upload_without_a_5xx(client, odd):
    root, expect = odd
    for name, e in expect.items():
        r = client.post("/api/detect", files={"image": (name, (root / name).read_bytes())})
        assert r.status_code < 500, (name, r.text)
        if e == "ok":
            j = r.json()
            assert r.status_code == 200 and j["label"] in ("real", "fake") and 0 <= j["p_fake"] <= 1, name
            side = min(4, *Image.open(root / name).size) if name != "exif-rotated.jpg" else 4
            assert {"explanation", "model", "elapsed_ms"} <= set(j) and np.shape(j["heatmap"]) == (side, side), name
        else:
            assert r.status_code in (413, 422) and e in r.json()["detail"], (name, r.text)
    assert client.post("/api/detect", files={"image": ("huge-header.png", (root / "huge-header.png").read_bytes())}
                       ).status_code == 413


def test_server_limits_and_errors(client, odd):
    root, _ = odd
    assert client.post("/api/detect", files={"image": ("big.png", b"\0" * 2_100_000)}).status_code == 413
    assert client.post("/api/detect", data={"explain": "true"}).status_code == 422  # no image field
    j = client.post("/api/detect", files={"image": ("rgba.png", (root / "rgba.png").read_bytes())},
                    data={"explain": "true"}).json()
    assert j["evidence"].endswith("call.") and np.shape(j["heatmap"]) == (4, 4)  # one tile map serves both
    assert client.post("/api/generate", data={"prompt": "x", "size": "30"}).status_code == 400
    assert client.get("/healthz").json()["kind"] == "unigendet"
    assert "unigendet" in client.get("/").text
    r = client.post("/api/generate", data={"prompt": "a red square", "steps": "2", "seed": "3"})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert Image.open(__import__("io").BytesIO(r.content)).size == (64, 64)


def test_concurrent_requests_do_not_corrupt_each_other(client, odd):
    root, _ = odd
    names = ["rgba.png", "gray.png", "cmyk.jpg", "image.webp"] * 3
    expected = {n: client.post("/api/detect", files={"image": (n, (root / n).read_bytes())},
                               data={"heatmap": "false"}).json()["p_fake"] for n in set(names)}
    got, errors = [None] * len(names), []

    def worker(i, n):
        try:
            got[i] = client.post("/api/detect", files={"image": (n, (root / n).read_bytes())},
                                 data={"heatmap": "false"}).json()["p_fake"]
        except Exception as e:  # noqa: BLE001 (reported below)
            errors.append(e)

    threads = [threading.Thread(target=worker, args=(i, n)) for i, n in enumerate(names)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for n, p in zip(names, got, strict=True):
        assert p == pytest.approx(expected[n], abs=1e-6)


def test_a_failing_batch_reaches_every_caller(ckpt, monkeypatch):
    pred = Predictor(ckpt)
    image = Image.new("RGB", (64, 64))

    def boom(images):
        raise RuntimeError("model failed")

    monkeypatch.setattr(pred.detector, "predict_images", boom)
    errors = []

    def call():
        try:
            pred.detect([image])
        except RuntimeError as e:
            errors.append(str(e))

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert errors == ["model failed"] * 4 and not pred.queue


def test_a_detector_that_writes_nothing_is_explained_by_unigendet(ckpt, odd, capsys):
    """The shipped detector gives the verdict and its reasons (its attribution, in words); a UniGenDet
    checkpoint adds its measured cues, never a verdict sentence of its own; where UniGenDet's own
    verdict differs, one line says so."""
    from unigendet.apps.predictor import disagreement
    from unigendet.detectors.attribution import attribute
    from unigendet.explain import evidence, reasons

    root, _ = odd
    img = Image.open(root / "rgba.png").convert("RGB")
    alone = Predictor("shipped", explainer=None)
    (a,) = alone.detect([img], explain=True)
    (att,) = attribute(alone.detector, [img])
    assert not alone.can_explain and a.explanation == reasons(att.contributions, a.label) and a.note is None
    both = Predictor("shipped", explainer=ckpt)
    assert both.can_explain and both.kind == "forensic"
    (v,) = both.detect([img], explain=True)
    assert v.explanation.startswith(a.explanation) and v.p_fake == pytest.approx(alone.detect([img])[0].p_fake)
    assert "This is a" not in v.explanation  # the explainer's verdict sentence is not shown
    own = both.explainer().explain_images([img])[0]
    assert v.note == disagreement(v.label, own.text, own.p_fake)
    # the detector's own evidence: a tile map only for an image larger than one crop, and how sure
    big = img.resize((3 * both.detector.side, 2 * both.detector.side))
    (vb,) = both.detect([big], explain=True)
    assert vb.tiles.shape == (4, 4) and vb.evidence == evidence(vb.p_fake, both.threshold, vb.tiles, vb.label)
    assert v.tiles is None and v.evidence == evidence(v.p_fake, both.threshold, None, v.label)
    assert alone.detect([img], explain=True)[0].evidence == v.evidence
    assert both.detect([img])[0].evidence is None
    # the note: silent on agreement, explicit on a difference, from the written verdict first
    assert disagreement("fake", "This is a fake image. No 8-pixel block grid.", 0.1) is None
    assert "calls the image real" in disagreement("fake", "This is a real image.", 0.9)
    assert "calls the image fake" in disagreement("real", "gibberish", 0.8)  # unparsed: its cls head
    assert disagreement("uncertain", "This is a real image.", 0.1) is None
    main(["detect", "--checkpoint", "shipped", str(root / "rgba.png"), "--explain", "--format", "jsonl", "--quiet"])
    row = json.loads(capsys.readouterr().out.splitlines()[0])
    assert "label" in row and ("explanation" in row) == Predictor("shipped").can_explain
