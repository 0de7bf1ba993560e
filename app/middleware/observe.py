"""Pure ASGI middleware around every request: the x-request-id, the in-flight gauge, what a request cut by the
end of the shutdown grace still gets (app/middleware/cutoff.py), and, when the request ends, its metrics and one
access log line (both read from the RequestInfo the endpoint filled in)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from app.context import SCOPE_KEY, RequestInfo, request_id_from
from app.errors import Envelope
from app.logs import AccessLog
from app.metrics import Metrics
from app.middleware.cutoff import Progress, answer_cut
from app.types import ASGIApp, Message, Receive, Scope, Send


class ObserveMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        metrics: Metrics,
        resolve: Callable[[str], tuple[str, Envelope]],
        access_log: AccessLog,
    ):
        self.app = app
        self.metrics = metrics
        self.access_log = access_log
        # a path's bounded label (its route's name, else "other", so clients cannot mint series) and the envelope
        # of its errors, resolved once here so every error path, the middleware's own included, reads them
        self.resolve = resolve

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        info = RequestInfo(request_id_from(scope["headers"]))
        info.route, info.envelope = self.resolve(scope["path"])
        scope[SCOPE_KEY] = info
        request_id = info.request_id.encode()
        progress = Progress()

        async def observed_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                info.status = message["status"]
                progress.headers = message["headers"] = [
                    *message.get("headers", ()),
                    *info.response_headers,
                    (b"x-request-id", request_id),
                ]
            else:
                body = message.get("body", b"")
                info.bytes_out += len(body)
                progress.sent(body, message.get("more_body", False))
            await send(message)

        self.metrics.entered(info.route)
        try:
            await self.app(scope, receive, observed_send)
        except asyncio.CancelledError:
            # uvicorn cancels only at the end of the shutdown grace; a client's disconnect is handled (and
            # uncancelled) by the endpoint before it gets here
            if not await answer_cut(progress, observed_send, info.envelope):
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
        finally:
            self._done(scope, info)  # the metrics' record() ends its in-flight count

    def _done(self, scope: Scope, info: RequestInfo) -> None:
        # 499 (nginx's "client closed request") when the client left before any status was sent
        status = info.status or (499 if info.client_disconnected else 500)
        seconds = time.perf_counter() - info.started
        self.metrics.record(info, status, seconds)
        if not self.access_log.enabled():
            return
        fields = {
            "method": scope["method"],
            "path": _printable(scope["path"]),
            "route": info.route,
            "model": _printable(info.model) if info.model is not None else None,
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
            "bytes": info.bytes_out,
            "request_id": info.request_id,
            "key": info.key_name,
        }
        if info.input_tokens is not None:
            fields["tokens_in"], fields["tokens_out"] = info.input_tokens, info.output_tokens
        if info.upstream_error is not None:
            fields["upstream_error"] = info.upstream_error
        if info.client_disconnected:
            fields["client_disconnected"] = True
        self.access_log.write(fields)


def _printable(text: str) -> str:
    """Escaped and capped: a client's %0a in a path or model must not forge log lines."""
    return repr(text[:200])[1:-1]
