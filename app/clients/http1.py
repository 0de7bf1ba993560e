"""A lean HTTP/1.1 client for the gateway's one upstream origin: a pool of keep-alive connections
(app/clients/connection.py), opened by app/clients/connect.py, handed out first come, first served. A connection
tells the pool when its response is closed, through the callback the pool gave it; the pool reads its state.

Why not httpx on this path: its client layer alone costs as much a request before any I/O as the whole hop may
(docs/upstream-client.md; the figures: docs/performance-steps.md, step 1). Requests are sent again only where
the upstream cannot have acted on them: a connection that could not be made, or a reused one the upstream had
closed before answering a byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
import time
from collections import deque

from app.clients import STALE_RETRIES, ClientOptions, UpstreamFailure
from app.clients.connect import ConnectFailure, open_transport
from app.clients.connection import IDLE, NEW, Connection
from app.clients.flow_control import HIGH_WATER
from app.clients.origin import parse_origin, proxy_for, tls_context
from app.clients.response import Response
from app.types import Body, Headers

__all__ = ["HIGH_WATER", "Http1Client"]  # the backpressure mark, for the client's tests

log = logging.getLogger("acedata_proxy.upstream")


class Http1Client:
    """Pooled keep-alive connections to one origin. `in_use` counts connections handed out and ones being opened;
    an idle one is always taken before a new one is opened, so the total stays within `max_connections`.
    Waiters are served in order: a released connection (or a freed slot) goes to the first of them directly."""

    def __init__(self, base_url: str, options: ClientOptions):
        self.origin = parse_origin(base_url)
        self.proxy = proxy_for(self.origin)
        self.tls = tls_context() if self.origin.tls else None
        target = self.origin.prefix
        if self.proxy is not None and not self.origin.tls:  # absolute-form, as a forward proxy expects
            target = b"http://" + self.origin.host_header + target
        self.head_starts = {method: method.encode() + b" " + target for method in ("POST", "GET")}
        self.head_host = b" HTTP/1.1\r\nhost: " + self.origin.host_header + b"\r\n"
        if self.proxy is not None and not self.origin.tls and self.proxy.authorization is not None:
            self.head_host += b"proxy-authorization: " + self.proxy.authorization + b"\r\n"
        self.options = options
        self.idle: list[Connection] = []  # most recently used last: reuse the warmest
        self.in_use = 0
        self.waiting: deque[asyncio.Future[Connection | None]] = deque()  # None: a free slot to open one
        self.closed = False

    async def request(self, method: str, path: bytes, headers: Headers, body: Body) -> Response:
        head = b"".join(
            [self.head_starts[method], path, self.head_host]
            + [name + b": " + value + b"\r\n" for name, value in headers]
            + [b"content-length: %d\r\n\r\n" % len(body) if body or method == "POST" else b"\r\n"]
        )
        for attempt in range(STALE_RETRIES + 1):
            connection = await self._acquire_quiet()
            try:
                response = connection.send(head, body)
                await response.started(self.options.first_byte_timeout)
            except UpstreamFailure:
                stale = connection.stale()
                self._drop(connection)
                if stale and attempt < STALE_RETRIES:
                    continue  # the upstream never saw this request: it had closed the connection before
                raise
            except BaseException:
                self._drop(connection)
                raise
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def release(self, connection: Connection) -> None:
        """A connection's response was closed: the connection is IDLE (kept alive) or CLOSED."""
        if connection.state is IDLE and not self.closed:
            self._put_back(connection)
        else:
            self._drop(connection)

    async def aclose(self) -> None:
        self.closed = True
        while self.idle:
            self.idle.pop().close()

    # ------------------------------------------------------------------ the pool

    def _drop(self, connection: Connection) -> None:
        connection.abort()
        self._free_slot()

    def _put_back(self, connection: Connection) -> None:
        """A healthy connection nobody holds any more: to the first waiter, else idle."""
        if self._hand_over(connection):
            return
        self.in_use -= 1
        if len(self.idle) < self.options.max_keepalive and not self.closed:
            self.idle.append(connection)
        else:
            connection.close()

    def _free_slot(self) -> None:
        if not self._hand_over(None):
            self.in_use -= 1

    def _hand_over(self, item: Connection | None) -> bool:
        while self.waiting:
            waiter = self.waiting.popleft()
            if not waiter.done():
                waiter.set_result(item)
                return True
        return False

    def _idle_connection(self) -> Connection | None:
        now = time.monotonic()
        while self.idle:
            connection = self.idle.pop()
            if connection.state is IDLE and now - connection.idle_since < self.options.keepalive_expiry:
                self.in_use += 1
                return connection
            connection.close()
        return None

    async def _acquire_quiet(self) -> Connection:
        """A connection to send on. A kept-alive one the upstream spoke on out of turn (or closed) since its last
        answer is dropped, not used: those bytes would be read as this request's answer."""
        while True:
            connection = await self._acquire()
            if connection.state is NEW or connection.quiet():
                return connection
            self._drop(connection)

    async def _acquire(self) -> Connection:
        if self.closed:
            raise UpstreamFailure("connect", "the upstream client is closed")
        if not self.waiting:  # nobody queued: take an idle connection, or a free slot (newcomers never overtake)
            connection = self._idle_connection()
            if connection is not None:  # the usual case, before anything asks for the loop (a getpid() syscall)
                return connection
            if self.in_use < self.options.max_connections:
                self.in_use += 1
                return await self._open_slot(asyncio.get_running_loop())
        loop = asyncio.get_running_loop()
        item = await self._queue(loop)
        return item if item is not None else await self._open_slot(loop)

    async def _queue(self, loop: asyncio.AbstractEventLoop) -> Connection | None:
        waiter: asyncio.Future[Connection | None] = loop.create_future()
        self.waiting.append(waiter)
        try:
            async with asyncio.timeout(self.options.connect_timeout):
                return await waiter
        except BaseException as exc:
            if waiter.done() and not waiter.cancelled():  # handed something as we left: pass it on, not lose it
                item = waiter.result()
                self._free_slot() if item is None else self._put_back(item)
            with contextlib.suppress(ValueError):
                self.waiting.remove(waiter)
            if isinstance(exc, TimeoutError):
                message = "no upstream connection became free in time; the gateway is saturated"
                raise UpstreamFailure("timeout", message, timeout=True) from None
            raise

    async def _open_slot(self, loop: asyncio.AbstractEventLoop) -> Connection:
        """A new connection in a slot already counted in `in_use`; the slot is given back when it fails."""
        try:
            return await self._connect(loop)
        except BaseException:
            self._free_slot()
            raise

    async def _connect(self, loop: asyncio.AbstractEventLoop) -> Connection:
        """A refused or unreachable upstream is tried again (nothing was sent yet), with a small jittered
        backoff, `connect_retries` times at most; a TLS or proxy refusal is final."""
        for attempt in range(self.options.connect_retries + 1):
            try:
                return await self._open(loop)
            except ConnectFailure as exc:
                if not exc.retry or attempt == self.options.connect_retries:
                    raise
                delay = 0.05 * 2**attempt * random.uniform(0.5, 1.5)
                log.info("upstream connection failed (%s); retrying in %.0f ms", exc.message, delay * 1000)
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _open(self, loop: asyncio.AbstractEventLoop) -> Connection:
        try:
            async with asyncio.timeout(self.options.connect_timeout):
                made = functools.partial(Connection, loop, self.options.read_timeout, self.release)
                _, connection = await open_transport(loop, made, self.origin, self.proxy, self.tls)
        except TimeoutError:
            message = f"connecting to the upstream timed out after {self.options.connect_timeout:g} s"
            raise ConnectFailure(message, timeout=True) from None
        assert isinstance(connection, Connection)
        return connection
