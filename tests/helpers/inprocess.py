"""The gateway in-process: `create_app` with an injected upstream transport, driven through httpx's ASGI
transport. No socket and no process, so the many cases of one behaviour (validation rules, headers, error
envelopes, routing) run in milliseconds; each behaviour also has a test over real sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from app.main import create_app
from app.settings import Settings
from app.types import ASGIApp, Message
from tests.helpers.secrets import CLIENT_KEY, UPSTREAM_TOKEN, LeakScanner

UPSTREAM_URL = "http://upstream.test"  # never resolved: the injected transport answers


def settings(**overrides: Any) -> Settings:
    """Settings from these values alone (no .env, no environment variables of the test run)."""
    base = {"api_token": UPSTREAM_TOKEN, "api_base_url": UPSTREAM_URL}
    return Settings(_env_file=None, **{**base, **overrides})


@asynccontextmanager
async def lifespan(app: ASGIApp) -> AsyncIterator[None]:
    """Drive the ASGI lifespan by hand (httpx's ASGITransport does not)."""
    inbox: asyncio.Queue[Message] = asyncio.Queue()
    outbox: asyncio.Queue[Message] = asyncio.Queue()
    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    task = asyncio.ensure_future(app(scope, inbox.get, outbox.put))  # an ASGI app returns an Awaitable
    await inbox.put({"type": "lifespan.startup"})
    assert (await outbox.get())["type"] == "lifespan.startup.complete"
    try:
        yield
    finally:
        await inbox.put({"type": "lifespan.shutdown"})
        assert (await outbox.get())["type"] == "lifespan.shutdown.complete"
        await task


class ScanningTransport(httpx.AsyncBaseTransport):
    """Scans what the in-process gateway answers, as the session scanner does for every real socket."""

    def __init__(self, inner: httpx.AsyncBaseTransport, scanner: LeakScanner):
        self.inner, self.scanner = inner, scanner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return self.scanner.scan(await self.inner.handle_async_request(request), request)


@asynccontextmanager
async def running(
    app: ASGIApp, scanner: LeakScanner | None = None, headers: dict[str, str] | None = None
) -> AsyncIterator[httpx.AsyncClient]:
    """A client on `app` once its lifespan has started, scanned for secrets when a scanner is given."""
    transport: httpx.AsyncBaseTransport = httpx.ASGITransport(app)
    if scanner is not None:
        transport = ScanningTransport(transport, scanner)
    async with (
        lifespan(app),
        httpx.AsyncClient(transport=transport, base_url="http://localhost", headers=headers) as client,
    ):
        yield client


@asynccontextmanager
async def gateway_on(
    upstream: ASGIApp, scanner: LeakScanner | None = None, **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway in-process with the ASGI app `upstream` (the fake upstream) as its upstream, and a client on
    it that sends a client key (which must never reach the upstream)."""
    app = create_app(settings(**overrides), transport=httpx.ASGITransport(upstream))
    async with running(app, scanner, {"authorization": f"Bearer {CLIENT_KEY}"}) as client:
        yield client
