"""What a request still running when the shutdown grace (PROXY_SHUTDOWN_GRACE) runs out gets.

uvicorn cancels such requests; ObserveMiddleware, around every request already, catches that cancellation and
asks `answer_cut` (no layer of its own: every message and every suspension of every request would pass through
it). Left alone, one that has not answered yet would get uvicorn's plain-text 500 and a stream would be cut
mid-body. Instead: no status sent yet, a 503 in the error envelope (SDKs retry it); a stream, a last error event
in its own format, as for any failure after a stream began (docs/contract.md); a JSON body under way has no such
format, so its connection is still aborted, never left looking complete.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable

from app.errors import Envelope, NotReady, send_error
from app.proxy.headers import header
from app.proxy.streams import TAIL, StreamFormat, closing_event, stream_format
from app.types import Send

log = logging.getLogger("acedata_proxy.cutoff")

CUT = NotReady("The gateway is shutting down and cut this request; retry it.")


class Progress:
    """How far a response has gone: enough to end it properly. ObserveMiddleware keeps it up to date from every
    message it passes on, and it is read only when a cut comes: the head's headers (their content type names the
    stream format), and a tail only of bodies that go on (a finished one is never cut)."""

    __slots__ = ("done", "headers", "tail")

    def __init__(self) -> None:
        self.headers: Iterable[tuple[bytes, bytes]] | None = None  # the head's, once it was sent
        self.done = False
        self.tail = b""

    def sent(self, chunk: bytes, more: bool) -> None:
        if not more:
            self.done = True
        elif chunk:
            self.tail = (self.tail + bytes(chunk[-TAIL:]))[-TAIL:]  # never copies a whole chunk

    @property
    def fmt(self) -> StreamFormat:
        return stream_format(bytes(header(self.headers or (), b"content-type") or b""))

    def last_event(self, envelope: Envelope) -> bytes:
        """The error event that ends the stream, after whatever closes a half-sent event or line."""
        return closing_event(self.tail, self.fmt or "ndjson", CUT, envelope)


async def answer_cut(progress: Progress, send: Send, envelope: Envelope) -> bool:
    """Called when uvicorn cancelled the request at the end of the grace: what it still gets, as the module
    docstring says. False when there is nothing to send and its connection must be aborted (the cancellation goes
    on): it had ended already, or it is a JSON body under way."""
    started = progress.headers is not None
    if progress.done or (started and progress.fmt is None):
        return False
    log.warning("shutdown grace over: request cut (%s)", "stream ended" if started else "503")
    if started:
        await send({"type": "http.response.body", "body": progress.last_event(envelope), "more_body": False})
    else:
        await send_error(send, CUT, envelope)
    return True
