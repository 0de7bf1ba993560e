"""The gateway's one error tree and the one function that renders it as the OpenAI error envelope.

ProxyError
├── InvalidRequest          400 invalid_request        (`param` names the field)
├── NotFound                404 not_found
├── MethodNotAllowed        405 method_not_allowed
├── RequestTooLarge         413 request_too_large
├── InvalidApiKey           401 invalid_api_key
├── ModelNotAllowed         403 model_not_allowed
├── RateLimited             429 rate_limit_exceeded   (`retry-after`)
├── UpstreamUnavailable     502 upstream_unavailable
├── UpstreamNotConfigured   503 upstream_not_configured
├── NotReady                503 not_ready
├── Overloaded              503 overloaded            (`retry-after`; PROXY_MAX_INFLIGHT reached)
├── RateLimiterUnavailable  503 rate_limiter_unavailable (Redis unreachable, fail-closed)
└── UpstreamTimeout         504 upstream_timeout
"""

from __future__ import annotations

from typing import Any, ClassVar

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Send


class ProxyError(Exception):
    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal_error"
    type: ClassVar[str] = "api_error"

    def __init__(self, message: str, *, param: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.param = param
        self.headers = headers or {}

    def envelope(self) -> dict[str, Any]:
        return {"error": {"message": self.message, "type": self.type, "code": self.code, "param": self.param}}

    def body(self) -> bytes:
        return orjson.dumps(self.envelope())

    def stream_event(self, fmt: str) -> bytes:
        """The error as the last event of a stream whose status line is already sent (DESIGN.md)."""
        if fmt == "sse":
            return b"event: error\ndata: " + self.body() + b"\n\n"
        return self.body() + b"\n"


class InvalidRequest(ProxyError):
    status, code, type = 400, "invalid_request", "invalid_request_error"


class InvalidApiKey(ProxyError):
    status, code, type = 401, "invalid_api_key", "authentication_error"


class ModelNotAllowed(ProxyError):
    status, code, type = 403, "model_not_allowed", "permission_error"


class NotFound(ProxyError):
    status, code, type = 404, "not_found", "invalid_request_error"


class MethodNotAllowed(ProxyError):
    status, code, type = 405, "method_not_allowed", "invalid_request_error"


class RequestTooLarge(ProxyError):
    status, code, type = 413, "request_too_large", "invalid_request_error"


class RateLimited(ProxyError):
    status, code, type = 429, "rate_limit_exceeded", "rate_limit_error"


class UpstreamUnavailable(ProxyError):
    status, code, type = 502, "upstream_unavailable", "api_error"


class UpstreamNotConfigured(ProxyError):
    status, code, type = 503, "upstream_not_configured", "api_error"


class NotReady(ProxyError):
    status, code, type = 503, "not_ready", "api_error"


class Overloaded(ProxyError):
    status, code, type = 503, "overloaded", "api_error"


class RateLimiterUnavailable(ProxyError):
    status, code, type = 503, "rate_limiter_unavailable", "api_error"


class UpstreamTimeout(ProxyError):
    status, code, type = 504, "upstream_timeout", "api_error"


def from_http_exception(exc: HTTPException) -> ProxyError:
    """Starlette's routing errors (unknown path, wrong method) in our tree."""
    if exc.status_code == 404:
        return NotFound("Unknown route. See the README for the routes this gateway serves.")
    if exc.status_code == 405:
        return MethodNotAllowed("Method not allowed on this route.", headers=dict(exc.headers or {}))
    if 400 <= exc.status_code < 500:
        return InvalidRequest(str(exc.detail))
    return ProxyError(str(exc.detail))


async def send_error(send: Send, error: ProxyError) -> None:
    """Render an error straight onto an ASGI connection (the forwarding endpoints' path)."""
    headers = [(b"content-type", b"application/json")]
    headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": error.body()})


def render(error: ProxyError) -> Response:
    return Response(error.body(), error.status, error.headers, media_type="application/json")


async def handle(request: Request, exc: Exception) -> Response:
    """The single exception handler: every error the gateway produces leaves through here."""
    if isinstance(exc, ProxyError):
        return render(exc)
    if isinstance(exc, HTTPException):
        return render(from_http_exception(exc))
    return render(ProxyError("Internal gateway error; see the gateway log for this request id."))
