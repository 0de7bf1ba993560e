"""The upstream HTTP clients behind one small interface: `http1` (the default, built for this hop) and `httpx`.

Everything upstream.py needs from a client is here: send one request, get the status and headers, read the body
chunk by chunk, close. Each client translates its own exceptions into `UpstreamFailure` at its boundary, so the
rest of the gateway never sees a library's exception.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol

from app.types import Body, Headers

# bounded: these are the `kind` label of acedata_proxy_upstream_errors_total
FailureKind = Literal["connect", "timeout", "reset", "protocol"]

# reused connections found closed by the upstream, one after another, before a request gives up (the close race)
STALE_RETRIES = 3


@dataclass(frozen=True, slots=True)
class ClientOptions:
    """Timeouts (seconds) and pool limits, the same for every client."""

    connect_timeout: float  # also the longest wait for a free connection when the pool is full
    first_byte_timeout: float  # request sent -> response headers
    read_timeout: float  # longest silence between body bytes
    max_connections: int
    max_keepalive: int
    keepalive_expiry: float = 15.0  # idle connections older than this are not reused
    connect_retries: int = 2  # new tries of a connection that could not be made (nothing was sent)


class UpstreamFailure(Exception):
    """The upstream exchange failed. `timeout` tells 504 from 502 before the response began."""

    def __init__(self, kind: FailureKind, message: str, *, timeout: bool = False):
        super().__init__(message)
        self.kind: FailureKind = kind
        self.message = message
        self.timeout = timeout


class UpstreamResponse(Protocol):
    status: int
    headers: Headers  # lower-case names, as the upstream sent them; framing headers included

    async def read(self) -> bytes:
        """The next body chunk as it arrived (transfer framing removed, nothing decoded); b"" at the end."""

    def at_end(self) -> bool:
        """True when the body is complete and every chunk has been read."""

    async def aclose(self) -> None:
        """Release the connection: back to the pool when the body was read to the end, else closed."""


class UpstreamClient(Protocol):
    async def request(self, method: str, path: bytes, headers: Headers, body: Body) -> UpstreamResponse:
        """Send the request; return once the response headers arrived. Raises UpstreamFailure."""

    async def aclose(self) -> None: ...
