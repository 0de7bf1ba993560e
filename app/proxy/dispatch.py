"""Which endpoint a request goes to. The route table's paths (forwarded) and the models routes (answered here) are
looked up by exact path, by prefix and one checked path parameter, or (Gemini's `models/{model}:action`) by prefix
and action around the model: dictionary lookups, no framework in the way and no pattern matched per request.
Everything else (health, metrics, docs, unknown paths) goes to the FastAPI app."""

from __future__ import annotations

from collections.abc import Awaitable, Iterable

from app.errors import Envelope, MethodNotAllowed, send_error
from app.proxy.table import PATH_PARAMETER
from app.types import ASGIApp, Receive, Scope, Send


class Route:
    """A path (or a prefix and a path parameter) with an endpoint per method, its metrics label and the envelope
    of its errors."""

    __slots__ = ("endpoints", "envelope", "name")

    def __init__(self, name: str, envelope: Envelope, endpoints: dict[str, ASGIApp]):
        self.name = name
        self.envelope = envelope
        self.endpoints = endpoints


class Dispatcher:
    def __init__(
        self,
        routes: Iterable[tuple[str, str, str, Envelope, ASGIApp]],
        fallback: ASGIApp,
        labels: dict[str, str],
    ):
        """`routes`: (path, method, label, envelope, endpoint); a path ending in "{id}" takes one path parameter,
        and one with "{model}:" a model between its prefix and its action (the endpoint checks the model).
        `labels`: the metrics label of the fallback's own paths."""
        self.exact: dict[str, Route] = {}
        self.prefixed: dict[str, Route] = {}
        self.actions: dict[tuple[str, str], Route] = {}  # (prefix, ":action")
        # unknown paths under a route of another envelope get that envelope (a 404 under /v1/messages/...)
        self.families: list[tuple[str, Envelope]] = []
        for path, method, name, envelope, endpoint in routes:
            if "{model}:" in path:
                prefix, _, action = path.partition("{model}")
                self.actions.setdefault((prefix, action), Route(name, envelope, {})).endpoints[method] = endpoint
                continue
            table, key = (self.prefixed, path[:-4]) if path.endswith("{id}") else (self.exact, path)
            table.setdefault(key, Route(name, envelope, {})).endpoints[method] = endpoint
            if envelope != "openai":
                self.families.append((path.removesuffix("{id}").rstrip("/") + "/", envelope))
        for (prefix, _), route in self.actions.items():  # a prefix the OpenAI models route shares stays OpenAI's
            if route.envelope != "openai" and prefix not in self.prefixed:
                self.families.append((prefix, route.envelope))
        self.fallback = fallback
        self.labels = labels

    def route(self, path: str) -> Route | None:
        route = self.exact.get(path)
        if route is None:
            prefix, _, parameter = path.rpartition("/")
            model, colon, action = parameter.rpartition(":")
            if colon and model and (route := self.actions.get((prefix + "/", ":" + action))) is not None:
                return route
            route = self.prefixed.get(prefix + "/")
            if route is not None and not PATH_PARAMETER.fullmatch(parameter):
                return None
        return route

    def resolve(self, path: str) -> tuple[str, Envelope]:
        """A path's bounded `route` label (its route's name, else `other`: clients cannot mint series) and the
        envelope of the errors it gets."""
        route = self.route(path)
        if route is not None:
            return route.name, route.envelope
        envelope: Envelope = next((kind for prefix, kind in self.families if path.startswith(prefix)), "openai")
        return self.labels.get(path, "other"), envelope

    def served(self) -> list[str]:
        """Every "METHOD /path" this dispatcher serves itself, for the unknown-route message and the docs."""
        served = [
            f"{method} {path}{'{id}' if table is self.prefixed else ''}"
            for table in (self.exact, self.prefixed)
            for path, route in table.items()
            for method in route.endpoints
        ]
        return served + [
            f"{method} {prefix}{{model}}{action}"
            for (prefix, action), route in self.actions.items()
            for method in route.endpoints
        ]

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # not a coroutine: the endpoint's own is awaited in its place, so every suspension of the request (each
        # walks the whole await chain) has one frame fewer to walk
        if scope["type"] == "http":
            route = self.route(scope["path"])
            if route is not None:
                endpoint = route.endpoints.get(scope["method"])
                if endpoint is not None:
                    return endpoint(scope, receive, send)
                allowed = ", ".join(route.endpoints)
                error = MethodNotAllowed(f"Use {allowed} on {scope['path'][:200]}.", headers={"allow": allowed})
                return send_error(send, error, route.envelope)
        return self.fallback(scope, receive, send)
