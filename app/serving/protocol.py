"""uvicorn's httptools protocol, with two changes: a response's head and its body's first write leave in one
system call, and requests the parser refuses are answered with the OpenAI error envelope.

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

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from app.errors import InvalidRequest

HOLD_AT_MOST = 16 * 1024  # a response head; anything larger is written at once


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

    def __getattr__(self, name: str) -> Any:  # everything else is the real transport's
        return getattr(self.transport, name)


class EnvelopeHttpToolsProtocol(HttpToolsProtocol):
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(HeldWriteTransport(transport, self.loop))  # type: ignore[arg-type]

    def send_400_response(self, msg: str) -> None:
        # same framing as uvicorn's (default headers, connection: close), our body
        body = InvalidRequest("Malformed HTTP request: the request line or a header could not be parsed.").body()
        head = [f"HTTP/1.1 400 {HTTPStatus.BAD_REQUEST.phrase}\r\n".encode()]
        head += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        head += [
            b"content-type: application/json\r\n",
            b"content-length: " + str(len(body)).encode() + b"\r\n",
            b"connection: close\r\n\r\n",
        ]
        self.transport.write(b"".join(head) + body)
        self.transport.close()
