"""GET /v1/models, /openai/models and /{prefix}/models/{id}: the models this gateway accepts for the calling key, in
OpenAI's list and object shapes, so `client.models.list()` shows what will work. Answered here, from the route
table's model lists (plus PROXY_EXTRA_MODELS, less what the key's allowlist leaves out); no upstream needed."""

from __future__ import annotations

from collections.abc import Iterable

import orjson

from app.access.auth import KeyStore
from app.context import request_info
from app.errors import NotFound, ProxyError, send_error
from app.proxy.catalog import ModelCatalog
from app.proxy.headers import header
from app.proxy.table import RouteSpec
from app.settings import Settings
from app.types import Receive, Scope, Send

PREFIXES = ("/v1", "/openai")
OWNER = "acedata"


def model_object(model: str) -> dict[str, object]:
    return {"id": model, "object": "model", "created": 0, "owned_by": OWNER}


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
        try:
            models = self._allowed(scope, self.models[prefix])
            payload = self._answer(path.removeprefix(prefix + "/models"), models)
        except ProxyError as exc:
            await send_error(send, exc)
            return
        body = orjson.dumps(payload)
        headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _allowed(self, scope: Scope, models: tuple[str, ...]) -> tuple[str, ...]:
        if self.keys is None:
            return models
        key = self.keys.authenticate(header(scope["headers"], b"authorization"))
        request_info(scope).key_name = key.name
        return models if key.models is None else tuple(model for model in models if model in key.models)

    @staticmethod
    def _answer(tail: str, models: tuple[str, ...]) -> dict[str, object]:
        if not tail:
            return {"object": "list", "data": [model_object(model) for model in models]}
        model = tail.removeprefix("/")
        if model not in models:
            shown = model if len(model) <= 80 else model[:80] + "..."
            raise NotFound(f"The model '{shown}' does not exist or is not available to this key.", param="model")
        return model_object(model)
