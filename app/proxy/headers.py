"""Which headers cross the gateway, each way, and the one header lookup every module uses."""

from __future__ import annotations

import re
from collections.abc import Iterable

from app import __version__
from app.proxy.streams import StreamFormat
from app.types import Headers

# Client headers that go upstream (docs/contract.md); everything else, credentials and cookies first, stays here.
FORWARDED_REQUEST_HEADERS = frozenset({b"accept", b"content-type", b"user-agent"})

# Upstream headers that do not come back: hop-by-hop ones, ones the gateway sets itself, and ones that
# would point the client at the upstream host (alt-svc) or plant its cookies on the gateway's origin.
DROPPED_RESPONSE_HEADERS = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-authenticate",
        b"proxy-authorization",
        b"te",
        b"trailer",
        b"trailers",
        b"transfer-encoding",
        b"upgrade",
        b"date",
        b"server",
        b"set-cookie",
        b"alt-svc",
        b"x-request-id",
        b"content-length",
    }
)

# What a header value may not contain (RFC 9110 5.5); the pattern uvicorn itself refuses values with.
CONTROL_CHARACTER = re.compile(b"[\x00-\x08\x0a-\x1f\x7f]")

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


def request_headers(
    client_headers: Iterable[tuple[bytes, bytes]],
    authorization: bytes,
    request_id: str,
    forwarded: frozenset[bytes] = FORWARDED_REQUEST_HEADERS,
) -> Headers:
    """Headers for the upstream request: the client headers named in `forwarded` (with defaults for the ones the
    client did not send), our credentials and the request id. `identity`: bytes pass through unchanged, and
    usage is readable."""
    headers: dict[bytes, bytes] = {}
    for name, value in client_headers:  # the first of repeated headers: the one the gateway checked
        if name in forwarded:
            headers.setdefault(name, value)
    return [
        *(DEFAULT_REQUEST_HEADERS | headers).items(),
        (b"accept-encoding", b"identity"),
        (b"authorization", authorization),
        (b"x-request-id", request_id.encode()),
    ]


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
