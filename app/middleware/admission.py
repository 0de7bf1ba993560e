"""Admission control (PROXY_MAX_INFLIGHT): past the limit of forwarded requests and streams one worker holds at
once, a new one is refused at once with 503 `overloaded` and `retry-after`, so a burst becomes fast refusals that
SDKs retry instead of a queue in which every request, held streams included, slows down or times out."""

from __future__ import annotations

from collections.abc import Iterable

from app.context import request_info
from app.errors import Overloaded, send_error
from app.types import ASGIApp, Receive, Scope, Send

RETRY_AFTER = "1"  # seconds: long enough for a burst to drain, short enough that a retry lands soon after


class AdmissionMiddleware:
    """Counts the forwarding routes' requests from arrival to their last byte; everything else (health, metrics)
    passes uncounted, so a saturated worker still answers its probes and scrapes."""

    def __init__(self, app: ASGIApp, limit: int, routes: Iterable[str]):
        """`routes`: the names of the routes the limit counts (the forwarding ones), read from the request's
        `route`, which ObserveMiddleware (outside this one) has already resolved from the path."""
        self.app = app
        self.limit = limit
        self.routes = frozenset(routes)
        self.inflight = 0
        self.refusal = Overloaded(
            f"This gateway worker is serving its limit of {limit} requests and streams; retry shortly.",
            headers={"retry-after": RETRY_AFTER},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        info = request_info(scope)
        if info.route not in self.routes:
            await self.app(scope, receive, send)
            return
        if self.inflight >= self.limit:
            info.overloaded = True
            await send_error(send, self.refusal, info.envelope)
            return
        self.inflight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.inflight -= 1
