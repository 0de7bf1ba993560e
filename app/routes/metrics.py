"""GET (and HEAD) /metrics: Prometheus text format (merged across workers when there are several). With
PROXY_METRICS_PORT it is served there instead (app/serving/exporter.py); otherwise, with a keys file, only to admin
keys: the metrics name every key, which clients should not learn."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response

from app.access.auth import KeyStore
from app.context import request_info
from app.errors import AdminRequired, NotFound
from app.metrics import CONTENT_TYPE_LATEST

router = APIRouter(tags=["metrics"])


@router.get(
    "/metrics",
    operation_id="metrics",
    response_class=PlainTextResponse,  # for the document: the exposition's own content type is sent
    responses={200: {"description": "Prometheus text format"}},
)
@router.head("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    if request.app.state.metrics_port is not None:
        raise NotFound("Metrics are served on PROXY_METRICS_PORT, not on this port.")
    keys: KeyStore | None = request.app.state.keys
    if keys is not None:
        caller = keys.authenticate(request.headers.raw)
        request_info(request.scope).key_name = caller.name
        if not caller.admin:
            raise AdminRequired(
                f"Key '{caller.name}' is not an admin key: /metrics names every key, so it needs `admin = true` "
                "(or PROXY_METRICS_PORT, a listener of its own for the scraper)."
            )
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE_LATEST)
