"""GET /healthz (the process serves) and GET /readyz (the upstream pool, and Redis when configured, are usable)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

router = APIRouter(tags=["health"])


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    problems = await request.app.state.readiness()
    if problems:
        return JSONResponse({"status": "not_ready", "problems": problems}, status_code=503)
    return JSONResponse({"status": "ready"})
