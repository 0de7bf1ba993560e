"""GET /v1/models, /openai/models and /{prefix}/models/{id}: the models this gateway accepts for the calling key, in
OpenAI's list and object shapes, so `client.models.list()` shows what will work, or in Anthropic's when the request
carries `anthropic-version` (the anthropic SDKs, Claude Code's gateway model discovery). Answered here, from the
route table's model lists (plus PROXY_EXTRA_MODELS, less what the key's allowlist leaves out); no upstream needed."""

from __future__ import annotations

import re
from collections.abc import Iterable

import orjson

from app.access.auth import KeyStore
from app.context import RequestInfo, request_info
from app.errors import NotFound, ProxyError, send_error
from app.proxy.catalog import ModelCatalog
from app.proxy.headers import header
from app.proxy.table import RouteSpec
from app.settings import Settings
from app.types import Receive, Scope, Send

PREFIXES = ("/v1", "/openai")
OWNER = "acedata"
DATED = re.compile(r"-(\d{4})(\d{2})(\d{2})$")  # Claude ids end in their release date: claude-...-20250929


def model_object(model: str) -> dict[str, object]:
    return {"id": model, "object": "model", "created": 0, "owned_by": OWNER}


def anthropic_model(model: str) -> dict[str, object]:
    """Anthropic's model object; `created_at` from the id's release date when it has one."""
    dated = DATED.search(model)
    created = "-".join(dated.groups()) if dated else "1970-01-01"
    return {"type": "model", "id": model, "display_name": model, "created_at": created + "T00:00:00Z"}


def anthropic_list(models: Iterable[dict[str, object]]) -> dict[str, object]:
    data = list(models)
    first, last = (data[0]["id"], data[-1]["id"]) if data else (None, None)
    return {"data": data, "has_more": False, "first_id": first, "last_id": last}


def models_by_prefix(routes: Iterable[RouteSpec], settings: Settings) -> dict[str, tuple[str, ...]]:
    """Each base URL's models: those of every route it serves, sorted."""
    routes = list(routes)
    listed: dict[str, tuple[str, ...]] = {}
    for prefix in PREFIXES:
        known: set[str] = set()
        for spec in routes:
            if spec.models and any(path.startswith(prefix + "/") for path in spec.paths):
                known |= ModelCatalog(spec.models, settings.extra_models).known
        listed[prefix] = tuple(sorted(known))
    return listed


class ModelsEndpoint:
    def __init__(self, routes: Iterable[RouteSpec], settings: Settings, keys: KeyStore | None):
        self.models = models_by_prefix(routes, settings)
        self.keys = keys

    def paths(self) -> list[str]:
        return [f"{prefix}/models{tail}" for prefix in PREFIXES for tail in ("", "/{id}")]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path: str = scope["path"]
        prefix = next(prefix for prefix in PREFIXES if path.startswith(prefix + "/"))
        info = request_info(scope)
        anthropic = header(scope["headers"], b"anthropic-version") is not None
        if anthropic:
            info.envelope = "anthropic"
        try:
            models = self._allowed(scope, info, self.models[prefix])
            payload = self._answer(path.removeprefix(prefix + "/models"), models, anthropic)
        except ProxyError as exc:
            await send_error(send, exc, info.envelope)
            return
        body = orjson.dumps(payload)
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _allowed(self, scope: Scope, info: RequestInfo, models: tuple[str, ...]) -> tuple[str, ...]:
        if self.keys is None:
            return models
        key = self.keys.authenticate(scope["headers"])
        info.key_name = key.name
        return tuple(model for model in models if key.allows(model))

    @staticmethod
    def _answer(tail: str, models: tuple[str, ...], anthropic: bool) -> dict[str, object]:
        shape = anthropic_model if anthropic else model_object
        if not tail:
            if anthropic:
                return anthropic_list(shape(model) for model in models)
            return {"object": "list", "data": [shape(model) for model in models]}
        model = tail.removeprefix("/")
        if model not in models:
            shown = model if len(model) <= 80 else model[:80] + "..."
            raise NotFound(f"The model '{shown}' does not exist or is not available to this key.", param="model")
        return shape(model)
