"""Pure ASGI middleware around every request: the x-request-id, and one access log line when it ends."""

from __future__ import annotations

import logging
import time

from app.context import SCOPE_KEY, RequestInfo, request_id_from
from app.types import ASGIApp, Message, Receive, Scope, Send

access_log = logging.getLogger("acedata_proxy.access")


class ObserveMiddleware:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        info = RequestInfo(request_id_from(scope["headers"]))
        scope[SCOPE_KEY] = info
        request_id = info.request_id.encode()

        async def observed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                info.status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id)]
            else:
                info.bytes_out += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            self._log(scope, info)

    @staticmethod
    def _log(scope: Scope, info: RequestInfo) -> None:
        if not access_log.isEnabledFor(logging.INFO):
            return
        fields = {
            "method": scope["method"],
            "path": repr(scope["path"][:200])[1:-1],  # escaped: a client's %0a must not forge log lines
            "route": info.route,
            "model": info.model,
            "status": info.status or (499 if info.client_disconnected else 500),
            "duration_ms": round((time.perf_counter() - info.started) * 1000, 2),
            "bytes": info.bytes_out,
            "request_id": info.request_id,
            "key": info.key_name,
        }
        if info.client_disconnected:
            fields["client_disconnected"] = True
        access_log.info("request", extra={"fields": fields})
