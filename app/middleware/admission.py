"""Admission control (PROXY_MAX_INFLIGHT): past the limit of forwarded requests and streams one worker holds at
once, a new one is refused at once with 503 `overloaded` and `retry-after`, so a burst becomes fast refusals that
SDKs retry instead of a queue in which every request, held streams included, slows down or times out.

A request with a body counts only once its body is in: clients that send their bodies a byte a second must not
hold the slots (the serving layer times them out, app/serving/protocol.py), so an admin's request still gets in."""

from __future__ import annotations

from collections.abc import Iterable

from app.context import request_info
from app.errors import Overloaded, send_error
from app.types import ASGIApp, Message, Receive, Scope, Send

RETRY_AFTER = "1"  # seconds: long enough for a burst to drain, short enough that a retry lands soon after


class AdmissionMiddleware:
    """Counts the forwarding routes' requests from arrival to their last byte; everything else (health, metrics)
    passes uncounted, so a saturated worker still answers its probes and scrapes."""

    def __init__(self, app: ASGIApp, limit: int, routes: Iterable[str], bodied: Iterable[str] = ()):
        """`routes`: the names of the routes the limit counts (the forwarding ones), read from the request's
        `route`, which ObserveMiddleware (outside this one) has already resolved from the path. `bodied`: those
        among them whose endpoint reads a body before anything else can be refused; they count from its end."""
        self.app = app
        self.limit = limit
        self.routes = frozenset(routes)
        self.bodied = frozenset(bodied)
        self.inflight = 0
        self.message = f"This gateway worker is serving its limit of {limit} requests and streams; retry shortly."
        self.refusal = Overloaded(self.message, headers={"retry-after": RETRY_AFTER})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        info = request_info(scope)
        if info.route not in self.routes:
            await self.app(scope, receive, send)
            return
        if info.route in self.bodied:
            await self._after_body(scope, receive, send)
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

    async def _after_body(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Counted from the body's last part on: past the limit, the endpoint's read of the body raises
        Overloaded, which it answers as it answers every refusal before forwarding."""
        counted = False

        async def receive_counted() -> Message:
            nonlocal counted
            message = await receive()
            if not counted and message["type"] == "http.request" and not message.get("more_body", False):
                if self.inflight >= self.limit:
                    request_info(scope).overloaded = True
                    raise Overloaded(self.message, headers={"retry-after": RETRY_AFTER})
                counted = True
                self.inflight += 1
            return message

        try:
            await self.app(scope, receive_counted, send)
        finally:
            if counted:
                self.inflight -= 1
