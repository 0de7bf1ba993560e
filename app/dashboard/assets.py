"""The dashboard's script and stylesheet, served from the package (nothing from a CDN), read once."""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi.responses import Response

from app.errors import NotFound

TYPES = {"dashboard.js": "text/javascript; charset=utf-8", "dashboard.css": "text/css; charset=utf-8"}


@cache
def _read(name: str) -> bytes:
    return resources.files("app.dashboard").joinpath("static", name).read_bytes()


def asset_response(name: str) -> Response:
    if name not in TYPES:
        raise NotFound(f"No dashboard asset named '{name[:80]}'.")
    headers = {"cache-control": "no-cache", "x-content-type-options": "nosniff"}
    return Response(_read(name), media_type=TYPES[name], headers=headers)
