"""Who may call the service and how much: the token, the rate limit, the bound on work in flight,
the time limit, the security headers, and refusing to bind beyond loopback without a token."""

import threading
import time

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from unigendet.apps.guard import TOKEN_ENV, Access, install, is_loopback, resolve_token

TOKEN = "s3cret-token-of-some-length"


def app_with(access: Access, gate: threading.Event | None = None, entered: threading.Event | None = None) -> FastAPI:
    app = FastAPI(docs_url="/api/docs")
    capacity = install(app, access)

    @app.get("/")
    def page() -> dict:
        return {"page": True}

    @app.get("/healthz")
    def health() -> dict:
        return {"status": "ok"}

    @app.post("/api/detect")
    def detect(wait: float = 0.0, block: bool = False) -> dict:
        def work():
            if block and gate is not None:
                entered.set()
                gate.wait(10)
            time.sleep(wait)
            return {"label": "real"}

        return capacity.run(work)

    return app


def test_token_is_required_on_the_api_only():
    client = TestClient(app_with(Access(token=TOKEN, per_minute=0)))
    assert client.get("/").status_code == 200 and client.get("/healthz").status_code == 200
    r = client.post("/api/detect")
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert client.post("/api/detect", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.post("/api/detect", headers={"Authorization": TOKEN}).status_code == 401  # no scheme
    assert client.get("/api/docs").status_code == 401
    ok = client.post("/api/detect", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200 and ok.json() == {"label": "real"}


def test_rate_limit_answers_429_with_retry_after_per_client():
    client = TestClient(app_with(Access(per_minute=3)))
    codes = [client.post("/api/detect").status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    r = client.post("/api/detect")
    assert r.status_code == 429 and 1 <= int(r.headers["retry-after"]) <= 60
    assert client.get("/healthz").status_code == 200  # the page and health check are not counted
    other = TestClient(app_with(Access(per_minute=3)), client=("10.0.0.9", 5000))
    assert other.post("/api/detect").status_code == 200


def test_work_beyond_capacity_is_refused_not_queued():
    gate, entered = threading.Event(), threading.Event()
    with TestClient(app_with(Access(per_minute=0, max_pending=1), gate, entered)) as client:
        first: dict = {}
        t = threading.Thread(target=lambda: first.update(r=client.post("/api/detect", params={"block": True})))
        t.start()
        assert entered.wait(10)  # the first request holds the only slot
        r = client.post("/api/detect")
        assert r.status_code == 503 and r.headers["retry-after"] == "5"
        gate.set()
        t.join(10)
        assert first["r"].status_code == 200
        assert client.post("/api/detect").status_code == 200  # the slot is free again


def test_slow_work_is_answered_504_and_keeps_its_slot_until_done():
    with TestClient(app_with(Access(per_minute=0, max_pending=1, timeout_s=0.3))) as client:
        r = client.post("/api/detect", params={"wait": 1.0})
        assert r.status_code == 504
        assert client.post("/api/detect").status_code == 503  # the timed-out work still runs
        time.sleep(1.0)
        assert client.post("/api/detect").status_code == 200


def test_every_answer_carries_the_security_headers():
    client = TestClient(app_with(Access(token=TOKEN, per_minute=0)))
    for r in (client.get("/"), client.post("/api/detect")):
        assert r.headers["x-content-type-options"] == "nosniff" and r.headers["x-frame-options"] == "DENY"
        assert "default-src 'self'" in r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]


def test_binding_beyond_loopback_needs_a_token(monkeypatch):
    monkeypatch.delenv(TOKEN_ENV, raising=False)
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.4") and not is_loopback("example.org")
    assert resolve_token("127.0.0.1", None, False) is None
    with pytest.raises(SystemExit, match="--insecure-no-auth"):
        resolve_token("0.0.0.0", None, False)
    assert resolve_token("0.0.0.0", None, True) is None
    assert resolve_token("0.0.0.0", TOKEN, False) == TOKEN
    monkeypatch.setenv(TOKEN_ENV, TOKEN)
    assert resolve_token("0.0.0.0", None, False) == TOKEN
    with pytest.raises(SystemExit, match="16 characters"):
        resolve_token("0.0.0.0", "short", False)


def test_the_service_requires_its_token(monkeypatch):
    """`create_app` with a token: the page and health check open, detection behind the token."""
    from unigendet.apps.predictor import Predictor
    from unigendet.apps.server import create_app
    from unigendet.shipped import default_detector

    client = TestClient(create_app(Predictor(default_detector(), explainer=None), access=Access(token=TOKEN)))
    assert client.get("/healthz").json()["token"] is True
    assert "#token=" in client.get("/").text  # the page says how to give it
    png = (__import__("io").BytesIO())
    from PIL import Image

    Image.new("RGB", (64, 64), (10, 200, 30)).save(png, "PNG")
    files = {"image": ("x.png", png.getvalue(), "image/png")}
    assert client.post("/api/detect", files=files).status_code == 401
    r = client.post("/api/detect", files=files, headers={"Authorization": f"Bearer {TOKEN}"})
    assert r.status_code == 200 and r.json()["label"] in ("real", "fake", "uncertain")
