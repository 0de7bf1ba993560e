"""GET (and HEAD) /healthz (the process serves) and /readyz (the upstream pool, Redis when configured and the usage
ledger's storage are usable; the answer also says where the ledger is kept)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

router = APIRouter(tags=["health"])


@router.head("/", include_in_schema=False)
async def root() -> Response:
    """The connectivity check Claude Code makes before its first request."""
    return Response(status_code=200)


@router.api_route("/healthz", methods=["GET", "HEAD"])
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.api_route("/readyz", methods=["GET", "HEAD"])
async def readyz(request: Request) -> JSONResponse:
    problems = await request.app.state.readiness()
    ledger = request.app.state.ledger.describe()
    if problems:
        return JSONResponse({"status": "not_ready", "problems": problems, "ledger": ledger}, status_code=503)
    return JSONResponse({"status": "ready", "ledger": ledger})
