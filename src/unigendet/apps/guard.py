"""Who may call the service and how much: a bearer token, a per-client rate limit, a bound on the
work in flight, a time limit per request, and security headers on every answer.

The token is compared in constant time. The rate limit is a moving window per client address
(`limits`, in memory: one process). The model's work runs through `Capacity`: beyond
`max_pending` jobs in flight a request is answered 503 at once instead of queueing without bound;
a job still running after `timeout_s` is answered 504 while its slot stays taken until the work
really ends (a thread cannot be stopped), so timed-out work cannot pile up either.
docs/security.md describes the exposure model.
"""

from __future__ import annotations

import hmac
import ipaddress
import math
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse

TOKEN_ENV = "UNIGENDET_TOKEN"
OPEN_PATHS = ("/", "/healthz")  # the page and the health check need no token (they reveal no result)
# the page's own script and styles are inline; uploads are shown from blob: URLs
CSP = ("default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'; "
       "script-src 'self' 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
       "form-action 'self'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
           "Referrer-Policy": "no-referrer", "Cache-Control": "no-store"}


@dataclass(frozen=True)
class Access:
    token: str | None = None  # required as "Authorization: Bearer TOKEN" on the API when set
    per_minute: int = 60  # requests per client address and minute on the API (0: unlimited)
    max_pending: int = 16  # work requests in flight (the predictor batches them); more are answered 503
    timeout_s: float = 120.0  # a work request still running after this is answered 504


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_token(host: str, token: str | None, insecure_no_auth: bool) -> str | None:
    """The token the service requires: the given one, else $UNIGENDET_TOKEN; binding beyond
    loopback without one is refused unless `insecure_no_auth` says so explicitly."""
    token = token or os.environ.get(TOKEN_ENV) or None
    if token is None and not is_loopback(host) and not insecure_no_auth:
        raise SystemExit(f"serve: binding to {host} exposes the service beyond this machine; set a token "
                         f"(--token or ${TOKEN_ENV}) or pass --insecure-no-auth to serve without one")
    if token is not None and len(token) < 16:
        raise SystemExit("serve: the token must have at least 16 characters")
    return token


def authorised(request: Request, token: str) -> bool:
    given = request.headers.get("authorization", "")
    scheme, _, value = given.partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode(), token.encode())


class Capacity:
    """Runs the model's jobs: at most `max_pending` at once (503 beyond), each answered within
    `timeout_s` (504 after it; its slot is freed when the job ends)."""

    def __init__(self, max_pending: int, timeout_s: float):
        self.max_pending, self.timeout_s = max_pending, timeout_s
        self.pool = ThreadPoolExecutor(max_workers=max(1, max_pending), thread_name_prefix="unigendet-work")
        self.lock, self.pending = threading.Lock(), 0

    def _release(self, _future) -> None:
        with self.lock:
            self.pending -= 1

    def run(self, fn, *args, **kwargs):
        with self.lock:
            if self.pending >= self.max_pending:
                raise HTTPException(503, "busy: too many requests in progress, retry shortly",
                                    headers={"Retry-After": "5"})
            self.pending += 1
        future = self.pool.submit(fn, *args, **kwargs)
        future.add_done_callback(self._release)
        try:
            return future.result(timeout=self.timeout_s)
        except FutureTimeout:
            raise HTTPException(504, f"the request took longer than {self.timeout_s:g} s") from None


def install(app: FastAPI, access: Access) -> Capacity:
    """Add the checks to `app` (outermost first: headers, token, rate) and return the `Capacity`
    its endpoints run the model's work through."""
    from limits import parse, storage, strategies

    limiter = strategies.MovingWindowRateLimiter(storage.MemoryStorage())
    rate = parse(f"{access.per_minute}/minute") if access.per_minute else None

    @app.middleware("http")
    async def rate_limit(request: Request, call_next):
        if rate is not None and request.url.path.startswith("/api/"):
            client = request.client.host if request.client else "unknown"
            if not limiter.hit(rate, client):
                wait = max(1, math.ceil(limiter.get_window_stats(rate, client).reset_time - time.time()))
                return JSONResponse({"detail": f"rate limit: {access.per_minute} requests per minute"},
                                    status_code=429, headers={"Retry-After": str(wait)})
        return await call_next(request)

    @app.middleware("http")
    async def require_token(request: Request, call_next):
        if access.token is not None and request.url.path not in OPEN_PATHS and not authorised(request, access.token):
            return JSONResponse({"detail": "a valid token is required (Authorization: Bearer TOKEN)"},
                                status_code=401, headers={"WWW-Authenticate": "Bearer"})
        return await call_next(request)

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        for k, v in HEADERS.items():
            response.headers.setdefault(k, v)
        return response

    return Capacity(access.max_pending, access.timeout_s)
