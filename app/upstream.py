"""The upstream side of a forwarded request: the pooled client, which headers may cross, and streaming the
answer back chunk by chunk. Client failures become the gateway's error tree here and nowhere else."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal

from app import __version__
from app.clients import ClientOptions, UpstreamClient, UpstreamFailure, UpstreamResponse
from app.clients.http1 import Http1Client
from app.errors import NotReady, ProxyError, UpstreamTimeout, UpstreamUnavailable
from app.settings import Settings
from app.types import Headers, Send
from app.usage import UsageTap

if TYPE_CHECKING:
    import httpx

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

# What a header value may not contain (RFC 9110 5.5); the pattern uvicorn itself refuses values with.
CONTROL_CHARACTER = re.compile(b"[\x00-\x08\x0a-\x1f\x7f]")

DEFAULT_REQUEST_HEADERS = {
    b"accept": b"*/*",
    b"content-type": b"application/json",
    b"user-agent": b"acedata-proxy/" + __version__.encode(),
}

NDJSON_TYPES = (
    b"application/x-ndjson",
    b"application/ndjson",
    b"application/jsonl",
    b"application/x-jsonlines",
)


def build_client(settings: Settings, transport: httpx.AsyncBaseTransport | None = None) -> UpstreamClient:
    """The one client every request shares, with explicit timeouts and pool limits. An injected transport
    (unit tests) means httpx, the only client that takes one."""
    options = ClientOptions(
        connect_timeout=settings.connect_timeout, first_byte_timeout=settings.first_byte_timeout,
        read_timeout=settings.read_timeout, max_connections=settings.max_connections,
        max_keepalive=settings.max_keepalive_connections, connect_retries=settings.connect_retries,
        keepalive_expiry=settings.keepalive_expiry,
    )  # fmt: skip
    if transport is not None or settings.upstream_client == "httpx":
        from app.clients.httpx_client import HttpxClient  # ~6 MB of imports the default client does not need

        return HttpxClient(settings.api_base_url, options, transport)
    return Http1Client(settings.api_base_url, options)


def request_headers(client_headers: Iterable[tuple[bytes, bytes]], token: bytes, request_id: str) -> Headers:
    """Headers for the upstream request: the allowed client headers (with defaults for the ones the client did
    not send), our token and the request id. `identity`: bytes pass through unchanged, and usage is readable."""
    headers: dict[bytes, bytes] = {}
    for name, value in client_headers:  # the first of repeated headers: the one the gateway checked
        if name in FORWARDED_REQUEST_HEADERS:
            headers.setdefault(name, value)
    return [
        *(DEFAULT_REQUEST_HEADERS | headers).items(),
        (b"accept-encoding", b"identity"),
        (b"authorization", b"Bearer " + token),
        (b"x-request-id", request_id.encode()),
    ]


def stream_format(content_type: bytes) -> StreamFormat:
    media = content_type.split(b";", 1)[0].strip().lower()
    if media == b"text/event-stream":
        return "sse"
    if media in NDJSON_TYPES:
        return "ndjson"
    return None


def unrelayable(status: int, upstream: Headers) -> str | None:
    """Why an upstream head cannot be relayed as it is (the client then gets a 502), or None. A status outside
    200-599 has no meaning in HTTP (1xx never end an exchange); a control character in a header value is refused
    by the server writing it to the client, after the point where an error envelope could still be sent."""
    if not 200 <= status < 600:
        return f"the upstream answered with an invalid status ({status})"
    if CONTROL_CHARACTER.search(b"\t".join([value for _, value in upstream])):
        return "the upstream sent a control character in a header value"
    return None


def response_headers(upstream: Headers, fmt: StreamFormat, status: int = 200) -> Headers:
    """Upstream headers for the client. Streams get the no-buffering pair so no proxy in between holds them.
    One content-length at most, and none where it does not describe the body relayed: a stream, a chunked
    answer (RFC 9112 6.3: transfer-encoding overrides it), a 204 or 304 (no body, whatever it says)."""
    headers = [(name, value) for name, value in upstream if name not in DROPPED_RESPONSE_HEADERS]
    length = None if fmt is not None or status in (204, 304) else b""
    for name, value in upstream:
        if name == b"content-length" and length == b"":
            length = value
        elif name == b"transfer-encoding":
            length = None
        elif name == b"x-request-id":
            headers.append((b"x-upstream-request-id", value))
    if length:
        headers.append((b"content-length", length))
    if fmt is not None:
        headers = [(name, value) for name, value in headers if name != b"cache-control"]
        headers += [(b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]
    return headers


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


def separator(tail: bytes, fmt: StreamFormat) -> bytes:
    """What closes a half-sent event, so our error event is parsed as an event of its own."""
    if fmt == "sse":
        return b"" if tail.endswith((b"\n\n", b"\r\n\r\n", b"\r\r")) or not tail else b"\n\n"
    return b"" if tail.endswith(b"\n") or not tail else b"\n"


async def relay(response: UpstreamResponse, send: Send, fmt: StreamFormat, tap: UsageTap | None) -> bytes:
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
        raise StreamFailed(exc.kind, separator(tail[-4:], fmt) + translate(exc).stream_event(fmt)) from exc
    return b""


class UpstreamPool:
    """Owns the shared client for the app's lifetime (opened and closed by the lifespan)."""

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None):
        self.settings = settings
        self.transport = transport
        self._client: UpstreamClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.token = (settings.token or "").encode()

    async def open(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._client = build_client(self.settings, self.transport)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

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
        """Why the pool cannot serve now, or None when it can."""
        if self._client is None:
            return "upstream pool is not open"
        if self.settings.token is None:
            return "ACEDATACLOUD_API_TOKEN is not set"
        return None
