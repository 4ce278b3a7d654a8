"""`unigendet serve`: a FastAPI app around one loaded `Predictor`.

GET / (the page), GET /healthz, POST /api/detect (multipart field `image`), POST
/api/generate (form fields; answers a PNG). Uploads are read as bytes only - no request
value is ever used as a path - bounded in bytes before decoding and in pixels while
decoding; a bad input is a 4xx with a reason, never a 5xx. `guard` adds the token, the rate
limit, the bound on work in flight, the time limit and the security headers.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import FastAPI, File, Form, HTTPException, Request, UploadFile
from fastapi.responses import HTMLResponse, JSONResponse, Response

from ..data.imageio import DEFAULT_MAX_PIXELS, ImageError, open_image
from ..images import tensor_to_pil
from ..shipped import default_detector
from .assets import asset, with_shared_script
from .guard import Access, install, resolve_token
from .predictor import BASE_HELP, Predictor, timed


@dataclass(frozen=True)
class Limits:
    max_bytes: int = 20 * 1024 * 1024
    max_pixels: int = DEFAULT_MAX_PIXELS
    heatmap_grid: int = 4


@dataclass(frozen=True)
class ServeConfig:
    """`unigendet serve`: the model is loaded once."""

    checkpoint: str | None = None  # a detector run or checkpoint (UniGenDet: also text-to-image); default: shipped
    host: str = "127.0.0.1"  # loopback only; any other address needs a token or --insecure-no-auth
    port: int = 8000
    token: str | None = None  # required on the API as "Authorization: Bearer TOKEN" (default: $UNIGENDET_TOKEN)
    insecure_no_auth: bool = False  # serve beyond loopback without a token (anyone who reaches the port may call it)
    per_minute: int = Access.per_minute  # API requests per client address and minute (0: unlimited)
    max_pending: int = Access.max_pending  # work requests in flight; more are answered 503
    timeout: float = Access.timeout_s  # seconds before a work request is answered 504
    threshold: float | None = None  # p_fake above this is called fake (default: the detector's calibrated one)
    max_bytes: int = Limits.max_bytes  # largest upload
    max_pixels: int = Limits.max_pixels  # larger images are refused, undecoded
    device: str = "cpu"
    base: str | None = field(default=None, metadata={"help": BASE_HELP})
    max_batch: int = 16  # concurrent images scored in one forward pass


def create_app(predictor: Predictor, limits: Limits = Limits(), access: Access | None = None):
    """The app; `access` None: no token and the default limits (a loopback service)."""
    access = access or Access()
    app = FastAPI(title="unigendet", docs_url="/api/docs")
    capacity = install(app, access)
    page = with_shared_script(asset("page.html"))

    @app.middleware("http")
    async def refuse_large_bodies(request: Request, call_next):
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limits.max_bytes + 64 * 1024):
            return JSONResponse({"detail": f"upload larger than {limits.max_bytes:,} bytes"}, status_code=413)
        return await call_next(request)

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        return page

    @app.get("/healthz")
    def healthz() -> dict:
        return {"status": "ok", "model": predictor.name, "kind": predictor.kind,
                "explain": predictor.can_explain, "generate": predictor.can_generate, "token": access.token is not None}

    @app.post("/api/detect")
    def detect(image: Annotated[UploadFile, File()], explain: Annotated[bool, Form()] = False,
               heatmap: Annotated[bool, Form()] = True) -> dict:
        data = image.file.read(limits.max_bytes + 1)
        if len(data) > limits.max_bytes:
            raise HTTPException(413, f"upload larger than {limits.max_bytes:,} bytes")
        try:
            img = open_image(data, max_pixels=limits.max_pixels, name="upload")
        except ImageError as e:
            status = 413 if e.too_large else 422
            raise HTTPException(status, str(e)) from None
        return capacity.run(answer, img, explain, heatmap)

    def answer(img, explain: bool, heatmap: bool) -> dict:
        (verdict,), ms = timed(predictor.detect, [img], explain)
        out = {"label": verdict.label, "p_fake": verdict.p_fake, "explanation": verdict.explanation,
               "note": verdict.note, "evidence": verdict.evidence, "threshold": predictor.threshold,
               "spread": verdict.spread, "uncertain": verdict.uncertain, "model": predictor.name,
               "elapsed_ms": round(ms, 1), "width": img.width, "height": img.height,
               "attribution": verdict.attribution.to_json() if verdict.attribution is not None else None}
        if heatmap:  # none for an image the detector reads at once: every tile would be the same window
            g = limits.heatmap_grid
            tiles = verdict.tiles if verdict.tiles is not None and verdict.tiles.shape == (g, g) else \
                predictor.tile_scores(img, g) if predictor.has_tile_map(img) else None
            out["heatmap"] = None if tiles is None else tiles.round(4).tolist()
        return out

    @app.post("/api/generate")
    def generate(prompt: Annotated[str, Form(max_length=2000)], steps: Annotated[int, Form()] = 30,
                 guidance: Annotated[float, Form()] = 4.0, shift: Annotated[float, Form()] = 3.0,
                 seed: Annotated[int, Form()] = 0, size: Annotated[int | None, Form()] = None) -> Response:
        try:
            image = capacity.run(predictor.generate, prompt, size=size, steps=steps, guidance=guidance, shift=shift,
                                 seed=seed)[0]
        except ValueError as e:
            raise HTTPException(400, str(e)) from None
        buf = io.BytesIO()
        tensor_to_pil(image).save(buf, format="PNG")
        return Response(buf.getvalue(), media_type="image/png")

    return app


def serve(predictor: Predictor, host: str = "127.0.0.1", port: int = 8000, limits: Limits = Limits(),
          access: Access | None = None) -> None:
    import uvicorn

    uvicorn.run(create_app(predictor, limits, access), host=host, port=port, log_level="info")


def run_server(cfg: ServeConfig) -> None:
    """Check the exposure, load the checkpoint and serve until interrupted."""
    access = Access(resolve_token(cfg.host, cfg.token, cfg.insecure_no_auth), cfg.per_minute, cfg.max_pending,
                    cfg.timeout)
    predictor = Predictor(cfg.checkpoint or default_detector(), device=cfg.device, threshold=cfg.threshold,
                          base=cfg.base, max_batch=cfg.max_batch)
    serve(predictor, cfg.host, cfg.port, Limits(max_bytes=cfg.max_bytes, max_pixels=cfg.max_pixels), access)
