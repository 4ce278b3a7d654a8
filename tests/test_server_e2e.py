"""`unigendet serve` for real: a process on a free loopback port, JSON over HTTP, and the
page driven in headless Chromium (upload an image, read the verdict, generate)."""

import socket
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
import torch
from PIL import Image

from unigendet.unified.checkpoint import save_checkpoint
from unigendet.unified.pipeline import codec_for
from unigendet.unified.presets import create_model, get_config


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("serve")
    torch.manual_seed(0)
    cfg = get_config("tiny")
    save_checkpoint(root / "ckpt", create_model(cfg), cfg, files={"codec": codec_for(cfg)})
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "unigendet.cli", "serve", "--checkpoint", str(root / "ckpt"),
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.3)
        assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
    else:
        proc.kill()
        pytest.fail("server did not come up")
    image = root / "photo.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (96, 128, 3), dtype=np.uint8)).save(image)
    yield url, image
    proc.terminate()
    proc.wait(timeout=30)


def test_json_api_over_http(server):
    url, image = server
    r = httpx.post(f"{url}/api/detect", files={"image": ("photo.png", image.read_bytes(), "image/png")}, timeout=60)
    j = r.json()
    assert r.status_code == 200 and j["label"] in ("real", "fake") and 0 <= j["p_fake"] <= 1
    assert set(j) >= {"label", "p_fake", "explanation", "model", "elapsed_ms"} and j["model"] == "unigendet-tiny"
    bad = httpx.post(f"{url}/api/detect", files={"image": ("x.jpg", b"not an image")}, timeout=60)
    assert bad.status_code == 422 and "not a readable image" in bad.json()["detail"]
    g = httpx.post(f"{url}/api/generate", data={"prompt": "a cat", "steps": "2"}, timeout=60)
    assert g.status_code == 200 and g.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_page_in_headless_chromium(server, chromium, artifacts):
    url, image = server
    page = chromium.new_page()
    page.goto(url)
    page.wait_for_function("document.getElementById('model').textContent.includes('unigendet-tiny')")
    page.set_input_files("#file", str(image))
    page.wait_for_selector("#verdict[data-label]", timeout=60_000)
    verdict = page.locator("#verdict").inner_text()
    label = page.locator("#verdict").get_attribute("data-label")
    assert label in ("real", "fake") and verdict in ("Real", "Generated (fake)")
    assert "p(fake) = " in page.locator("#prob").inner_text()
    page.wait_for_function("document.getElementById('preview').naturalWidth > 0")
    page.fill("#prompt", "a red square")
    page.fill("#steps", "2")
    page.click("#gen button")
    page.wait_for_function("document.getElementById('generated').naturalWidth === 64", timeout=60_000)
    page.screenshot(path=str(artifacts / "server.png"), full_page=True)
    page.set_input_files("#file", {"name": "broken.png", "mimeType": "image/png", "buffer": b"\x89PNG broken"})
    page.wait_for_function("document.getElementById('error').textContent.length > 0")
    assert "Could not check this file" in page.locator("#error").inner_text()
    page.close()
