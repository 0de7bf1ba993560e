"""The app factory: `uvicorn --factory app.main:create_app`. Nothing is built at import time."""

from __future__ import annotations

import asyncio
import functools
import logging
import signal
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi_offline import FastAPIOffline
from prometheus_client import CollectorRegistry
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware

from app import __version__, logs, money, openapi
from app.access.auth import KeyStore
from app.access.ratelimit import RateLimiter
from app.dashboard import Dashboard
from app.errors import Envelope, ProxyError
from app.ledger import Ledger
from app.metrics import Metrics
from app.middleware.admission import AdmissionMiddleware
from app.middleware.browsers import BrowserGuard
from app.middleware.observe import ObserveMiddleware
from app.proxy.dispatch import Dispatcher
from app.proxy.forward import ForwardEndpoint
from app.proxy.table import ROUTES
from app.proxy.upstream import Upstream
from app.routes import admin, handler, health, metrics
from app.routes.models import ModelsEndpoint
from app.serving import exporter
from app.settings import Settings
from app.types import ASGIApp

if TYPE_CHECKING:
    import httpx  # only to type an injected transport: httpx loads only when it is the client

log = logging.getLogger("acedata_proxy")

SERVICE_ROUTES = {
    "/healthz": "healthz",
    "/readyz": "readyz",
    "/metrics": "metrics",
    "/admin/usage": "admin.usage",
    "/admin": "admin",
    "/admin/": "admin",
}
# headers a browser app may read: the request id and the limits' state (CORS hides all others)
EXPOSED_HEADERS = [
    "x-request-id",
    "retry-after",
    "x-ratelimit-limit-requests",
    "x-ratelimit-remaining-requests",
    "x-ratelimit-limit-tokens",
    "x-ratelimit-remaining-tokens",
]


def create_app(
    settings: Settings | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    registry: CollectorRegistry | None = None,
) -> ASGIApp:
    settings = settings or Settings()
    access_log = logs.configure(settings)
    upstream = Upstream(settings, transport)
    prices = money.load(settings.prices_file) if settings.prices_file is not None else None
    app_metrics = Metrics(registry, prices)
    keys = KeyStore(settings.keys_file) if settings.keys_file is not None else None
    ledger = Ledger(settings)
    limiter = RateLimiter(settings, ledger, prices)
    models = ModelsEndpoint(ROUTES, settings, keys)
    api = _service_api(settings, upstream, keys, limiter, ledger, app_metrics, models.paths())
    api.state.prices, api.state.dashboard = prices, Dashboard(app_metrics, ledger, keys, prices)
    forwarded = [
        (path, spec.method, spec.name, spec.envelope, ForwardEndpoint(spec, settings, upstream, keys, limiter, ledger))
        for spec in ROUTES
        for path in spec.paths
    ]
    openai: Envelope = "openai"
    answered = [(path, method, "models", openai, models) for path in models.paths() for method in ("GET", "HEAD")]
    dispatcher = Dispatcher(
        [*forwarded, *answered],
        api,
        {**SERVICE_ROUTES, "/": "root"},  # HEAD /: Claude Code's connectivity check
    )
    service = (f"GET {path}" for path in (*SERVICE_ROUTES, "/openapi.json", "/docs"))
    api.state.served = [*dispatcher.served(), *service, "HEAD /"]
    app: ASGIApp = dispatcher
    if settings.max_inflight is not None:  # unset: not even the count is paid for
        bodied = (spec.name for spec in ROUTES if spec.schema is not None)
        app = AdmissionMiddleware(app, settings.max_inflight, (spec.name for spec in ROUTES), bodied)
    if settings.cors_origins:
        app = CORSMiddleware(
            app,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["*"],
            expose_headers=EXPOSED_HEADERS,
            allow_credentials=False,
            max_age=600,
        )
    if settings.keys_file is None and not settings.binds_publicly():  # outside CORS: unlisted origins stop here
        app = BrowserGuard(app, settings.host, settings.cors_origins)
    return ObserveMiddleware(app, app_metrics, dispatcher.resolve, access_log)


def _service_api(
    settings: Settings,
    upstream: Upstream,
    keys: KeyStore | None,
    limiter: RateLimiter,
    ledger: Ledger,
    app_metrics: Metrics,
    models_paths: list[str],
) -> FastAPI:
    """Health, readiness, metrics, the OpenAPI document and /docs (Swagger UI served from a package, no CDN)."""

    async def readiness() -> list[str]:
        return [problem for problem in (upstream.problem(), await limiter.problem(), ledger.problem()) if problem]

    api = FastAPIOffline(
        title="acedata-proxy",
        version=__version__,
        lifespan=_lifespan(settings, upstream, keys, limiter, ledger),
        static_url="/docs/assets",
        redoc_url=None,
    )
    api.state.readiness = readiness
    api.state.metrics = app_metrics
    api.state.keys, api.state.ledger = keys, ledger
    api.state.metrics_port = settings.metrics_port
    api.include_router(health.router)
    api.include_router(metrics.router)
    api.include_router(admin.router)
    # FastAPI's documented way to replace the document
    api.openapi = _document_on_first_use(api, settings, models_paths)  # type: ignore[method-assign]
    # ProxyError has a handler of its own: Starlette re-raises what reaches the catch-all (Exception) handler,
    # and the server then logs a traceback for what is only a refusal
    api.add_exception_handler(ProxyError, handler.handle)
    api.add_exception_handler(Exception, handler.handle)
    api.add_exception_handler(HTTPException, handler.handle)
    api.router.redirect_slashes = False  # a redirect would name the client's Host: unknown paths get the 404
    return api


def _document_on_first_use(api: FastAPI, settings: Settings, models_paths: list[str]) -> Callable[[], dict[str, Any]]:
    """The OpenAPI document, built when /openapi.json or /docs first asks for it: building it takes longer than the
    rest of the app (a JSON schema per request body), and no other request needs it."""

    @functools.cache
    def document() -> dict[str, Any]:
        # FastAPI documents the service routes from their routers; it cannot see the forwarding routes
        service_paths = get_openapi(title=api.title, version=api.version, routes=api.routes)["paths"]
        return openapi.document(ROUTES, models_paths, settings, service_paths)

    return document


def _lifespan(
    settings: Settings, upstream: Upstream, keys: KeyStore | None, limiter: RateLimiter, ledger: Ledger
) -> Callable[[FastAPI], AbstractAsyncContextManager[None]]:
    """Start-up and shutdown: the upstream client and the ledger open in the serving loop and close with it (the
    ledger last, after in-flight requests have ended, so their usage is written)."""

    @asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        await upstream.open()
        await ledger.start()
        listener = None
        if settings.metrics_port is not None:
            listener = await exporter.start(settings.host, settings.metrics_port, api.state.metrics)
        watcher = None
        if keys is not None:
            _reload_on_sighup(keys)
            watcher = asyncio.create_task(keys.watch())
        if await limiter.problem():
            log.warning(
                "PROXY_REDIS_URL is unreachable: keys with limits are %s until it is back",
                "admitted unchecked" if settings.rate_limit_fail_open else "refused",
            )
        try:
            yield
        finally:
            if watcher is not None:
                watcher.cancel()
            if listener is not None:
                listener.close()
            await upstream.close()
            await ledger.close()
            api.state.metrics.close()

    return lifespan


def _reload_on_sighup(keys: KeyStore) -> None:
    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, keys.reload)
    except (NotImplementedError, RuntimeError, ValueError):  # not the main thread, or no signals here
        log.info("SIGHUP reload unavailable here; the keys file is still re-read when it changes")
