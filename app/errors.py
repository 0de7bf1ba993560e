"""The gateway's one error tree, and one function per envelope that renders it: OpenAI's (every route but the
Anthropic Messages ones) and Anthropic's. Which envelope a request gets is its route's, resolved once when the
request arrives (RequestInfo.envelope), so errors raised before the endpoint runs use it too.

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

from typing import Any, ClassVar, Literal

import orjson
from starlette.responses import Response
from starlette.types import Send

Envelope = Literal["openai", "anthropic", "google"]

# Anthropic's error types by status (its API's errors page); a status not listed is an `api_error`
ANTHROPIC_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "invalid_request_error",
    429: "rate_limit_error",
    503: "overloaded_error",
}

# Google's canonical status names by HTTP status (google.rpc.Code, as the Gemini API answers them); a status not
# listed is INTERNAL
GOOGLE_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    405: "INVALID_ARGUMENT",
    408: "DEADLINE_EXCEEDED",
    413: "INVALID_ARGUMENT",
    429: "RESOURCE_EXHAUSTED",
    431: "INVALID_ARGUMENT",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


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

    def anthropic_envelope(self) -> dict[str, Any]:
        kind = ANTHROPIC_TYPES.get(self.status, "api_error")
        return {"type": "error", "error": {"type": kind, "message": self.message}}

    def google_envelope(self) -> dict[str, Any]:
        status = GOOGLE_STATUSES.get(self.status, "INTERNAL")
        return {"error": {"code": self.status, "message": self.message, "status": status}}

    def body(self, envelope: Envelope = "openai") -> bytes:
        if envelope == "anthropic":
            return orjson.dumps(self.anthropic_envelope())
        return orjson.dumps(self.google_envelope() if envelope == "google" else self.envelope())


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


async def send_error(send: Send, error: ProxyError, envelope: Envelope) -> None:
    """Render an error straight onto an ASGI connection (the forwarding endpoints' path), in the request's
    envelope (RequestInfo.envelope)."""
    headers = [(b"content-type", b"application/json")]
    headers += [(k.lower().encode(), v.encode()) for k, v in error.headers.items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": error.body(envelope)})


def render(error: ProxyError, envelope: Envelope = "openai") -> Response:
    return Response(error.body(envelope), error.status, error.headers, media_type="application/json")
