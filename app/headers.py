"""Which headers cross the gateway, each way, and the one header lookup every module uses."""

from __future__ import annotations

from collections.abc import Iterable

from app import __version__
from app.streams import StreamFormat
from app.types import Headers

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

DEFAULT_REQUEST_HEADERS = {
    b"accept": b"*/*",
    b"content-type": b"application/json",
    b"user-agent": b"acedata-proxy/" + __version__.encode(),
}


def header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The first value of header `name` (lower-case), from a client's scope or an upstream's answer alike."""
    for key, value in headers:
        if key == name:
            return value
    return None


def request_headers(client_headers: Iterable[tuple[bytes, bytes]], authorization: bytes, request_id: str) -> Headers:
    """Headers for the upstream request: the allowed client headers (with defaults for the ones the client did
    not send), our credentials and the request id. `identity`: bytes pass through unchanged, and usage is
    readable."""
    headers: dict[bytes, bytes] = {}
    for name, value in client_headers:  # the first of repeated headers: the one the gateway checked
        if name in FORWARDED_REQUEST_HEADERS:
            headers.setdefault(name, value)
    return [
        *(DEFAULT_REQUEST_HEADERS | headers).items(),
        (b"accept-encoding", b"identity"),
        (b"authorization", authorization),
        (b"x-request-id", request_id.encode()),
    ]


def response_headers(upstream: Headers, fmt: StreamFormat) -> Headers:
    """Upstream headers for the client. Streams get the no-buffering pair so no proxy in between holds them."""
    headers = [(name, value) for name, value in upstream if name not in DROPPED_RESPONSE_HEADERS]
    for name, value in upstream:
        if name == b"content-length" and fmt is None:
            headers.append((name, value))
        elif name == b"x-request-id":
            headers.append((b"x-upstream-request-id", value))
    if fmt is not None:
        headers = [(name, value) for name, value in headers if name != b"cache-control"]
        headers += [(b"cache-control", b"no-cache"), (b"x-accel-buffering", b"no")]
    return headers
