"""A lean HTTP/1.1 client for the gateway's one upstream origin: keep-alive connections on asyncio protocols,
responses parsed by httptools (uvicorn's own parser), bodies handed on chunk by chunk with backpressure.

Why not httpx on this path: its client layer alone costs ~100 µs a request before any I/O, as much as the whole
hop may (docs/benchmark.md measures both clients in one run). A retry happens only where nothing was sent: a
connection that could not be made.
"""

from __future__ import annotations

import asyncio
import logging
import random
import ssl
import time
from collections import deque
from urllib.parse import urlsplit

import httptools

from app.clients import ClientOptions, FailureKind, UpstreamFailure
from app.types import Headers

log = logging.getLogger("acedata_proxy.upstream")

HIGH_WATER = 256 * 1024  # body bytes buffered from the upstream before the gateway stops reading from it
LOW_WATER = 64 * 1024
INLINE_BODY = 64 * 1024  # smaller bodies go out in one write with the head


class Connection(asyncio.Protocol):
    """One upstream connection, and the response it is reading (one at a time; httptools calls the on_*)."""

    def __init__(self, client: Http1Client, loop: asyncio.AbstractEventLoop):
        self.client = client
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.lost = False  # closed or broken: never reused
        self.idle_since = 0.0
        self.begin()

    def begin(self) -> None:
        """Fresh state for the next response on this connection."""
        self.status = 0
        self.headers: Headers = []
        self.headers_done = False
        self.informational = False
        self.framed = False  # content-length or chunked: the end is known without the peer closing
        self.chunks: deque[bytes] = deque()
        self.buffered = 0
        self.complete = False
        self.keep_alive = False
        self.failure: UpstreamFailure | None = None
        self.waiter: asyncio.Future[None] | None = None
        self.paused = False
        self.released = False
        self.active = False  # a request was sent and its response is not complete

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        if not self.active:  # nothing was asked: a confused peer; never reuse this connection
            self._fail("protocol", "the upstream sent bytes nobody asked for")
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail("protocol", f"the upstream answered something that is not HTTP/1.1 ({exc})")

    def eof_received(self) -> bool:
        self.lost = True
        if self.headers_done and not self.framed and not self.complete:
            self.on_message_complete()  # a body delimited by the close has ended
        elif not self.complete:
            self._fail("protocol", "the upstream closed the connection " + self._when())
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.complete:
            self._fail("reset" if exc else "protocol", "the upstream connection broke " + self._when())

    # ------------------------------------------------------------------ httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        if 100 <= self.status < 200:  # 100 Continue, 103 Early Hints: not the answer; it follows
            self.headers, self.informational = [], True
            return
        self.headers_done = True
        for name, value in self.headers:
            if name == b"content-length" or (name == b"transfer-encoding" and b"chunked" in value.lower()):
                self.framed = True
        self._wake()

    def on_body(self, body: bytes) -> None:
        self.chunks.append(body)
        self.buffered += len(body)
        if self.buffered > HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True  # a slow client: stop reading, let TCP tell the upstream to wait
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self.informational:
            self.informational = False
            return
        self.complete = True
        self.active = False
        self.keep_alive = not self.lost and self.parser.should_keep_alive()
        self._wake()

    # ------------------------------------------------------------------ the response, as upstream.py reads it

    async def read(self) -> bytes:
        while not self.chunks:
            if self.complete:
                return b""
            if self.failure is not None:
                raise self.failure
            await self.wait(self.client.options.read_timeout, "between body bytes")
        chunk = self.chunks.popleft()
        self.buffered -= len(chunk)
        if self.paused and self.buffered <= LOW_WATER and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
        return chunk

    def at_end(self) -> bool:
        return self.complete and not self.chunks

    async def aclose(self) -> None:
        if not self.released:
            self.released = True
            self.client.release(self)

    # ------------------------------------------------------------------ plumbing

    def send(self, head: bytes, body: bytes) -> None:
        assert self.transport is not None
        self.active = True
        if len(body) < INLINE_BODY:
            self.transport.write(head + body)
        else:
            self.transport.writelines((head, body))

    async def wait(self, silence: float, what: str) -> None:
        """Until the protocol has news for the reader, or `silence` seconds without any (UpstreamFailure)."""
        waiter = self.waiter = self.loop.create_future()
        timer = self.loop.call_later(silence, self._expire, waiter, silence, what)
        try:
            await waiter
        finally:
            timer.cancel()
            self.waiter = None

    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.lost and not self.chunks

    def close(self) -> None:
        self.lost = True
        if self.transport is not None:
            self.transport.close()

    def _when(self) -> str:
        return "mid-body" if self.headers_done else "before answering"

    def _fail(self, kind: FailureKind, message: str) -> None:
        if self.failure is None:
            self.failure = UpstreamFailure(kind, message)
        self.close()
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def _expire(self, waiter: asyncio.Future[None], timeout: float, what: str) -> None:
        if not waiter.done():
            message = f"the upstream sent nothing for {timeout:g} s {what}"
            waiter.set_exception(UpstreamFailure("timeout", message, timeout=True))


class Http1Client:
    """Pooled keep-alive connections to one origin. Counts only connections in use against `max_connections`;
    an idle one is always taken before a new one is opened, so the total stays within it too."""

    def __init__(self, base_url: str, options: ClientOptions):
        parts = urlsplit(base_url)
        self.tls = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.tls else 80)
        self.host_header = parts.netloc.encode("idna")
        self.ssl_context = ssl.create_default_context() if self.tls else None
        self.options = options
        self.idle: list[Connection] = []  # most recently used last: reuse the warmest
        self.in_use = 0
        self.waiting: deque[asyncio.Future[None]] = deque()
        self.closed = False

    async def request(self, method: str, path: bytes, headers: Headers, body: bytes) -> Connection:
        head = b"".join(
            [b"%s %s HTTP/1.1\r\nhost: %s\r\n" % (method.encode(), path, self.host_header)]
            + [name + b": " + value + b"\r\n" for name, value in headers]
            + [b"content-length: %d\r\n\r\n" % len(body) if body or method == "POST" else b"\r\n"]
        )
        connection = await self._acquire()
        try:
            connection.send(head, body)
            while not connection.headers_done:
                if connection.failure is not None:
                    raise connection.failure
                await connection.wait(self.options.first_byte_timeout, "before the response began")
        except BaseException:
            connection.released = True
            self._discard(connection)
            raise
        return connection

    def release(self, connection: Connection) -> None:
        if not connection.reusable() or self.closed or len(self.idle) >= self.options.max_keepalive:
            self._discard(connection)
            return
        self.in_use -= 1
        connection.begin()
        connection.idle_since = time.monotonic()
        self.idle.append(connection)
        self._notify()

    async def aclose(self) -> None:
        self.closed = True
        while self.idle:
            self.idle.pop().close()

    def connections(self) -> tuple[int, int]:
        return self.in_use, len(self.idle)

    def _discard(self, connection: Connection) -> None:
        self.in_use -= 1
        connection.close()
        self._notify()

    def _notify(self) -> None:
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _idle_connection(self) -> Connection | None:
        now = time.monotonic()
        while self.idle:
            connection = self.idle.pop()
            if not connection.lost and now - connection.idle_since < self.options.keepalive_expiry:
                self.in_use += 1
                return connection
            connection.close()
        return None

    async def _acquire(self) -> Connection:
        if self.closed:
            raise UpstreamFailure("connect", "the upstream client is closed")
        connection = self._idle_connection()
        if connection is not None:  # the usual case, before anything asks for the loop (a getpid() syscall)
            return connection
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.options.connect_timeout
        while (connection := self._idle_connection()) is None and self.in_use >= self.options.max_connections:
            waiter = loop.create_future()
            self.waiting.append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    await waiter
            except TimeoutError:
                message = "no upstream connection became free in time; the gateway is saturated"
                raise UpstreamFailure("timeout", message, timeout=True) from None
        if connection is not None:
            return connection
        self.in_use += 1
        try:
            return await self._connect(loop)
        except BaseException:
            self.in_use -= 1
            self._notify()
            raise

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> Connection:
        """A new connection; a refused or unreachable upstream is tried again (nothing was sent yet), with a
        small jittered backoff, `connect_retries` times at most."""
        for attempt in range(self.options.connect_retries + 1):
            try:
                return await self._open(loop)
            except UpstreamFailure as exc:
                if exc.timeout or attempt == self.options.connect_retries:
                    raise
                delay = 0.05 * 2**attempt * random.uniform(0.5, 1.5)
                log.info("upstream connection failed (%s); retrying in %.0f ms", exc.message, delay * 1000)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _open(self, loop: asyncio.AbstractEventLoop) -> Connection:
        try:
            async with asyncio.timeout(self.options.connect_timeout):
                _, connection = await loop.create_connection(
                    lambda: Connection(self, loop), self.host, self.port,
                    ssl=self.ssl_context, server_hostname=self.host if self.tls else None,
                )  # fmt: skip
        except TimeoutError:
            message = f"connecting to the upstream timed out after {self.options.connect_timeout:g} s"
            raise UpstreamFailure("connect", message, timeout=True) from None
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise UpstreamFailure(
                "connect", f"the upstream refused the connection or is unreachable ({reason})"
            ) from None
        return connection
