"""Admission control (PROXY_MAX_INFLIGHT): past the limit of forwarded requests and streams one worker holds at
once, a new one is refused at once with 503 `overloaded` and `retry-after`, so a burst becomes fast refusals that
SDKs retry instead of a queue in which every request, held streams included, slows down or times out."""

from __future__ import annotations

from collections.abc import Callable

from app.context import request_info
from app.errors import Overloaded, send_error
from app.types import ASGIApp, Receive, Scope, Send

RETRY_AFTER = "1"  # seconds: long enough for a burst to drain, short enough that a retry lands soon after


class AdmissionMiddleware:
    """Counts the forwarding routes' requests from arrival to their last byte; everything else (health, metrics)
    passes uncounted, so a saturated worker still answers its probes and scrapes."""

    def __init__(self, app: ASGIApp, limit: int, counts: Callable[[str], bool]):
        """`counts(path)`: whether a request on `path` is one the limit counts (the forwarding routes')."""
        self.app = app
        self.limit = limit
        self.counts = counts
        self.inflight = 0
        self.refusal = Overloaded(
            f"This gateway worker is serving its limit of {limit} requests and streams; retry shortly.",
            headers={"retry-after": RETRY_AFTER},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.counts(scope["path"]):
            await self.app(scope, receive, send)
            return
        if self.inflight >= self.limit:
            request_info(scope).overloaded = True
            await send_error(send, self.refusal)
            return
        self.inflight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.inflight -= 1
