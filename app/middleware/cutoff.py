"""What a request still running when the shutdown grace (PROXY_SHUTDOWN_GRACE) runs out gets.

uvicorn cancels such requests. Left alone, one that has not answered yet would get uvicorn's plain-text 500 and
a stream would be cut mid-body. Instead: no status sent yet, a 503 in the error envelope (SDKs retry it); a
stream, a last error event in its own format, as for any failure after a stream began (docs/contract.md); a JSON body
under way has no such format, so its connection is still aborted, never left looking complete.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

from app.context import request_info
from app.errors import Envelope, NotReady, send_error
from app.proxy.headers import header
from app.proxy.streams import TAIL, StreamFormat, closing_event, stream_format
from app.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("acedata_proxy.cutoff")

CUT = NotReady("The gateway is shutting down and cut this request; retry it.")


class _Progress:
    """How far the response has gone: enough to end it properly. It runs for every message of every request and
    is read only when a cut comes, so it keeps references and reads them then: the stream format of the head's
    content type, and a tail only of bodies that go on (a finished one is never cut)."""

    __slots__ = ("done", "headers", "started", "tail")

    def __init__(self) -> None:
        self.started = self.done = False
        self.headers: Iterable[tuple[bytes, bytes]] = ()
        self.tail = b""

    def see(self, message: Message) -> None:
        if message["type"] == "http.response.body":
            if not message.get("more_body", False):
                self.done = True
            elif chunk := message.get("body", b""):
                self.tail = (self.tail + bytes(chunk[-TAIL:]))[-TAIL:]  # never copies a whole chunk
        elif message["type"] == "http.response.start":
            self.started = True
            self.headers = message.get("headers", ())

    @property
    def fmt(self) -> StreamFormat:
        return stream_format(bytes(header(self.headers, b"content-type") or b""))

    def last_event(self, envelope: Envelope) -> bytes:
        """The error event that ends the stream, after whatever closes a half-sent event or line."""
        return closing_event(self.tail, self.fmt or "ndjson", CUT, envelope)


class ShutdownCutoff:
    """Ends the requests uvicorn cancels when the shutdown grace runs out, as the module docstring says."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        progress = _Progress()

        async def tracked(message: Message) -> None:
            progress.see(message)
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except asyncio.CancelledError:
            # uvicorn cancels only at the end of the grace; a client's disconnect is handled (and uncancelled)
            # by the endpoint before it gets here
            if progress.done or (progress.started and progress.fmt is None):
                raise
            log.warning("shutdown grace over: request cut (%s)", "stream ended" if progress.started else "503")
            envelope = request_info(scope).envelope
            if progress.started:
                await send({"type": "http.response.body", "body": progress.last_event(envelope), "more_body": False})
            else:
                await send_error(send, CUT, envelope)
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
