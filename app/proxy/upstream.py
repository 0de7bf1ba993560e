"""The upstream side of a forwarded request: the pooled client, which headers may cross, and streaming the
answer back chunk by chunk. Client failures become the gateway's error tree here and nowhere else."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from app.clients import ClientOptions, UpstreamClient, UpstreamFailure, UpstreamResponse
from app.clients.http1 import Http1Client
from app.errors import Envelope, NotReady, ProxyError, UpstreamNotConfigured, UpstreamTimeout, UpstreamUnavailable
from app.proxy.streams import StreamFormat, closing_event
from app.proxy.usage import Tap
from app.settings import Settings
from app.types import Send

if TYPE_CHECKING:
    import httpx

log = logging.getLogger("acedata_proxy.upstream")

NO_TOKEN = "The gateway has no upstream token: set ACEDATACLOUD_API_TOKEN and restart it."


def build_client(settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> UpstreamClient:
    """The one client every request shares, with explicit timeouts and pool limits. An injected transport
    (unit tests) means httpx, the only client that takes one."""
    options = ClientOptions(
        connect_timeout=settings.connect_timeout,
        first_byte_timeout=settings.first_byte_timeout,
        read_timeout=settings.read_timeout,
        max_connections=settings.max_connections,
        max_keepalive=settings.max_keepalive_connections,
        connect_retries=settings.connect_retries,
        keepalive_expiry=settings.keepalive_expiry,
    )
    if transport is not None or settings.upstream_client == "httpx":
        from app.clients.httpx_client import HttpxClient  # imports the default client does not need

        return HttpxClient(settings.api_base_url, options, transport)
    return Http1Client(settings.api_base_url, options)


def translate(failure: UpstreamFailure) -> ProxyError:
    """An upstream failure before any byte reached the client, as the error the client sees."""
    message = failure.message[0].upper() + failure.message[1:] + "."
    if failure.timeout:
        return UpstreamTimeout(message)
    return UpstreamUnavailable(message)


class StreamBroken(Exception):
    """The upstream failed after bytes reached the client of a body with no error-event format."""


class StreamFailed(Exception):
    """The upstream failed mid-stream; `event` is what ends the client's stream in its own format."""

    def __init__(self, kind: str, event: bytes):
        super().__init__(kind)
        self.kind = kind
        self.event = event


async def relay(
    response: UpstreamResponse, send: Send, fmt: StreamFormat, tap: Tap | None, envelope: Envelope = "openai"
) -> bytes:
    """Send each upstream chunk on as it arrives, then let `tap` look at it. Returns the body's last piece, for
    the caller to send with `more_body: False` once it has marked the exchange finished: the final chunk (so a
    one-chunk JSON answer costs one write), or the error event that ends a stream the upstream broke
    (StreamBroken when the body has no error-event format)."""
    tail = b""
    try:
        while chunk := await response.read():
            if response.at_end():
                if tap is not None:
                    tap.feed(chunk)
                return chunk
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if tap is not None:
                tap.feed(chunk)
            tail = chunk
    except UpstreamFailure as exc:
        log.warning("upstream failed mid-body: %s", exc.message)
        if fmt is None:
            raise StreamBroken(exc.kind) from exc
        raise StreamFailed(exc.kind, closing_event(tail, fmt, translate(exc), envelope)) from exc
    return b""


class Upstream:
    """Owns the shared client for the app's lifetime (opened and closed by the lifespan), and the one answer to
    "can requests go upstream now?": no token, or no open pool, is said here and nowhere else."""

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None):
        self.settings = settings
        self.transport = transport
        self._client: UpstreamClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        token = settings.token
        self._authorization = None if token is None else b"Bearer " + token.encode()

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._client = build_client(self.settings, self.transport)
        if self._authorization is None:
            log.warning("ACEDATACLOUD_API_TOKEN is not set: forwarding routes answer 503 until it is")

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    def require_ready(self) -> bytes:
        """The upstream's `authorization` value, once requests can go; else raises the error a client gets."""
        if self._authorization is None:
            raise UpstreamNotConfigured(NO_TOKEN)
        if self._client is None:
            raise NotReady("The upstream pool is not open (the gateway is starting or stopping).")
        return self._authorization

    @property
    def client(self) -> UpstreamClient:
        if self._client is None:
            raise NotReady("The upstream pool is not open (the gateway is starting or stopping).")
        return self._client

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop that serves every request of this app (known, so the hot path need not ask asyncio)."""
        if self._loop is None:
            raise NotReady("The upstream pool is not open (the gateway is starting or stopping).")
        return self._loop

    def problem(self) -> str | None:
        """For /readyz: why the pool cannot serve now, or None when it can."""
        try:
            self.require_ready()
        except ProxyError as exc:
            return exc.message
        return None
