"""The gateway's one error tree and the one function that renders it as the OpenAI error envelope.

ProxyError
├── InvalidRequest          400 invalid_request        (`param` names the field)
├── NotFound                404 not_found
├── MethodNotAllowed        405 method_not_allowed
├── RequestTimeout          408 request_timeout        (a request head or body that does not arrive in time)
├── RequestTooLarge         413 request_too_large
├── HeadTooLarge            431 request_header_fields_too_large
├── InvalidApiKey           401 invalid_api_key
├── ModelNotAllowed         403 model_not_allowed
├── AdminRequired           403 admin_required         (/admin/*: no keys file, or a key without admin = true)
├── CrossSiteRefused        403 cross_site_request     (no keys file: a browser's cross-site or rebound request)
├── RateLimited             429 rate_limit_exceeded   (`retry-after`)
│   └── BudgetExceeded      429 budget_exceeded       (`retry-after` until the budget's period ends)
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


class InvalidRequest(ProxyError):
    status, code, type = 400, "invalid_request", "invalid_request_error"


class InvalidApiKey(ProxyError):
    status, code, type = 401, "invalid_api_key", "authentication_error"


class ModelNotAllowed(ProxyError):
    status, code, type = 403, "model_not_allowed", "permission_error"


class AdminRequired(ProxyError):
    status, code, type = 403, "admin_required", "permission_error"


class CrossSiteRefused(ProxyError):
    status, code, type = 403, "cross_site_request", "permission_error"


class NotFound(ProxyError):
    status, code, type = 404, "not_found", "invalid_request_error"


class MethodNotAllowed(ProxyError):
    status, code, type = 405, "method_not_allowed", "invalid_request_error"


class RequestTooLarge(ProxyError):
    status, code, type = 413, "request_too_large", "invalid_request_error"


class RequestTimeout(ProxyError):
    status, code, type = 408, "request_timeout", "invalid_request_error"


class HeadTooLarge(ProxyError):
    status, code, type = 431, "request_header_fields_too_large", "invalid_request_error"


class RateLimited(ProxyError):
    status, code, type = 429, "rate_limit_exceeded", "rate_limit_error"


class BudgetExceeded(RateLimited):
    status, code, type = 429, "budget_exceeded", "insufficient_quota"  # OpenAI's type for a spent quota


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
        return render(from_http_exception(exc, request))
    return render(ProxyError("Internal gateway error; see the gateway log for this request id."))
