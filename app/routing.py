"""Which endpoint a request goes to: forwarding routes by exact path (the hot path, no framework in the way),
everything else (health, metrics, docs, unknown paths) to the FastAPI app."""

from __future__ import annotations

from app.errors import MethodNotAllowed, send_error
from app.routes.forward import ForwardEndpoint
from app.types import ASGIApp, Receive, Scope, Send


class Dispatcher:
    def __init__(self, endpoints: list[ForwardEndpoint], fallback: ASGIApp):
        self.routes = {path: endpoint for endpoint in endpoints for path in endpoint.spec.paths}
        self.fallback = fallback

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            endpoint = self.routes.get(scope["path"])
            if endpoint is not None:
                if scope["method"] == "POST":
                    await endpoint(scope, receive, send)
                else:
                    await send_error(send, MethodNotAllowed("Use POST on this route.", headers={"allow": "POST"}))
                return
        await self.fallback(scope, receive, send)
