"""uvicorn's httptools protocol, with three changes: a response's head and its body's first write leave in one
system call, requests the parser refuses are answered with the OpenAI error envelope, and each connection is
held to the limits of app/serving/limits.py (head size, head and body time, strict framing).

uvicorn writes the status line and headers as soon as the app sends `http.response.start`, and the body as a
second write: two syscalls and two TCP segments for every JSON answer, ~10% of the gateway's CPU under load.
Here each connection's transport holds one small write back until the next write (sent together) or the end of
the event-loop iteration, whichever comes first; bytes never change order and are never held past the
iteration that wrote them, so nothing waits on a slow upstream.

A request line or header the HTTP parser refuses (a bare CR or LF in a header, an unknown method, a malformed
content-length) never reaches the app: uvicorn answers it itself, in plain text. Clients of an OpenAI-compatible
gateway parse every error as `{"error": {...}}`, so this one should read the same way.
"""

from __future__ import annotations

import asyncio
from http import HTTPStatus
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from app.context import WATCH_KEY, DisconnectWatch
from app.errors import HeadTooLarge, InvalidRequest, ProxyError, RequestTimeout
from app.serving.limits import HEAD_BYTES, ClientLimits, head_problem

HOLD_AT_MOST = 16 * 1024  # a response head; anything larger is written at once
DEFAULT_LIMITS = ClientLimits()


class HeldWriteTransport:
    """A transport proxy that holds back one small write until the next write or the end of the iteration."""

    __slots__ = ("held", "loop", "transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop):
        self.transport = transport
        self.loop = loop
        self.held: bytes | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self.held is not None:
            data, self.held = self.held + data, None
            self.transport.write(data)
        elif len(data) <= HOLD_AT_MOST:
            self.held = bytes(data)
            self.loop.call_soon(self.flush)
        else:
            self.transport.write(data)

    def flush(self) -> None:
        if self.held is not None:
            data, self.held = self.held, None
            if not self.transport.is_closing():
                self.transport.write(data)

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def write_eof(self) -> None:
        self.flush()
        self.transport.write_eof()

    def abort(self) -> None:
        self.held = None
        self.transport.abort()

    def is_closing(self) -> bool:  # asked once a response (the lookup through __getattr__ costs more than the call)
        return self.transport.is_closing()

    def __getattr__(self, name: str) -> Any:  # everything else is the real transport's
        return getattr(self.transport, name)


class EnvelopeHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, config: Config, server_state: ServerState, limits: ClientLimits = DEFAULT_LIMITS, **kwargs: Any):
        super().__init__(config, server_state, **kwargs)
        self.limits = limits
        self.refusal: ProxyError | None = None  # why the parser was stopped, answered by send_400_response
        self.head_left: int | None = HEAD_BYTES  # bytes the current head may still take; None: the head is in
        self.head_since: float | None = None  # when the current head began to be awaited
        self.body_since: float | None = None  # when the current body began to be awaited
        self.body_bytes = 0
        self.watches: list[DisconnectWatch] = []  # the request being served's, and any queued behind it

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(HeldWriteTransport(transport, self.loop))  # type: ignore[arg-type]
        self.head_since = self.loop.time()
        Sweeper.of(self.server_state, self.loop, self.limits.head_timeout)

    def data_received(self, data: bytes) -> None:
        left = self.head_left
        if left is None or len(data) <= left:
            if left is not None:
                self.head_left = left - len(data)
            super().data_received(data)
            return
        self.head_left = 0
        super().data_received(data[:left])  # the parser never sees a head's bytes past the limit
        if self.head_left is not None:
            if not self.transport.is_closing():
                self._refuse(HeadTooLarge(f"The request head is over {HEAD_BYTES // 1024} KiB."))
            return
        self.data_received(data[left:])

    def on_headers_complete(self) -> None:
        uncounted = self.head_left == HEAD_BYTES  # began within a read that data_received did not count
        problem = head_problem(self.headers, self.url, self.parser.get_http_version(), uncounted)
        if problem is not None:
            self.refusal = problem
            raise problem  # stops the parser: answered by send_400_response (and nothing more is fed)
        self.head_left = self.head_since = None
        self.body_since, self.body_bytes = self.loop.time(), 0  # a request without a body completes at once
        super().on_headers_complete()
        watch = self.scope[WATCH_KEY] = DisconnectWatch(self.flow.resume_reading)  # type: ignore[literal-required]
        if self.pipeline:  # queued behind a request still being served (uvicorn serves them in turn)
            self.watches.append(watch)
        else:
            self.watches = [watch]

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        for watch in self.watches:
            watch.trip()

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self.head_left, self.body_since = HEAD_BYTES, None
        super().on_message_complete()

    def on_response_complete(self) -> None:
        if not self.pipeline:  # no request waits in line: the next head is awaited from now
            self.head_since = self.loop.time()
        super().on_response_complete()

    def expire(self, now: float) -> None:
        """Called about once a second: a head or body later than the limits allow ends the connection."""
        if self.transport.is_closing():
            return
        if self.head_since is not None and now - self.head_since > self.limits.head_timeout:
            if self.head_left == HEAD_BYTES:  # idle: nothing of a request arrived, nothing to answer
                self.transport.close()
            else:
                self._refuse(RequestTimeout("The request head did not arrive in time."))
        elif self.body_since is not None and now - self.body_since > self.limits.body_deadline(self.body_bytes):
            if self.cycle is not None and self.cycle.response_started:
                self.transport.close()
            else:
                self._refuse(RequestTimeout("The request body did not arrive in time."))

    def send_400_response(self, msg: str) -> None:
        refusal, self.refusal = self.refusal, None
        self._refuse(
            refusal or InvalidRequest("Malformed HTTP request: the request line or a header could not be parsed.")
        )

    def _refuse(self, error: ProxyError) -> None:
        """The error in the envelope, with uvicorn's framing of its own refusals (default headers, close)."""
        body = error.body()
        head = [f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}\r\n".encode()]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()


class Sweeper:
    """One per server: checks every connection's deadlines about once a second (a timer per request would cost
    the hot path; a sweep costs microseconds per thousand connections)."""

    def __init__(self, server_state: ServerState, loop: asyncio.AbstractEventLoop, interval: float):
        self.connections = server_state.connections
        self.loop = loop
        self.interval = interval
        loop.call_later(interval, self.sweep)

    @classmethod
    def of(cls, server_state: ServerState, loop: asyncio.AbstractEventLoop, timeout: float) -> None:
        if getattr(server_state, "acedata_sweeper", None) is None:
            server_state.acedata_sweeper = cls(server_state, loop, min(1.0, timeout / 2))  # type: ignore[attr-defined]

    def sweep(self) -> None:
        now = self.loop.time()
        for connection in list(self.connections):
            if isinstance(connection, EnvelopeHttpToolsProtocol):
                connection.expire(now)
        self.loop.call_later(self.interval, self.sweep)
