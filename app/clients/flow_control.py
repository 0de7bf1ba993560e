"""Backpressure on one upstream connection, as uvicorn's `protocols/http/flow_control.py` keeps it for its own:
reading stops while the gateway's reader is far behind, so TCP tells the upstream to wait, and resumes once the
reader has caught up. Nothing is ever dropped; only the pace changes."""

from __future__ import annotations

import asyncio

HIGH_WATER = 256 * 1024  # body bytes buffered from the upstream before the gateway stops reading from it
LOW_WATER = 64 * 1024


class FlowControl:
    """Counts the body bytes received and not yet read, and pauses or resumes the transport at the marks.
    `transport` is None before the connection is made and after it is aborted (the transport and the protocol
    refer to each other: holding it past the abort would keep its unsent buffer alive)."""

    __slots__ = ("buffered", "paused", "transport")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffered = 0
        self.paused = False

    def received(self, size: int) -> None:
        self.buffered += size
        if self.buffered > HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True  # a slow client: stop reading, let TCP tell the upstream to wait
            self.transport.pause_reading()

    def consumed(self, size: int) -> None:
        self.buffered -= size
        if self.paused and self.buffered <= LOW_WATER and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()
