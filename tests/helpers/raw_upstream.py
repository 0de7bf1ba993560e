"""A raw upstream on loopback that misbehaves one way per case: each request names its case in the x-request-id
the gateway forwards (`<case>:<n>`), and the case's handler writes whatever bytes it likes, however it likes.

It runs on its own event loop in a thread, so the gateways (processes) and the tests (plain sockets, httpx) talk
to it over real sockets. It counts connections opened and closed, so tests can see that the gateway let go.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Self

from app.serving.server import loopback_socket


@dataclass
class Request:
    head: bytes
    headers: dict[bytes, bytes]
    reader: asyncio.StreamReader
    body_read: bool = False

    @property
    def length(self) -> int:
        return int(self.headers.get(b"content-length", b"0"))

    @property
    def case(self) -> str:
        return self.headers.get(b"x-request-id", b"").decode().split(":", 1)[0]

    async def read_body(self) -> bytes:
        self.body_read = True
        return await self.reader.readexactly(self.length)


# A handler answers one request; it returns True to keep the connection for the next request, False to close it.
Handler = Callable[[Request, asyncio.StreamWriter], Awaitable[bool]]


@dataclass
class Stats:
    opened: int = 0
    closed: int = 0  # connections that ended, whoever closed them
    noticed: int = 0  # closes seen by handlers waiting in `until_closed`
    requests: list[str] = field(default_factory=list)  # the x-request-id of every request, in arrival order

    @property
    def open(self) -> int:
        return self.opened - self.closed


class RawUpstream:
    def __init__(self, tls: ssl.SSLContext | None = None):
        self.cases: dict[str, Handler] = {}
        self.stats = Stats()
        self.stats_heads: list[bytes] = []  # every request head as it arrived
        self.tls = tls
        self.sock = loopback_socket()
        self.port = self.sock.getsockname()[1]
        self.url = f"{'https' if tls else 'http'}://{'localhost' if tls else '127.0.0.1'}:{self.port}"
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.Server | None = None

    def start(self) -> Self:
        self.thread.start()
        self.call(self._start())
        return self

    async def _start(self) -> None:
        self.server = await asyncio.start_server(self._serve, sock=self.sock, ssl=self.tls, limit=1 << 20)

    def call(self, coroutine: Awaitable[object], timeout: float = 30) -> object:
        """Run `coroutine` on the upstream's loop and wait for its result (from the test's thread)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout)  # type: ignore[arg-type]

    def stop(self) -> None:
        async def close() -> None:
            assert self.server is not None
            self.server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self.call(close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats.opened += 1
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # every write its own segment
        try:
            keep = True
            while keep:
                request = await _read_request(reader)
                if request is None:
                    break
                self.stats.requests.append(request.headers.get(b"x-request-id", b"").decode())
                self.stats_heads.append(request.head)
                handler = self.cases.get(request.case, answer_json)
                keep = await handler(request, writer)
                if keep and not request.body_read:
                    await request.read_body()
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, asyncio.LimitOverrunError):
            pass
        except asyncio.CancelledError:  # stopping: end quietly (asyncio logs a cancelled connection task)
            pass
        finally:
            self.stats.closed += 1
            with contextlib.suppress(ConnectionError, ssl.SSLError):
                writer.close()


TCP_ESTABLISHED = 1


async def until_closed(writer: asyncio.StreamWriter, stats: Stats) -> None:
    """Wait, without reading a byte, until the gateway has closed or reset the connection (the kernel's TCP state
    leaves ESTABLISHED on its FIN or RST). For upstreams that never read: asyncio would not notice otherwise."""
    sock = writer.get_extra_info("socket")

    def established() -> bool:
        if writer.transport.is_closing():  # asyncio saw the reset itself (and closed the socket)
            return False
        try:
            return bool(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 1)[0] == TCP_ESTABLISHED)
        except OSError:
            return False

    while established():  # noqa: ASYNC110 - a kernel state, which has no event to wait on
        await asyncio.sleep(0.01)
    stats.noticed += 1


async def _read_request(reader: asyncio.StreamReader) -> Request | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    headers = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name:
            headers[name.strip().lower()] = value.strip()
    return Request(head, headers, reader)


JSON_BODY = b'{"id":"resp_1","object":"response"}'
JSON_ANSWER = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (
    len(JSON_BODY),
    JSON_BODY,
)


async def answer_json(request: Request, writer: asyncio.StreamWriter) -> bool:
    """A well-behaved answer, on a connection kept alive."""
    await request.read_body()
    writer.write(JSON_ANSWER)
    await writer.drain()
    return True
