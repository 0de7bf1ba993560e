"""The app factory: `uvicorn --factory app.main:create_app`. Nothing is built at import time."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING

from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from starlette.exceptions import HTTPException

from app import __version__, errors, logs, openapi
from app.admission import AdmissionMiddleware
from app.auth import KeyStore
from app.drain import EndCutRequests
from app.metrics import Metrics
from app.observe import ObserveMiddleware
from app.ratelimit import RateLimiter
from app.routes import aichat, health, metrics, openai
from app.routes.forward import ForwardEndpoint
from app.routing import Dispatcher
from app.settings import Settings
from app.types import ASGIApp
from app.upstream import UpstreamPool

if TYPE_CHECKING:
    import httpx  # only to type an injected transport: httpx loads only when it is the client

log = logging.getLogger("acedata_proxy")

FORWARDED_ROUTES = (aichat.CONVERSATIONS, openai.RESPONSES)
OTHER_ROUTES = {"/healthz": "healthz", "/readyz": "readyz", "/metrics": "metrics"}


def create_app(
    settings: Settings | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    registry: CollectorRegistry | None = None,
) -> ASGIApp:
    settings = settings or Settings()
    access_log = logs.configure(settings)
    pool = UpstreamPool(settings, transport)
    app_metrics = Metrics(registry)
    keys = KeyStore(settings.keys_file) if settings.keys_file is not None else None
    limiter = RateLimiter(settings)

    async def readiness() -> list[str]:
        return [problem for problem in (pool.problem(), await limiter.problem()) if problem]

    api = FastAPI(title="acedata-proxy", version=__version__, lifespan=_lifespan(settings, pool, keys, limiter))
    document = openapi.document(FORWARDED_ROUTES, settings)  # FastAPI cannot see the forwarding routes
    api.openapi = lambda: document  # type: ignore[method-assign]  # FastAPI's documented way to replace it
    api.state.readiness = readiness
    api.state.metrics = app_metrics
    api.include_router(health.router)
    api.include_router(metrics.router)
    api.add_exception_handler(Exception, errors.handle)
    api.add_exception_handler(HTTPException, errors.handle)
    endpoints = [ForwardEndpoint(spec, settings, pool, keys, limiter) for spec in FORWARDED_ROUTES]
    route_names = {path: spec.name for spec in FORWARDED_ROUTES for path in spec.paths} | OTHER_ROUTES
    app: ASGIApp = EndCutRequests(Dispatcher(endpoints, api))  # inside Observe, which then records what it sends
    if settings.max_inflight is not None:  # unset: not even the count is paid for
        forwarded = (path for spec in FORWARDED_ROUTES for path in spec.paths)
        app = AdmissionMiddleware(app, settings.max_inflight, forwarded)
    return ObserveMiddleware(app, app_metrics, route_names, access_log)


def _lifespan(
    settings: Settings, pool: UpstreamPool, keys: KeyStore | None, limiter: RateLimiter
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Start-up and shutdown: the upstream pool opens in the serving loop and closes with it."""

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        if settings.token is None:
            log.warning("ACEDATACLOUD_API_TOKEN is not set: forwarding routes answer 503 until it is")
        await pool.open()
        if keys is not None:
            _reload_on_sighup(keys)
        if await limiter.problem():
            log.warning(
                "PROXY_REDIS_URL is unreachable: keys with limits are %s until it is back",
                "admitted unchecked" if settings.rate_limit_fail_open else "refused",
            )
        try:
            yield
        finally:
            await pool.close()
            api.state.metrics.close()

    return lifespan


def _reload_on_sighup(keys: KeyStore) -> None:
    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, keys.reload)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals here
        log.info("SIGHUP reload unavailable here; the keys file is still re-read when it changes")
