"""GET /admin/usage: the usage ledger's report as JSON, for keys marked `admin = true` in the keys file.

Refused (403 admin_required) when no keys file is set, since then nobody can prove to be an admin, and for
keys without `admin = true`; a missing or unknown key gets 401 like everywhere else.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request

from app.access.auth import KeyStore
from app.context import request_info
from app.errors import AdminRequired, InvalidRequest
from app.ledger import Ledger
from app.ledger.report import ReportError, build, group, since_hour

router = APIRouter(tags=["admin"])


@router.get("/admin/usage")
async def usage(request: Request, key: str | None = None, since: str | None = None, by: str = "day") -> dict[str, Any]:
    keys: KeyStore | None = request.app.state.keys
    if keys is None:
        raise AdminRequired("GET /admin/usage needs PROXY_KEYS_FILE with a key marked `admin = true`.")
    caller = keys.authenticate(request.headers.raw)
    request_info(request.scope).key_name = caller.name  # the access line names who asked
    if not caller.admin:
        raise AdminRequired(f"Key '{caller.name}' is not an admin key (`admin = true` in the keys file).")
    try:
        grouping, first_hour = group(by), since_hour(since)
    except ReportError as exc:
        raise InvalidRequest(str(exc), param=exc.param) from None
    ledger: Ledger = request.app.state.ledger
    report = build(await ledger.rows(key, first_hour), grouping)
    return {"key": key, "since": since, **report}
