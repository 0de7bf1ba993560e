"""Opening one upstream connection: resolve, connect with Happy Eyeballs (a broken IPv6 route costs 250 ms, not
the connect timeout), through a CONNECT tunnel when an egress proxy is set, then TLS. Every failure becomes an
UpstreamFailure; only a refused or unreachable address may be tried again (`retry`), never a TLS or proxy refusal.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable

import aiohappyeyeballs

from app.clients import UpstreamFailure
from app.clients.origin import Origin, Proxy

HAPPY_EYEBALLS_DELAY = 0.25  # RFC 8305's recommended head start of one address family over the other
MAX_TUNNEL_ANSWER = 16 * 1024


class ConnectFailure(UpstreamFailure):
    def __init__(self, message: str, *, retry: bool = False, timeout: bool = False):
        super().__init__("connect", message, timeout=timeout)
        self.retry = retry


class _Tunnel(asyncio.Protocol):
    """Reads the proxy's answer to CONNECT: its head, then nothing (the TLS handshake starts after it)."""

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.buffer = b""
        self.answered: asyncio.Future[bytes] = loop.create_future()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if (b"\r\n\r\n" in self.buffer or len(self.buffer) > MAX_TUNNEL_ANSWER) and not self.answered.done():
            self.answered.set_result(self.buffer)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.answered.done():
            self.answered.set_result(self.buffer)


async def _socket(loop: asyncio.AbstractEventLoop, host: str, port: int) -> socket.socket:
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return await aiohappyeyeballs.start_connection(infos, happy_eyeballs_delay=HAPPY_EYEBALLS_DELAY, loop=loop)


async def open_transport(
    loop: asyncio.AbstractEventLoop,
    factory: Callable[[], asyncio.Protocol],
    origin: Origin,
    proxy: Proxy | None,
    tls: ssl.SSLContext | None,
) -> tuple[asyncio.Transport, asyncio.Protocol]:
    """A connected transport to the origin (through the proxy when there is one), TLS done when `tls`."""
    hostname = origin.host if tls is not None else None
    try:
        if proxy is None:
            sock = await _socket(loop, origin.host, origin.port)
            return await loop.create_connection(factory, sock=sock, ssl=tls, server_hostname=hostname)
        sock = await _socket(loop, proxy.host, proxy.port)
        if tls is None:  # plain http through the proxy: absolute-form requests on an ordinary connection
            return await loop.create_connection(factory, sock=sock)
        return await _tls_through(loop, factory, sock, origin, proxy, tls)
    except ssl.SSLCertVerificationError as exc:
        raise ConnectFailure(f"the upstream's TLS certificate was refused ({exc.verify_message or exc})") from None
    except ssl.SSLError as exc:
        raise ConnectFailure(f"the TLS handshake with the upstream failed ({exc.reason or exc})") from None
    except OSError as exc:
        reason = exc.strerror or str(exc) or type(exc).__name__
        where = f"the egress proxy {proxy.host}:{proxy.port}" if proxy is not None else "the upstream"
        raise ConnectFailure(f"{where} refused the connection or is unreachable ({reason})", retry=True) from None


async def _tls_through(
    loop: asyncio.AbstractEventLoop,
    factory: Callable[[], asyncio.Protocol],
    sock: socket.socket,
    origin: Origin,
    proxy: Proxy,
    tls: ssl.SSLContext,
) -> tuple[asyncio.Transport, asyncio.Protocol]:
    transport, tunnel = await loop.create_connection(lambda: _Tunnel(loop), sock=sock)
    try:
        request = b"CONNECT %s HTTP/1.1\r\nhost: %s\r\n" % (origin.authority, origin.authority)
        if proxy.authorization is not None:
            request += b"proxy-authorization: " + proxy.authorization + b"\r\n"
        transport.write(request + b"\r\n")
        answer = await tunnel.answered
        status_line = answer.split(b"\r\n", 1)[0]
        fields = status_line.split(b" ", 2)
        if len(fields) < 2 or not fields[0].startswith(b"HTTP/1.") or not fields[1].startswith(b"2"):
            shown = status_line[:100].decode("latin-1") or "no answer"
            raise ConnectFailure(f"the egress proxy {proxy.host}:{proxy.port} refused the tunnel ({shown})")
        protocol = factory()
        tls_transport = await loop.start_tls(transport, protocol, tls, server_hostname=origin.host)
    except BaseException:
        transport.abort()
        raise
    if tls_transport is None:  # pragma: no cover - start_tls returns None only when the loop is closing
        raise ConnectFailure("the TLS handshake through the egress proxy was abandoned")
    protocol.connection_made(tls_transport)
    return tls_transport, protocol
