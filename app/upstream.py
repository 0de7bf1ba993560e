"""The pooled upstream client: which headers may cross, sending, and streaming the answer back chunk by chunk.

httpx exceptions are translated into the gateway's error tree here and nowhere else.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Literal

import httpx

from app import __version__
from app.errors import NotReady, ProxyError, UpstreamTimeout, UpstreamUnavailable
from app.settings import Settings
from app.types import Headers, Send
from app.usage import UsageTap

log = logging.getLogger("acedata_proxy.upstream")

StreamFormat = Literal["sse", "ndjson"] | None

# Client headers that go upstream (DESIGN.md); everything else, credentials and cookies first, stays here.
FORWARDED_REQUEST_HEADERS = frozenset({b"accept", b"content-type", b"user-agent"})

# Upstream headers that do not come back: hop-by-hop ones, ones the gateway sets itself, and ones that
# would point the client at the upstream host (alt-svc) or plant its cookies on the gateway's origin.
DROPPED_RESPONSE_HEADERS = frozenset(
    {
        b"connection", b"keep-alive", b"proxy-authenticate", b"proxy-authorization", b"te", b"trailer",
        b"trailers", b"transfer-encoding", b"upgrade", b"date", b"server", b"set-cookie", b"alt-svc",
        b"x-request-id", b"content-length",
    }
)  # fmt: skip

NDJSON_TYPES = (
    b"application/x-ndjson",
    b"application/ndjson",
    b"application/jsonl",
    b"application/x-jsonlines",
)


def build_client(settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> httpx.AsyncClient:
    """The one client every request shares, with explicit timeouts and pool limits."""
    return httpx.AsyncClient(
        transport=transport,
        timeout=httpx.Timeout(
            connect=settings.connect_timeout,
            read=settings.read_timeout,
            write=settings.read_timeout,
            pool=settings.connect_timeout,
        ),
        limits=httpx.Limits(
            max_connections=settings.max_connections,
            max_keepalive_connections=settings.max_keepalive_connections,
            keepalive_expiry=30.0,
        ),
        # identity: bytes pass through unchanged and usage can be read from them without decompressing
        headers={"accept-encoding": "identity", "user-agent": f"acedata-proxy/{__version__}"},
        follow_redirects=False,
        trust_env=False,
    )


def request_headers(client_headers: Iterable[tuple[bytes, bytes]], token: str, request_id: str) -> Headers:
    """Headers for the upstream request: the allowed client headers plus our token and request id."""
    headers = [(name, value) for name, value in client_headers if name in FORWARDED_REQUEST_HEADERS]
    if not any(name == b"content-type" for name, _ in headers):
        headers.append((b"content-type", b"application/json"))
    headers.append((b"authorization", b"Bearer " + token.encode()))
    headers.append((b"x-request-id", request_id.encode()))
    return headers


def stream_format(content_type: bytes) -> StreamFormat:
    media = content_type.split(b";", 1)[0].strip().lower()
    if media == b"text/event-stream":
        return "sse"
    if media in NDJSON_TYPES:
        return "ndjson"
    return None


def response_headers(response: httpx.Response, fmt: StreamFormat) -> Headers:
    """Upstream headers for the client. Streams get the no-buffering pair so no proxy in between holds them."""
    headers = [(k.lower(), v) for k, v in response.headers.raw if k.lower() not in DROPPED_RESPONSE_HEADERS]
    if fmt is None:
        length = response.headers.get("content-length")
        if length is not None:
            headers.append((b"content-length", length.encode()))
    else:
        headers = [(k, v) for k, v in headers if k != b"cache-control"]
        headers += [(b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]
    upstream_id = response.headers.get("x-request-id")
    if upstream_id is not None:
        headers.append((b"x-upstream-request-id", upstream_id.encode()))
    return headers


def translate(exc: httpx.HTTPError) -> ProxyError:
    """An httpx failure before any byte reached the client, as the error the client sees."""
    if isinstance(exc, httpx.PoolTimeout):
        return UpstreamTimeout("No upstream connection became free in time; the gateway is saturated.")
    if isinstance(exc, httpx.ConnectTimeout):
        return UpstreamTimeout("Connecting to the upstream timed out.")
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamTimeout("The upstream sent nothing within the read timeout.")
    if isinstance(exc, httpx.ConnectError):
        return UpstreamUnavailable("The upstream refused the connection or could not be reached.")
    return UpstreamUnavailable(f"The upstream connection failed ({type(exc).__name__}).")


def error_kind(exc: httpx.HTTPError) -> str:
    """A bounded label for the upstream_errors_total metric."""
    if isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout):
        return "connect"
    if isinstance(exc, httpx.TimeoutException):
        return "timeout"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "protocol"
    return "reset"


class StreamBroken(Exception):
    """The upstream failed after bytes reached the client of a body with no error-event format."""


class StreamFailed(Exception):
    """The upstream failed mid-stream; `event` is what ends the client's stream in its own format."""

    def __init__(self, kind: str, event: bytes):
        super().__init__(kind)
        self.kind = kind
        self.event = event


def _separator(tail: bytes, fmt: StreamFormat) -> bytes:
    """What closes a half-sent event, so our error event is parsed as an event of its own."""
    if fmt == "sse":
        return b"" if tail.endswith((b"\n\n", b"\r\n\r\n", b"\r\r")) or not tail else b"\n\n"
    return b"" if tail.endswith(b"\n") or not tail else b"\n"


async def relay(response: httpx.Response, send: Send, fmt: StreamFormat, tap: UsageTap | None) -> bytes:
    """Send each upstream chunk on as it arrives, then let `tap` look at it. Returns the body's last piece, for
    the caller to send once it has marked the exchange finished: empty, or the error event that ends a stream
    the upstream broke (StreamBroken when the body has no error-event format)."""
    tail = b""
    try:
        async for chunk in response.aiter_raw():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if tap is not None:
                tap.feed(chunk)
            tail = chunk
    except httpx.HTTPError as exc:
        log.warning("upstream failed mid-body: %s", error_kind(exc))
        if fmt is None:
            raise StreamBroken(error_kind(exc)) from exc
        raise StreamFailed(error_kind(exc), _separator(tail[-4:], fmt) + translate(exc).stream_event(fmt)) from exc
    return b""


class UpstreamPool:
    """Owns the shared client for the app's lifetime (opened and closed by the lifespan)."""

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None):
        self.settings = settings
        self.transport = transport
        self._client: httpx.AsyncClient | None = None

    async def open(self) -> None:
        self._client = build_client(self.settings, self.transport)

    async def close(self) -> None:
        if self._client is not None:
            await self._client.aclose()

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None or self._client.is_closed:
            raise NotReady("The upstream pool is not open (the gateway is starting or stopping).")
        return self._client

    def problem(self) -> str | None:
        """Why the pool cannot serve now, or None when it can."""
        if self._client is None or self._client.is_closed:
            return "upstream pool is not open"
        if self.settings.token is None:
            return "ACEDATACLOUD_API_TOKEN is not set"
        return None
