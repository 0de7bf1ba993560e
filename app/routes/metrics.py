"""GET (and HEAD) /metrics: Prometheus text format (merged across workers when there are several)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from app.metrics import CONTENT_TYPE_LATEST

router = APIRouter(tags=["metrics"])


@router.api_route("/metrics", methods=["GET", "HEAD"])
async def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
