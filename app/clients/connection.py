"""One upstream HTTP/1.1 connection as an asyncio protocol, and the response it is reading (one at a time):
httptools (llhttp, uvicorn's own parser) calls the on_* methods, the gateway reads body chunks with backpressure.

What makes a connection unfit for another request is decided here, from state the protocol already holds (no
syscall per request): the peer closed or broke it, the response asked for a close, part of the request was still
unsent when the answer ended, or bytes came that nobody asked for.
"""

from __future__ import annotations

import asyncio
import select
import socket
import struct
from collections import deque
from typing import TYPE_CHECKING

import httptools

from app.clients import FailureKind, UpstreamFailure
from app.types import Body, Headers

if TYPE_CHECKING:
    from app.clients.http1 import Http1Client

HIGH_WATER = 256 * 1024  # body bytes buffered from the upstream before the gateway stops reading from it
LOW_WATER = 64 * 1024
INLINE_BODY = 64 * 1024  # smaller bodies go out in one write with the head
RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s
MAX_HEAD = 64 * 1024  # status line and headers (informational responses included); past it: 502, as nginx does


class _ExtraResponse(Exception):
    """A second response began on the connection before a request asked for it."""


class Connection(asyncio.Protocol):
    def __init__(self, client: Http1Client, loop: asyncio.AbstractEventLoop):
        self.client = client
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.lost = False  # closed or broken: never reused
        self.idle_since = 0.0
        self.requests = 0  # sent on this connection; > 1 means it was reused
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
        self.head_bytes = 0
        self.answered = False  # a byte of the answer arrived
        self.complete = False
        self.keep_alive = False
        self.failure: UpstreamFailure | None = None
        self.waiter: asyncio.Future[bool] | None = None  # True: the silence limit passed
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
        self.answered = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _ExtraResponse):  # the answer stands; the connection does not
                self._fail("protocol", "the upstream sent bytes after its response")
            else:
                self._fail("protocol", f"the upstream's answer could not be read ({exc.__context__})")
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._fail("protocol", f"the upstream answered something that is not HTTP/1.1 ({exc})")
        if not self.headers_done:
            self.head_bytes += len(data)  # every byte so far belongs to a head: it has no end in sight
            if self.head_bytes > MAX_HEAD:
                self._fail("protocol", f"the upstream's response head is over {MAX_HEAD // 1024} KiB")

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

    # A second response after a complete one is caught by the callbacks every response calls anyway (on_header,
    # on_headers_complete, on_message_complete), not by on_message_begin: that one callback costs ~1 µs a response.

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.headers_done:
            self.headers.append((name.lower(), value))
        elif self.complete:
            raise _ExtraResponse
        # else a trailer, which never reaches a client

    def on_headers_complete(self) -> None:
        if self.complete:
            raise _ExtraResponse
        self.status = self.parser.get_status_code()
        if self.status == 101:  # nothing here asks to switch protocols; what follows is not HTTP
            self._fail("protocol", "the upstream switched protocols (101), which this request never asked for")
            return
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
        if self.complete:
            raise _ExtraResponse
        if self.failure is not None:
            return
        self.complete = True
        self.active = False
        # part of the request still unsent (an early answer, e.g. 413): the rest would be read as a new request
        unsent = self.transport is not None and self.transport.get_write_buffer_size() > 0
        self.keep_alive = not self.lost and not unsent and self.parser.should_keep_alive()
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

    def send(self, head: bytes, body: Body) -> None:
        assert self.transport is not None
        self.active = True
        self.requests += 1
        if len(body) < INLINE_BODY:
            self.transport.write(head + body)
        else:
            self.transport.writelines((head, body))

    async def wait(self, silence: float, what: str) -> None:
        """Until the protocol has news for the reader, or `silence` seconds without any (UpstreamFailure)."""
        waiter = self.waiter = self.loop.create_future()
        timer = self.loop.call_later(silence, _expire, waiter)
        try:
            expired = await waiter
        finally:
            timer.cancel()
            self.waiter = None
        if expired:  # raised here, not stored in the future: the two would keep each other (and these frames)
            message = f"the upstream sent nothing for {silence:g} s {what}"
            raise UpstreamFailure("timeout", message, timeout=True)

    def stale(self) -> bool:
        """A reused connection the upstream closed before answering a single byte: it had closed it while idle
        (its keep-alive timeout, or a close after N responses) and the request met that close in flight."""
        return self.requests > 1 and not self.answered and self.failure is not None and not self.failure.timeout

    def quiet(self) -> bool:
        """Nothing arrived on this kept-alive connection since its last answer ended, as far as the socket tells
        (a poll, no read): bytes or a close the loop has not handled yet would otherwise be read as the answer to
        the request about to be sent on it (urllib3 and Go's net/http check the same before a reuse)."""
        if self.lost:
            return False
        sock = self.transport.get_extra_info("socket") if self.transport is not None else None
        if sock is None:
            return True
        poller = select.poll()  # not select(): descriptors past 1,024 are common with thousands of streams
        poller.register(sock.fileno(), select.POLLIN)
        return not poller.poll(0)

    def reusable(self) -> bool:
        return self.complete and self.keep_alive and not self.lost and not self.chunks

    def close(self) -> None:
        """Close an idle connection (nothing in flight either way)."""
        self.lost = True
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Drop a connection at once, unsent bytes and all: a graceful close of one whose upstream does not read
        would keep the socket and the request body alive outside the pool until the upstream gave up. abort()
        drops the transport's buffer; a zero linger makes the kernel drop its own and reset the connection (else
        the FIN waits behind the unsent bytes, and the upstream never sees the close)."""
        self.lost = True
        if self.transport is None or self.transport.is_closing():
            return
        if self.active or self.transport.get_write_buffer_size():
            sock = self.transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET_ON_CLOSE)
        self.transport.abort()
        # the transport keeps its write buffer (the unsent body) until it is freed; it and this protocol refer
        # to each other, so without this only the cycle collector would free it, whenever it next runs
        self.transport = None

    def _when(self) -> str:
        return "mid-body" if self.headers_done else "before answering"

    def _fail(self, kind: FailureKind, message: str) -> None:
        if self.failure is None and not self.complete:
            self.failure = UpstreamFailure(kind, message)
        self.abort()
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(False)


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(True)
