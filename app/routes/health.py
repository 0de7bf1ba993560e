"""GET (and HEAD) /healthz (the process serves) and /readyz (the upstream pool, Redis when configured and the usage
ledger's storage are usable; the answer also says where the ledger is kept)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from app.openapi import json_answer

router = APIRouter(tags=["health"])
STATUS: dict[str, Any] = {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}}


@router.head("/", include_in_schema=False)
async def root() -> Response:
    """The connectivity check Claude Code makes before its first request."""
    return Response(status_code=200)


@router.get("/healthz", operation_id="healthz", responses={200: json_answer("The process serves", STATUS)})
@router.head("/healthz", include_in_schema=False)
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    operation_id="readyz",
    responses={200: json_answer("Ready", STATUS), 503: json_answer("Not ready; `problems` says why", STATUS)},
)
@router.head("/readyz", include_in_schema=False)
async def readyz(request: Request) -> JSONResponse:
    problems = await request.app.state.readiness()
    ledger = request.app.state.ledger.describe()
    if problems:
        return JSONResponse({"status": "not_ready", "problems": problems, "ledger": ledger}, status_code=503)
    return JSONResponse({"status": "ready", "ledger": ledger})
