"""One upstream HTTP/1.1 connection as an asyncio protocol: an explicit state machine (as httpcore's
`_async/http11.py` keeps one) that carries one request and its response (app/clients/response.py) at a time.
httptools (llhttp, uvicorn's own parser) calls the on_* methods; they fill the response being read.

    NEW ──send──> ACTIVE ──response closed, reusable──> IDLE ──send──> ACTIVE ...
                    └──────── failed, cut, closed by either side ───────> CLOSED (never used again)

What makes a connection unfit for another request is decided here, from state the protocol already holds (no
syscall per request): the peer closed or broke it, the response asked for a close, part of the request was still
unsent when the answer ended, or bytes came that nobody asked for. The connection knows nothing of its pool: it
calls the `on_release` callback it was given once its response is closed, in state IDLE or CLOSED.
"""

from __future__ import annotations

import asyncio
import enum
import select
import socket
import struct
import time
from collections.abc import Callable

import httptools

from app.clients import FailureKind, UpstreamFailure
from app.clients.flow_control import FlowControl
from app.clients.response import Response
from app.types import Body

INLINE_BODY = 64 * 1024  # smaller bodies go out in one write with the head
RESET_ON_CLOSE = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s
MAX_HEAD = 64 * 1024  # status line and headers (informational responses included); past it: 502, as nginx does


class State(enum.Enum):
    NEW = "new"  # connected, nothing sent yet
    ACTIVE = "active"  # a request was sent; its response is not closed yet
    IDLE = "idle"  # kept alive between two requests
    CLOSED = "closed"  # closed or broken by either side: never used again


# The states under module names, for the hot path: reading a member off an Enum class goes through EnumType's
# attribute lookup, and a request reads them about eight times (docs/performance-facts.md has the cost).
NEW, ACTIVE, IDLE, CLOSED = State.NEW, State.ACTIVE, State.IDLE, State.CLOSED


class _ExtraResponse(Exception):
    """A second response began on the connection before a request asked for it."""


class Connection(asyncio.Protocol):
    def __init__(self, loop: asyncio.AbstractEventLoop, read_timeout: float, on_release: Callable[[Connection], None]):
        self.loop = loop
        self.read_timeout = read_timeout
        self.on_release = on_release
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        # RFC 9112 7.1.1 allows whitespace (BWS) between a chunk's size and its extension's ";"; llhttp refuses it
        # unless told (it still refuses whitespace after the ";")
        self.parser.set_dangerous_leniencies(lenient_spaces_after_chunk_size=True)
        self.flow = FlowControl()
        self.state = NEW
        self.response: Response | None = None  # the one being read, from its request's send to its close
        self.requests = 0  # sent on this connection; > 1 means it was reused
        self.idle_since = 0.0
        self._poller: select.poll | None = None

    @property
    def lost(self) -> bool:
        """Closed or broken, by either side: never used again."""
        return self.state is CLOSED

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = self.flow.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        response = self.response
        if response is None or response.complete:  # nothing was asked: never reuse this connection
            self._fail("protocol", "the upstream sent bytes nobody asked for")
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserCallbackError as exc:
            if isinstance(exc.__context__, _ExtraResponse):  # the answer stands; the connection does not
                self._fail("protocol", "the upstream sent bytes after its response")
            else:
                self._fail("protocol", f"the upstream's answer could not be read ({exc.__context__})")
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._fail("protocol", f"the upstream answered something that is not HTTP/1.1 ({exc})")
        if not response.head_done:
            response.head_bytes += len(data)  # every byte so far belongs to a head: it has no end in sight
            if response.head_bytes > MAX_HEAD:
                self._fail("protocol", f"the upstream's response head is over {MAX_HEAD // 1024} KiB")

    def eof_received(self) -> bool:
        self.state = CLOSED
        response = self.response
        if response is None or response.complete:
            return False
        if response.head_done and not response.framed:
            self.on_message_complete()  # a body delimited by the close has ended
        else:
            self._fail("protocol", "the upstream closed the connection " + _when(response))
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.state = CLOSED
        response = self.response
        if response is not None and not response.complete:
            self._fail("reset" if exc else "protocol", "the upstream connection broke " + _when(response))

    # ------------------------------------------------------------------ httptools callbacks

    # They run only inside data_received's feed_data, which checked that a response is being read. A second
    # response after a complete one is caught by the callbacks every response calls anyway (on_header,
    # on_headers_complete, on_message_complete), not by on_message_begin, which would cost a callback a response.

    def on_header(self, name: bytes, value: bytes) -> None:
        response = self.response
        assert response is not None
        if not response.head_done:
            response.headers.append((name.lower(), value))
        elif response.complete:
            raise _ExtraResponse
        # else a trailer, which never reaches a client

    def on_headers_complete(self) -> None:
        response = self.response
        assert response is not None
        if response.complete:
            raise _ExtraResponse
        response.status = status = self.parser.get_status_code()
        if status == 101:  # nothing here asks to switch protocols; what follows is not HTTP
            self._fail("protocol", "the upstream switched protocols (101), which this request never asked for")
            return
        if 100 <= status < 200:  # 100 Continue, 103 Early Hints: not the answer; it follows
            response.headers = []
            return
        response.head_done = True
        for name, value in response.headers:
            if name == b"content-length" or (name == b"transfer-encoding" and b"chunked" in value.lower()):
                response.framed = True
        response.wake()

    def on_body(self, body: bytes) -> None:
        response = self.response
        assert response is not None
        response.chunks.append(body)
        self.flow.received(len(body))
        response.wake()

    def on_message_complete(self) -> None:
        response = self.response
        assert response is not None
        if not response.head_done:  # the end of a 1xx message (a 101 failed already): the answer follows
            return
        if response.complete:
            raise _ExtraResponse
        if response.failure is not None:
            return
        # part of the request still unsent (an early answer, e.g. 413): the rest would be read as a new request
        unsent = self.transport is not None and self.transport.get_write_buffer_size() > 0
        response.keep_alive = not unsent and self.parser.should_keep_alive()
        response.complete = True
        response.wake()

    # ------------------------------------------------------------------ what the pool asks of it

    def send(self, head: bytes, body: Body) -> Response:
        """Write a request; its response, to wait on with `Response.started`."""
        assert self.state is not ACTIVE
        response = self.response = Response(self)
        transport = self.transport
        if self.state is CLOSED or transport is None:  # the upstream closed a new one before it was used
            self._fail("protocol", "the upstream closed the connection before answering")
            return response
        self.state = ACTIVE
        self.requests += 1
        if len(body) < INLINE_BODY:
            transport.write(head + body)
        else:
            transport.writelines((head, body))
        return response

    def stale(self) -> bool:
        """A reused connection the upstream closed before answering a single byte: it had closed it while idle
        (its keep-alive timeout, or a close after N responses) and the request met that close in flight."""
        response = self.response
        return self.requests > 1 and response is not None and not response.answered and response.failure is not None

    def quiet(self) -> bool:
        """Nothing arrived on this kept-alive connection since its last answer ended, as far as the socket tells
        (a poll, no read): bytes or a close the loop has not handled yet would otherwise be read as the answer to
        the request about to be sent on it (urllib3 and Go's net/http check the same before a reuse)."""
        if self.state is CLOSED:
            return False
        if self._poller is None:  # made at the first reuse, kept while the socket is open (its descriptor with it)
            sock = self.transport.get_extra_info("socket") if self.transport is not None else None
            if sock is None:
                return True
            self._poller = select.poll()  # not select(): descriptors past 1,024 are common with many streams
            self._poller.register(sock.fileno(), select.POLLIN)
        return not self._poller.poll(0)

    def close(self) -> None:
        """Close an idle connection (nothing in flight either way)."""
        self.state = CLOSED
        if self.transport is not None:
            self.transport.close()

    def abort(self) -> None:
        """Drop a connection at once, unsent bytes and all: a graceful close of one whose upstream does not read
        would keep the socket and the request body alive outside the pool until the upstream gave up. abort()
        drops the transport's buffer; a zero linger makes the kernel drop its own and reset the connection (else
        the FIN waits behind the unsent bytes, and the upstream never sees the close)."""
        in_flight = self.response is not None and not self.response.complete
        self.state = CLOSED
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if in_flight or transport.get_write_buffer_size():
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, RESET_ON_CLOSE)
        transport.abort()
        # the transport keeps its write buffer (the unsent body) until it is freed; it and this protocol refer
        # to each other, so without this only the cycle collector would free it, whenever it next runs
        self.transport = self.flow.transport = None

    # ------------------------------------------------------------------ plumbing

    def response_closed(self, response: Response) -> None:
        """The reader closed its response: the connection idles if the answer ended cleanly and was read whole,
        else it is aborted; either way the pool hears of it."""
        if self.state is ACTIVE and response.reusable():
            self.state = IDLE
            self.idle_since = time.monotonic()
        else:
            self.abort()
        self.response = None
        self.on_release(self)

    def _fail(self, kind: FailureKind, message: str) -> None:
        response = self.response
        if response is not None and response.failure is None and not response.complete:
            response.failure = UpstreamFailure(kind, message)
        self.abort()
        if response is not None:
            response.wake()


def _when(response: Response) -> str:
    return "mid-body" if response.head_done else "before answering"
