"""The OpenAPI document served at /openapi.json (and rendered at /docs).

The forwarding routes are plain ASGI endpoints that FastAPI cannot see, so the document is built here: each
route of the table (app/proxy/table.py) with its request body from app/proxy/schemas.py, `model` limited to the models
it accepts (app/proxy/catalog.py plus PROXY_EXTRA_MODELS), and every answer the gateway can give, its own errors
included. The service routes (app/routes/) are documented by FastAPI from their routers, which use
`json_answer` and `refusal` from here; this module adds what every answer has (x-request-id).
Upstream bodies pass through unchanged, so their schemas name only the fields clients rely on.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from app import __version__
from app.proxy.catalog import ModelCatalog
from app.proxy.streams import MEDIA_TYPES
from app.proxy.table import PATH_PARAMETER, RouteSpec
from app.settings import Settings

JSON = MEDIA_TYPES["json"]
FORM = "multipart/form-data"
BINARY = {"type": "string", "format": "binary"}
PATH_SCHEMA = {"type": "string", "pattern": "^" + PATH_PARAMETER.pattern + "$"}

# "Authorize" in /docs takes a client key; a gateway without a keys file ignores it
SECURITY_SCHEMES = {
    "clientKey": {
        "type": "http",
        "scheme": "bearer",
        "description": "A client key from the gateway's keys file (sk-...), as the OpenAI SDKs send their api_key.",
    }
}
KEYED: list[dict[str, list[str]]] = [{"clientKey": []}]
OPTIONAL: list[dict[str, list[str]]] = [{}, {"clientKey": []}]  # a gateway without a keys file takes no key


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


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
    "AnthropicError": {
        "description": "An error the gateway itself produces on the Anthropic Messages routes (Anthropic's shape).",
        "type": "object",
        "required": ["type", "error"],
        "properties": {
            "type": {"const": "error"},
            "error": {
                "type": "object",
                "required": ["type", "message"],
                "properties": {"type": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
    "GoogleError": {
        "description": "An error the gateway itself produces on the Gemini routes (the Gemini API's shape).",
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "status"],
                "properties": {
                    "code": {"type": "integer"},
                    "message": {"type": "string"},
                    "status": {"type": "string"},
                },
            }
        },
    },
    "Message": {
        "description": "An Anthropic Messages answer, as the upstream sent it.",
        "type": "object",
        "required": ["id", "type", "content"],
        "properties": {"id": {"type": "string"}, "type": {"const": "message"}, "content": {"type": "array"}},
    },
    "MessageTokensCount": {
        "description": "The input tokens a Messages request would use, as the upstream counted them.",
        "type": "object",
        "required": ["input_tokens"],
        "properties": {"input_tokens": {"type": "integer"}},
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
    "ChatCompletion": {
        "description": "An OpenAI chat completion, as the upstream sent it.",
        "type": "object",
        "required": ["id", "object", "choices"],
        "properties": {"id": {"type": "string"}, "object": {"const": "chat.completion"}, "choices": {"type": "array"}},
    },
    "EmbeddingList": {
        "description": "OpenAI embeddings, as the upstream sent them.",
        "type": "object",
        "required": ["object", "data"],
        "properties": {"object": {"const": "list"}, "data": {"type": "array"}, "usage": {"type": "object"}},
    },
    "ImagesResponse": {
        "description": "Generated images (URLs or base64), as the upstream sent them.",
        "type": "object",
        "required": ["data"],
        "properties": {"created": {"type": "integer"}, "data": {"type": "array"}},
    },
    "GenerateContentResponse": {
        "description": "Gemini's answer (`candidates`, `usageMetadata`), as the upstream sent it; without "
        "`alt=sse`, streamGenerateContent answers a JSON array of them.",
        "type": ["object", "array"],
        "properties": {"candidates": {"type": "array"}, "usageMetadata": {"type": "object"}},
    },
    "Transcription": {
        "description": "The transcribed text (and usage), as the upstream sent it.",
        "type": "object",
        "required": ["text"],
        "properties": {"text": {"type": "string"}, "usage": {"type": "object"}},
    },
    "Model": {
        "description": "A model this gateway accepts for the calling key.",
        "type": "object",
        "required": ["id", "object", "created", "owned_by"],
        "properties": {
            "id": {"type": "string"},
            "object": {"const": "model"},
            "created": {"type": "integer"},
            "owned_by": {"type": "string"},
        },
    },
    "ModelList": {
        "description": "The models this gateway accepts for the calling key.",
        "type": "object",
        "required": ["object", "data"],
        "properties": {
            "object": {"const": "list"},
            "data": {"type": "array", "items": {"$ref": "#/components/schemas/Model"}},
        },
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

FORMAT_SCHEMAS = {
    "sse": SSE_EVENT,
    "ndjson": {"type": "string", "description": "One JSON object per line, relayed as the upstream sends them."},
    "audio": {**BINARY, "description": "Audio bytes (the content type follows `response_format`), as they arrive."},
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
    assert spec.schema is not None
    schema = spec.schema.model_json_schema()
    catalog = ModelCatalog(spec.models, settings.extra_models, settings.allow_any_model)
    model: dict[str, Any] = {"type": "string", "description": "A model this route accepts."}
    if not settings.allow_any_model:
        model["enum"] = sorted(catalog.known)
    if spec.anthropic_models and settings.anthropic_models and not settings.allow_any_model:
        patterns = ", ".join(settings.anthropic_models)
        model["description"] = f"A listed Claude model, or any id matching {patterns} (PROXY_ANTHROPIC_MODELS)."
        model = {"anyOf": [model, {"type": "string", "pattern": _glob_pattern(settings.anthropic_models)}]}
    schema["properties"]["model"] = model
    if spec.path_model:  # in the path, not the body
        del schema["properties"]["model"]
        schema["required"] = [name for name in schema.get("required", ()) if name != "model"]
    if spec.body_kind == "multipart":
        _as_form(schema, getattr(spec.schema, "files", ()))
    return schema


def _glob_pattern(globs: Iterable[str]) -> str:
    """Glob patterns (fnmatch's `*` and `?`) as one JSON Schema (ECMA-262) pattern."""
    alternatives = (re.escape(glob).replace(r"\-", "-").replace(r"\*", ".*").replace(r"\?", ".") for glob in globs)
    return "^(" + "|".join(alternatives) + ")$"


def _as_form(schema: dict[str, Any], files: tuple[str, ...]) -> None:
    """A form's schema: file parts are binary (the check sees their sizes), and a field is sent or left out,
    never null (a form has no null: `null` would be the text "null")."""
    for field in schema["properties"].values():
        branches = [branch for branch in field.get("anyOf", ()) if branch.get("type") != "null"]
        if len(branches) == 1:
            field.pop("anyOf")
            field.pop("default", None)
            field.update(branches[0])
    for name in files:  # the list's bounds stay the schema's (one transcription file, up to 16 images)
        schema["properties"][name]["items"] = BINARY


def _parameters(spec: RouteSpec) -> list[dict[str, Any]]:
    parameters: list[dict[str, Any]] = []
    if spec.path_model:
        model = {"type": "string", "enum": sorted(spec.models)}
        parameters.append({"name": "model", "in": "path", "required": True, "schema": model})
    if spec.parameterized:
        parameters.append({"name": "id", "in": "path", "required": True, "schema": PATH_SCHEMA})
    parameters += [
        {"name": name, "in": "query", "required": False, "schema": {"type": "string"}} for name in sorted(spec.query)
    ]
    if "ndjson" in spec.formats:  # a route that can answer NDJSON chooses its format by the accept header
        # any other value goes upstream as sent
        examples = {kind: {"value": MEDIA_TYPES[kind]} for kind in spec.formats}
        parameters.append(
            {"name": "accept", "in": "header", "required": False, "schema": {"type": "string"}, "examples": examples}
        )
    return parameters


def _body_names(routes: list[RouteSpec]) -> dict[str, str]:
    """Each route's request-body component: its schema's name, made unique by the route's name where routes
    share a schema with different model lists (the two chat routes)."""
    schemas = [spec.schema for spec in routes if spec.schema is not None]
    return {
        spec.name: spec.schema.__name__ + ("" if schemas.count(spec.schema) == 1 else "." + spec.name)
        for spec in routes
        if spec.schema is not None
    }


def _forward_operation(spec: RouteSpec, path: str, security: list[dict[str, list[str]]], body: str) -> dict[str, Any]:
    content = {
        MEDIA_TYPES[kind]: {"schema": _ref(spec.answer) if kind == "json" else FORMAT_SCHEMAS[kind]}
        for kind in spec.formats
    }
    ok = {
        "description": "The upstream's answer: JSON, or a stream that ends with an error event if it breaks.",
        "headers": {"x-request-id": REQUEST_ID},
        "content": content,
    }
    own = {"anthropic": "AnthropicError", "google": "GoogleError"}.get(spec.envelope, "Error")
    responses = {"200": ok} | {
        status: _json_response(text, [own if name == "Error" else name for name in names])
        for status, (text, names) in _FORWARD_ERRORS.items()
    }
    operation: dict[str, Any] = {
        "operationId": spec.name + ("" if path == spec.paths[0] else "." + path.strip("/").split("/")[0]),
        "summary": spec.summary,
        "description": f"Forwarded to the upstream's `{spec.method} {spec.upstream_path}`.",
        "parameters": _parameters(spec),
        "responses": responses,
        "security": security,
    }
    if spec.schema is not None:
        media: dict[str, Any] = {"schema": _ref(body)}
        if spec.example is not None:
            media["examples"] = {"works": {"summary": "A request that works", "value": spec.example}}
        kind = FORM if spec.body_kind == "multipart" else JSON
        operation["requestBody"] = {"required": True, "content": {kind: media}}
    return {spec.method.lower(): operation}


def _models_paths(paths: list[str], security: list[dict[str, list[str]]]) -> dict[str, Any]:
    refused = {"401": _json_response("Missing or unknown client key.", ["Error"])}
    found: dict[str, Any] = {}
    for path in paths:
        single = path.endswith("{id}")
        answer = _json_response(
            "The model." if single else "The models the calling key may use.", ["Model" if single else "ModelList"]
        )
        responses = {"200": answer, **refused}
        operation: dict[str, Any] = {
            "operationId": "models" + path.replace("/", ".").replace("{id}", "retrieve"),
            "responses": responses,
            "security": security,
        }
        if single:
            responses["404"] = _json_response("Not a model this gateway accepts for the key.", ["Error"])
            operation["parameters"] = [{"name": "id", "in": "path", "required": True, "schema": PATH_SCHEMA}]
        found[path] = {"get": operation}
    return found


def json_answer(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    """A service route's JSON answer, for its router's `responses`."""
    return {"description": description, "content": {JSON: {"schema": schema}}}


def refusal(description: str) -> dict[str, Any]:
    """A service route's refusal in the gateway's error envelope, for its router's `responses`."""
    return json_answer(description, _ref("Error"))


def _with_request_id(paths: dict[str, Any]) -> dict[str, Any]:
    """Every answer carries x-request-id (the observe middleware sets it): said once here, not in each router."""
    for operations in paths.values():
        for operation in operations.values():
            for response in operation["responses"].values():
                response["headers"] = {"x-request-id": REQUEST_ID}
    return paths


def document(
    routes: Iterable[RouteSpec], models_paths: list[str], settings: Settings, service_paths: dict[str, Any]
) -> dict[str, Any]:
    """The whole document: the forwarding routes and the models routes from the table, and `service_paths`, the
    service routes as FastAPI documents them from their routers."""
    routes = list(routes)
    security = KEYED if settings.keys_file is not None else OPTIONAL
    bodies = _body_names(routes)
    paths = {
        path: _forward_operation(spec, path, security, bodies.get(spec.name, ""))
        for spec in routes
        for path in spec.paths
    }
    schemas = SCHEMAS | {bodies[spec.name]: _request_schema(spec, settings) for spec in routes if spec.schema}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "acedata-proxy",
            "version": __version__,
            "description": "An OpenAI-compatible gateway for the AceData Cloud API.",
        },
        "paths": paths | _models_paths(models_paths, security) | _with_request_id(service_paths),
        "components": {"schemas": schemas, "securitySchemes": SECURITY_SCHEMES},
    }
