"""The exception handler of the routes FastAPI serves (health, metrics, admin, docs, unknown paths): every error
they raise leaves in the error envelope of the route the request is on (app/errors.py renders each envelope)."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from app.context import request_info
from app.errors import InvalidRequest, MethodNotAllowed, NotFound, ProxyError, render


def from_http_exception(exc: HTTPException, request: Request) -> ProxyError:
    """Starlette's routing errors (unknown path, wrong method) in our tree."""
    if exc.status_code == 404:
        served = ", ".join(getattr(request.app.state, "served", ()))
        asked = f"{request.method} {request.url.path[:200]}"
        return NotFound(f"Unknown route: {asked}. This gateway serves: {served}.")
    if exc.status_code == 405:
        return MethodNotAllowed("Method not allowed on this route.", headers=dict(exc.headers or {}))
    if 400 <= exc.status_code < 500:
        return InvalidRequest(str(exc.detail))
    return ProxyError(str(exc.detail))


async def handle(request: Request, exc: Exception) -> Response:
    """The single exception handler: every error the gateway produces leaves through here."""
    envelope = request_info(request.scope).envelope
    if isinstance(exc, ProxyError):
        return render(exc, envelope)
    if isinstance(exc, HTTPException):
        return render(from_http_exception(exc, request), envelope)
    return render(ProxyError("Internal gateway error; see the gateway log for this request id."), envelope)
