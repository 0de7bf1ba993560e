"""The upstream HTTP clients behind one small interface: `http1` (the default, built for this hop) and `httpx`.

Everything upstream.py needs from a client is here: send one POST, get the status and headers, read the body
chunk by chunk, close. Each client translates its own exceptions into `UpstreamFailure` at its boundary, so the
rest of the gateway never sees a library's exception.
"""

from __future__ import annotations

from typing import Literal, Protocol

from app.types import Headers

# bounded: these are the `kind` label of acedata_proxy_upstream_errors_total
FailureKind = Literal["connect", "timeout", "reset", "protocol"]


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
    async def post(self, path: bytes, headers: Headers, body: bytes) -> UpstreamResponse:
        """Send the request; return once the response headers arrived. Raises UpstreamFailure."""

    async def aclose(self) -> None: ...

    def connections(self) -> tuple[int, int]:
        """(in use, idle) upstream connections, for metrics and tests."""
