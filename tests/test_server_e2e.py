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


def wait_for(page, expression: str, timeout: float = 30) -> None:
    """Poll a JS expression until it is truthy (from outside the page: its CSP forbids the eval that
    Playwright's own wait_for_function injects, as it should)."""
    deadline = time.time() + timeout
    while not page.evaluate(expression):
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {expression}")
        time.sleep(0.1)


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
    wait_for(page, "document.getElementById('model').textContent.includes('unigendet-tiny')")
    page.set_input_files("#file", str(image))
    page.wait_for_selector("#verdict[data-label]", timeout=60_000)
    verdict = page.locator("#verdict").inner_text()
    label = page.locator("#verdict").get_attribute("data-label")
    assert label in ("real", "fake") and verdict in ("Real (a photo)", "Generated (fake)")
    assert "p(fake) = " in page.locator("#prob").inner_text()
    wait_for(page, "document.getElementById('preview').naturalWidth > 0")
    page.fill("#prompt", "a red square")
    page.fill("#steps", "2")
    page.click("#gen button")
    wait_for(page, "document.getElementById('generated').naturalWidth === 64", 60)
    page.screenshot(path=str(artifacts / "server.png"), full_page=True)
    page.set_input_files("#file", {"name": "broken.png", "mimeType": "image/png", "buffer": b"\x89PNG broken"})
    wait_for(page, "document.getElementById('error').textContent.length > 0")
    assert "Could not check this file" in page.locator("#error").inner_text()
    page.close()


def test_page_shows_uncertain_as_such_and_charts_the_evidence(server, chromium, artifacts):
    """The page renders what the API answers: an uncertain verdict is headed as uncertain, the
    attribution is one bar per kind of evidence (toward generated to the right, in red), and a
    small image without a heat map hides the heat-map caption."""
    url, image = server
    answer = {"label": "uncertain", "p_fake": 0.82, "spread": 0.23, "threshold": 0.45, "model": "forensic-wild",
              "elapsed_ms": 5.0, "width": 64, "height": 64, "heatmap": None, "note": None,
              "explanation": "The image's parts disagree.", "evidence": "The detector's p_fake is 0.82.",
              "attribution": {"method": "linear", "logit": 1.5, "base": 0.5,
                              "contributions": {"fine pixel traces": 1.9, "content and colour": -0.6,
                                                "mid-level texture": 0.2}}}
    page = chromium.new_page()
    page.route("**/api/detect", lambda route: route.fulfill(json=answer))
    page.goto(url)
    page.set_input_files("#file", str(image))
    page.wait_for_selector("#verdict[data-label]", timeout=60_000)
    assert page.locator("#verdict").inner_text().startswith("Uncertain")
    assert page.locator("#verdict").get_attribute("class") == "uncertain"
    bars = page.locator("#chart .contrib")
    assert bars.count() == 3
    assert bars.nth(0).locator(".name").inner_text() == "fine pixel traces"
    assert bars.nth(0).locator(".v").inner_text() == "+1.90" and bars.nth(1).locator(".v").inner_text() == "-0.60"
    red = bars.nth(0).locator(".b").evaluate("e => [e.style.left, e.style.background]")
    green = bars.nth(1).locator(".b").evaluate("e => [e.style.left, e.style.background]")
    assert red[0] == "50%" and "204, 34, 34" in red[1] and green[0] != "50%" and "34, 170, 34" in green[1]
    assert not page.locator("#heatnote").is_visible()
    page.screenshot(path=str(artifacts / "server-uncertain.png"), full_page=True)
    page.close()


def test_page_takes_three_dropped_images_and_a_broken_one(server, chromium, artifacts):
    """Files dropped at once fill a grid, one card per file, as each verdict arrives; a card opens its
    verdict in the detail panel; a broken file gets its error on its card, not a lost row."""
    import base64
    import io

    url, image = server
    rng = np.random.default_rng(5)
    files = []
    for i in range(3):
        buf = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (64 + 16 * i, 80, 3), dtype=np.uint8)).save(buf, format="PNG")
        files.append((f"drop{i}.png", base64.b64encode(buf.getvalue()).decode()))
    page = chromium.new_page()
    page.goto(url)
    wait_for(page, "document.getElementById('model').textContent.includes('unigendet-tiny')")
    drop = page.evaluate_handle("""files => { const dt = new DataTransfer();
        for (const [name, b64] of files) {
          const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));
          dt.items.add(new File([bytes], name, {type: "image/png"}));
        }
        return dt; }""", files)
    page.dispatch_event("#drop", "drop", {"dataTransfer": drop})
    wait_for(page, "document.querySelectorAll('#grid .card[data-label]').length === 3", 60)
    labels = page.locator("#grid .card").evaluate_all("cs => cs.map(c => c.dataset.label)")
    assert len(labels) == 3 and set(labels) <= {"real", "fake"}
    assert page.locator("#batchsum").inner_text().startswith("3 images:") and "to go" not in \
        page.locator("#batchsum").inner_text()
    page.locator("#grid .card").nth(1).click()
    page.wait_for_selector("#verdict[data-label]")
    assert page.locator("#verdict").get_attribute("data-label") == labels[1]
    page.screenshot(path=str(artifacts / "server-batch.png"), full_page=True)
    page.set_input_files("#file", [{"name": "photo.png", "mimeType": "image/png", "buffer": image.read_bytes()},
                                   {"name": "broken.png", "mimeType": "image/png", "buffer": b"no"}])
    wait_for(page, "document.querySelectorAll('#grid .card[data-label]').length === 2", 60)
    assert page.locator("#grid .card.error .v").inner_text().startswith("not checked:")
    page.close()
