"""The OpenAPI document served at /openapi.json (and rendered at /docs).

The forwarding routes are plain ASGI endpoints that FastAPI cannot see, so the document is built here: each
route's request body from its schema in app/schemas.py with `model` limited to the models it accepts
(app/models.py plus PROXY_EXTRA_MODELS), and every answer the gateway can give, its own errors included.
Upstream bodies pass through unchanged, so their schemas name only the fields clients rely on.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from app import __version__
from app.models import ModelCatalog
from app.routes.forward import RouteSpec
from app.settings import Settings

JSON, SSE, NDJSON = "application/json", "text/event-stream", "application/x-ndjson"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _string(description: str) -> dict[str, Any]:
    return {"type": "string", "description": description}


SCHEMAS: dict[str, Any] = {
    "Error": {
        "description": "An error the gateway itself produces (the OpenAI error envelope).",
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["message", "type", "code", "param"],
                "properties": {
                    "message": {"type": "string"},
                    "type": {"type": "string"},
                    "code": {"type": "string"},
                    "param": {"type": ["string", "null"]},
                },
            }
        },
    },
    "UpstreamError": {
        "description": "An error the upstream answered, passed through unchanged.",
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {"type": "object", "required": ["code", "message"]},
            "trace_id": {"type": "string"},
        },
    },
    "Response": {
        "description": "An OpenAI Responses object, as the upstream sent it.",
        "type": "object",
        "required": ["id", "object", "status"],
        "properties": {"id": {"type": "string"}, "object": {"const": "response"}, "status": {"type": "string"}},
    },
    "AichatAnswer": {
        "description": "An aichat answer, as the upstream sent it.",
        "type": "object",
        "required": ["answer"],
        "properties": {"answer": {"type": "string"}, "id": {"type": "string"}},
    },
}

# OpenAPI 3.1: for text/event-stream, `schema` describes one event (3.2's `itemSchema`)
SSE_EVENT = {
    "description": "One server-sent event, relayed as the upstream sent it; a stream the upstream breaks ends with "
    "`event: error` whose data is the error envelope.",
    "type": "object",
    "required": ["data"],
    "properties": {"event": {"type": "string"}, "data": {"type": "string"}, "id": {"type": "string"}},
}

REQUEST_ID = {
    "description": "The client's x-request-id when it is a sane token, else a fresh one; also sent upstream.",
    "required": True,
    "schema": {"type": "string", "pattern": r"^[A-Za-z0-9._:\-]{1,128}$"},
}

# What each status means on a forwarding route: the gateway's own error, the upstream's, or either.
_FORWARD_ERRORS = {
    "400": ("Invalid body (never forwarded), or the upstream refused it.", ["Error", "UpstreamError"]),
    "401": ("Missing or unknown client key, or the upstream refused the token.", ["Error", "UpstreamError"]),
    "403": ("The key may not use this model, or the upstream refused.", ["Error", "UpstreamError"]),
    "404": ("The upstream does not know this API.", ["UpstreamError"]),
    "413": ("Body over PROXY_MAX_REQUEST_BYTES (or the upstream's limit).", ["Error", "UpstreamError"]),
    "429": ("The key's RPM or TPM is spent (retry-after), or the upstream's limit.", ["Error", "UpstreamError"]),
    "500": ("The upstream failed.", ["UpstreamError"]),
    "502": ("The upstream refused, reset or answered garbage before the response began.", ["Error"]),
    "503": (
        "No upstream token, not ready, overloaded (PROXY_MAX_INFLIGHT, with retry-after), or the rate limiter is "
        "unreachable.",
        ["Error"],
    ),
    "504": ("The upstream was silent too long before the response began.", ["Error", "UpstreamError"]),
}


def _json_response(description: str, schemas: list[str]) -> dict[str, Any]:
    schema = _ref(schemas[0]) if len(schemas) == 1 else {"anyOf": [_ref(name) for name in schemas]}
    return {"description": description, "headers": {"x-request-id": REQUEST_ID}, "content": {JSON: {"schema": schema}}}


def _request_schema(spec: RouteSpec, settings: Settings) -> dict[str, Any]:
    schema = spec.schema.model_json_schema()
    catalog = ModelCatalog(spec.models, settings.extra_models, settings.allow_any_model)
    model: dict[str, Any] = {"type": "string", "description": "A model this route accepts."}
    if not settings.allow_any_model:
        model["enum"] = sorted(catalog.known)
    schema["properties"]["model"] = model
    return schema


def _forward_operation(spec: RouteSpec, path: str) -> dict[str, Any]:
    streams = {SSE: {"schema": SSE_EVENT}}
    parameters = []
    if spec.name == "aichat.conversations":
        streams[NDJSON] = {"schema": _string("One JSON object per line, relayed as the upstream sends them.")}
        # any value goes upstream as sent; these three choose the answer's format
        examples = {kind: {"value": media} for kind, media in (("json", JSON), ("ndjson", NDJSON), ("sse", SSE))}
        accept = {"name": "accept", "in": "header", "required": False, "schema": {"type": "string"}}
        parameters.append({**accept, "examples": examples})
    answer = "AichatAnswer" if spec.name == "aichat.conversations" else "Response"
    ok = {
        "description": "The upstream's answer: JSON, or a stream that ends with an error event if it breaks.",
        "headers": {"x-request-id": REQUEST_ID},
        "content": {JSON: {"schema": _ref(answer)}, **streams},
    }
    responses = {"200": ok} | {status: _json_response(*error) for status, error in _FORWARD_ERRORS.items()}
    return {
        "operationId": spec.name + ("" if path == spec.paths[0] else "." + path.strip("/").split("/")[0]),
        "summary": f"Forwarded to the upstream's {spec.upstream_path}",
        "parameters": parameters,
        "requestBody": {"required": True, "content": {JSON: {"schema": _ref(spec.schema.__name__)}}},
        "responses": responses,
    }


def _get(operation_id: str, responses: dict[str, Any]) -> dict[str, Any]:
    return {"get": {"operationId": operation_id, "responses": responses}}


def _service_paths() -> dict[str, Any]:
    status = {"type": "object", "required": ["status"], "properties": {"status": {"type": "string"}}}
    ready = {"description": "Ready", "headers": {"x-request-id": REQUEST_ID}, "content": {JSON: {"schema": status}}}
    not_ready = {**ready, "description": "Not ready; `problems` says why"}
    metrics = {"description": "Prometheus text format", "content": {"text/plain": {"schema": {"type": "string"}}}}
    return {
        "/healthz": _get("healthz", {"200": {**ready, "description": "The process serves"}}),
        "/readyz": _get("readyz", {"200": ready, "503": not_ready}),
        "/metrics": _get("metrics", {"200": {**metrics, "headers": {"x-request-id": REQUEST_ID}}}),
    }


def document(routes: Iterable[RouteSpec], settings: Settings) -> dict[str, Any]:
    routes = list(routes)
    paths = {path: {"post": _forward_operation(spec, path)} for spec in routes for path in spec.paths}
    schemas = SCHEMAS | {spec.schema.__name__: _request_schema(spec, settings) for spec in routes}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "acedata-proxy",
            "version": __version__,
            "description": "An OpenAI-compatible gateway for the AceData Cloud API.",
        },
        "paths": paths | _service_paths(),
        "components": {"schemas": schemas},
    }
