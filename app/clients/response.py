"""One response on an upstream HTTP/1.1 connection: its head, then its body chunk by chunk, as upstream.py reads it.
The connection's parser fills it (app/clients/connection.py); closing it tells the connection, which hands itself
back to its pool."""

from __future__ import annotations

import asyncio
from collections import deque
from typing import Protocol

from app.clients import UpstreamFailure
from app.clients.flow_control import FlowControl
from app.types import Headers


class Carrier(Protocol):
    """What a response needs of the connection carrying it (connection.py imports this module, not the reverse)."""

    loop: asyncio.AbstractEventLoop
    flow: FlowControl
    read_timeout: float

    def response_closed(self, response: Response) -> None: ...


class Response:
    """A fresh one per request, so nothing is reset by hand between two. `failure` is why it cannot complete, set
    by the connection and kept traceback-free: it is raised as a copy (see `_raisable`)."""

    __slots__ = (
        "_carrier", "_waiter", "chunks", "closed", "complete", "failure", "framed", "head_bytes", "head_done",
        "headers", "keep_alive", "status",
    )  # fmt: skip

    def __init__(self, carrier: Carrier):
        self.status = 0
        self.headers: Headers = []  # the final head's (a 1xx head's are dropped)
        self.head_done = False  # the final head is complete
        self.framed = False  # content-length or chunked: the end is known without the peer closing
        self.head_bytes = 0  # received while no head was complete (1xx heads included): bounded by MAX_HEAD
        self.chunks: deque[bytes] = deque()
        self.complete = False
        self.keep_alive = False  # decided when the answer completes
        self.failure: UpstreamFailure | None = None
        self.closed = False  # by its reader
        self._waiter: asyncio.Future[bool] | None = None  # True: the silence limit passed
        self._carrier = carrier

    @property
    def buffered(self) -> int:
        """Body bytes received and not read yet."""
        return self._carrier.flow.buffered

    @property
    def answered(self) -> bool:
        """A byte of the answer arrived."""
        return self.head_done or self.head_bytes > 0

    def reusable(self) -> bool:
        """The answer ended cleanly and was read whole: its connection may carry another request."""
        return self.complete and self.keep_alive and not self.chunks

    async def started(self, silence: float) -> None:
        """Until the head arrived; UpstreamFailure when the connection failed first or stayed silent `silence` s."""
        while not self.head_done:
            if self.failure is not None:
                raise _raisable(self.failure)
            await self._wait(silence, "before the response began")

    # ------------------------------------------------------------------ UpstreamResponse

    async def read(self) -> bytes:
        while not self.chunks:
            if self.complete:
                return b""
            if self.failure is not None:
                raise _raisable(self.failure)
            await self._wait(self._carrier.read_timeout, "between body bytes")
        chunk = self.chunks.popleft()
        self._carrier.flow.consumed(len(chunk))
        return chunk

    def at_end(self) -> bool:
        return self.complete and not self.chunks

    async def aclose(self) -> None:
        if not self.closed:
            self.closed = True
            self._carrier.response_closed(self)

    # ------------------------------------------------------------------ news from the connection

    def wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(False)

    async def _wait(self, silence: float, what: str) -> None:
        """Until the connection has news for the reader, or `silence` seconds without any (UpstreamFailure)."""
        loop = self._carrier.loop
        waiter = self._waiter = loop.create_future()
        timer = loop.call_later(silence, _expire, waiter)
        try:
            expired = await waiter
        finally:
            timer.cancel()
            self._waiter = None
        if expired:  # raised here, not stored in the future: the two would keep each other (and these frames)
            message = f"the upstream sent nothing for {silence:g} s {what}"
            raise UpstreamFailure("timeout", message, timeout=True)


def _raisable(failure: UpstreamFailure) -> UpstreamFailure:
    """A copy of a stored failure, to raise: the stored one never gets a traceback, so the response that holds it
    never holds the frames it was raised through (the request body among them) in a cycle the collector alone
    would free."""
    return UpstreamFailure(failure.kind, failure.message, timeout=failure.timeout)


def _expire(waiter: asyncio.Future[bool]) -> None:
    if not waiter.done():
        waiter.set_result(True)
