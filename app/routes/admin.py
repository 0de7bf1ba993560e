"""GET /admin/usage: the usage ledger's report as JSON, and GET /admin: the dashboard, for keys marked
`admin = true` in the keys file.

Refused (403 admin_required) when no keys file is set, since then nobody can prove to be an admin, and for
keys without `admin = true`; a missing or unknown key gets 401 like everywhere else. The dashboard's page itself
(GET /admin without a key) holds no figure: only the form its script uses to send the key as a bearer header.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from app.access.auth import KeyStore
from app.access.keys import KeyEntry
from app.context import request_info
from app.dashboard import page
from app.dashboard.assets import asset_response
from app.errors import AdminRequired, InvalidRequest
from app.ledger import Ledger
from app.ledger.report import GROUPS, ReportError, build, group, since_hour
from app.openapi import KEYED, json_answer, refusal

router = APIRouter(tags=["admin"])

# the page runs only its own script and style, talks only to this gateway, and may not be framed
PAGE_HEADERS = {
    "content-security-policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'none'; frame-ancestors 'none'; base-uri 'none'",
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
}


def require_admin(request: Request, what: str) -> KeyEntry:
    keys: KeyStore | None = request.app.state.keys
    if keys is None:
        raise AdminRequired(f"{what} needs PROXY_KEYS_FILE with a key marked `admin = true`.")
    caller = keys.authenticate(request.headers.raw)
    request_info(request.scope).key_name = caller.name  # the access line names who asked
    if not caller.admin:
        raise AdminRequired(f"Key '{caller.name}' is not an admin key (`admin = true` in the keys file).")
    return caller


def _text(description: str) -> dict[str, str]:
    return {"type": "string", "description": description}


_COUNTS = {name: {"type": "integer"} for name in ("requests", "input_tokens", "output_tokens", "total_tokens")}
_LINE = {"type": "object", "required": list(_COUNTS), "properties": _COUNTS}
USAGE_REPORT = {
    "type": "object",
    "required": ["by", "rows", "total"],
    "properties": {"by": {"enum": list(GROUPS)}, "rows": {"type": "array", "items": _LINE}, "total": _LINE},
}
# the query is read by the route itself, which refuses a bad one with the gateway's 400, never FastAPI's 422
USAGE_QUERY = [
    {"name": "key", "in": "query", "required": False, "schema": _text("Only this key's usage.")},
    {"name": "since", "in": "query", "required": False, "schema": _text("A UTC date or ISO 8601 time.")},
    {"name": "by", "in": "query", "required": False, "schema": {"enum": list(GROUPS), "default": "day"}},
]


@router.get(
    "/admin/usage",
    operation_id="admin.usage",
    responses={
        200: json_answer("The report", USAGE_REPORT),
        400: refusal("A filter that cannot be used (`param` names it)."),
        401: refusal("No client key, or an unknown one."),
        403: refusal("No keys file, or a key without `admin = true`."),
    },
    openapi_extra={"parameters": USAGE_QUERY, "security": KEYED},
)
async def usage(request: Request) -> dict[str, Any]:
    require_admin(request, "GET /admin/usage")
    query = request.query_params
    key, since, by = query.get("key"), query.get("since"), query.get("by", "day")
    try:
        grouping, first_hour = group(by), since_hour(since)
    except ReportError as exc:
        raise InvalidRequest(str(exc), param=exc.param) from None
    ledger: Ledger = request.app.state.ledger
    report = build(await ledger.rows(key, first_hour), grouping, request.app.state.prices)
    return {"key": key, "since": since, **report}


@router.get("/admin", response_class=HTMLResponse, include_in_schema=False)
@router.get("/admin/", response_class=HTMLResponse, include_in_schema=False)
async def dashboard(request: Request) -> HTMLResponse:
    """The dashboard: its figures for an admin key sent as a bearer header; without a header, the key form."""
    if "authorization" not in request.headers:
        return HTMLResponse(page(None), headers=PAGE_HEADERS)
    require_admin(request, "GET /admin")
    return HTMLResponse(await request.app.state.dashboard.render(), headers=PAGE_HEADERS)


@router.get("/admin/assets/{name}", include_in_schema=False)
async def asset(name: str) -> Response:
    return asset_response(name)
