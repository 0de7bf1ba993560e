"""The same client interface on `httpx.AsyncClient`: chosen with `PROXY_UPSTREAM_CLIENT=httpx`, and the seam unit
tests swap (`create_app(transport=httpx.MockTransport(...))`). httpx exceptions become UpstreamFailure here."""

from __future__ import annotations

import re
import socket
import struct
from collections.abc import AsyncIterator

import httpx
from h11 import _readers

from app.clients import STALE_RETRIES, ClientOptions, FailureKind, UpstreamFailure
from app.clients.origin import parse_origin, proxy_for, tls_context
from app.types import Body, Headers


def failure(exc: httpx.HTTPError) -> UpstreamFailure:
    if isinstance(exc, httpx.PoolTimeout):
        return UpstreamFailure("timeout", "no upstream connection became free in time", timeout=True)
    if isinstance(exc, httpx.ConnectTimeout):
        return UpstreamFailure("connect", "connecting to the upstream timed out", timeout=True)
    if isinstance(exc, httpx.TimeoutException):
        return UpstreamFailure("timeout", "the upstream sent nothing within the timeout", timeout=True)
    kind: FailureKind = "reset"
    if isinstance(exc, httpx.ConnectError):
        kind = "connect"
        if "CERTIFICATE_VERIFY_FAILED" in str(exc):  # the same words as the http1 client's
            return UpstreamFailure(kind, f"the upstream's TLS certificate was refused ({exc})")
    elif isinstance(exc, httpx.RemoteProtocolError):
        kind = "protocol"
    return UpstreamFailure(kind, f"the upstream connection failed ({type(exc).__name__})")


RESET_ON_CLOSE = (socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def unanswered(exc: httpx.HTTPError) -> bool:
    """The connection ended before a byte of the answer: closed (httpcore's own words) or reset."""
    return isinstance(exc, httpx.ReadError) or "without sending a response" in str(exc)


# h11 0.16 reads a chunk line as size [";" ext] OWS CRLF: whitespace between the size and the ";", which RFC 9112
# 7.1.1 allows (BWS), ends the body with "illegal chunk header" (h11's change that let only trailing whitespace
# through: https://github.com/python-hyper/h11/pull/133). h11 has no option for it; its chunked reader looks this
# pattern up for every chunk line.
H11_CHUNK_HEADER = rb"(?P<chunk_size>([0-9A-Fa-f]){1,20})(?P<chunk_ext>;.*)?[ \t]*\r\n"
CHUNK_HEADER = re.compile(rb"(?P<chunk_size>[0-9A-Fa-f]{1,20})(?:[ \t]*(?P<chunk_ext>;.*))?[ \t]*\r\n")


def accept_whitespace_before_chunk_extensions() -> None:
    """h11's pattern, with BWS before the extension. Only h11 0.16's own is replaced: another version's may read
    the line differently (or right), and the conformance suite's `chunk-extensions-after-whitespace` case says
    whether it does."""
    if _readers.chunk_header_re.pattern == H11_CHUNK_HEADER:
        _readers.chunk_header_re = CHUNK_HEADER


class HttpxResponse:
    def __init__(self, response: httpx.Response):
        self.response = response
        self.status = response.status_code
        self.headers: Headers = [(name.lower(), value) for name, value in response.headers.raw]
        self.chunks: AsyncIterator[bytes] = response.aiter_raw()
        self.done = False

    async def read(self) -> bytes:
        if self.done:
            return b""
        try:
            return await anext(self.chunks)
        except StopAsyncIteration:
            self.done = True
            return b""
        except httpx.HTTPError as exc:
            raise failure(exc) from exc

    def at_end(self) -> bool:
        return self.done

    async def aclose(self) -> None:
        await self.response.aclose()


class Connecting:
    """httpcore's `trace` extension (public): tells whether the request opened a connection of its own, or was
    sent on one the pool kept idle, which is the one the upstream may have closed meanwhile (the close race)."""

    __slots__ = ("opened",)

    def __init__(self) -> None:
        self.opened = False

    async def __call__(self, event: str, info: dict[str, object]) -> None:
        if event == "connection.connect_tcp.started":
            self.opened = True


class HttpxClient:
    def __init__(self, base_url: str, options: ClientOptions, transport: httpx.AsyncBaseTransport | None = None):
        accept_whitespace_before_chunk_extensions()
        self.base_url = base_url.rstrip("/")  # the routes' paths begin with one
        origin = parse_origin(base_url)
        proxy = proxy_for(origin)
        limits = httpx.Limits(max_connections=options.max_connections, max_keepalive_connections=options.max_keepalive,
                              keepalive_expiry=options.keepalive_expiry)  # fmt: skip
        if transport is None:
            # The proxy and trust store chosen as the http1 client chooses them (app/clients/origin.py), nothing
            # else from the environment. Every close resets (zero linger): httpcore closes a connection it gives
            # up on gracefully, and the kernel would then keep it, and the unsent body, while the upstream reads
            # nothing; a connection httpx closes is idle or failed, so no answer is ever cut by it.
            transport = httpx.AsyncHTTPTransport(
                verify=tls_context() if origin.tls else True, limits=limits, trust_env=False,
                proxy=proxy.url if proxy is not None else None, socket_options=[RESET_ON_CLOSE],
            )  # fmt: skip
        self.client = httpx.AsyncClient(
            transport=transport,
            # httpx has one read timeout: the first byte's, which is the longer wait (and the one that answers 504);
            # it retries no connection either, so connect_retries does not apply
            timeout=httpx.Timeout(connect=options.connect_timeout, read=options.first_byte_timeout,
                                  write=options.read_timeout, pool=options.connect_timeout),
            limits=limits,
            follow_redirects=False,
            trust_env=False,
        )  # fmt: skip

    async def request(self, method: str, path: bytes, headers: Headers, body: Body) -> HttpxResponse:
        url = self.base_url + path.decode()
        connecting = Connecting()
        request = self.client.build_request(
            method, url, content=bytes(body) or None, headers=headers, extensions={"trace": connecting}
        )
        try:
            return HttpxResponse(await self._send(request, connecting))
        except httpx.HTTPError as exc:
            raise failure(exc) from exc

    async def _send(self, request: httpx.Request, connecting: Connecting) -> httpx.Response:
        """The close race, as the http1 client handles it: a reused connection the upstream had closed meets the
        request; nothing was answered, so it goes again on the next connection, up to STALE_RETRIES stale ones in
        a row. A connection opened for it ends the retries: its failure is the upstream's answer."""
        for _ in range(STALE_RETRIES):
            connecting.opened = False
            try:
                return await self.client.send(request, stream=True)
            except (httpx.RemoteProtocolError, httpx.ReadError) as exc:
                if connecting.opened or not unanswered(exc):
                    raise
        return await self.client.send(request, stream=True)

    async def aclose(self) -> None:
        await self.client.aclose()
