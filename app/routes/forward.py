"""The ASGI endpoint every forwarding route shares: read the body, validate it, forward it, relay the answer.

Plain ASGI rather than a FastAPI handler: the hot path pays for no request object, no dependency graph and no
per-chunk wrapper, and it can watch for the client leaving while the upstream is still thinking.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass

from app.auth import KeyStore
from app.clients import UpstreamFailure, UpstreamResponse
from app.context import RequestInfo, request_info
from app.errors import (
    InvalidRequest,
    ModelNotAllowed,
    ProxyError,
    RateLimited,
    RequestTooLarge,
    UpstreamNotConfigured,
    send_error,
)
from app.ledger import Ledger
from app.models import ModelCatalog
from app.ratelimit import RateLimiter, Ticket
from app.schemas import RequestBody, parse_body
from app.settings import Settings
from app.types import Receive, Scope, Send
from app.upstream import (
    StreamBroken,
    StreamFailed,
    UpstreamPool,
    relay,
    request_headers,
    response_headers,
    stream_format,
    translate,
)
from app.usage import UsageTap

log = logging.getLogger("acedata_proxy.forward")


@dataclass(frozen=True)
class RouteSpec:
    """One upstream route as clients see it: its paths, its body schema and its documented models."""

    name: str
    paths: tuple[str, ...]
    upstream_path: str
    schema: type[RequestBody]
    models: frozenset[str]


class ClientGone(Exception):
    """The client disconnected before the request body was complete."""


class _Watch:
    """Cancels the request's task when the client disconnects, until the final byte is handed over."""

    __slots__ = ("disconnected", "finished")

    def __init__(self) -> None:
        self.disconnected = False
        self.finished = False

    async def run(self, receive: Receive, task: asyncio.Task[None]) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        if not self.finished:
            self.disconnected = True
            task.cancel()


def _is_json(content_type: bytes | None) -> bool:
    if content_type is None:
        return True
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or media.endswith(b"+json")


def _header(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The first value of header `name` (lower-case), from a client's scope or an upstream's answer alike."""
    for key, value in headers:
        if key == name:
            return value
    return None


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body, refusing (413) as soon as it is known to be over `limit`."""
    length = _header(scope["headers"], b"content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise RequestTooLarge(f"Request body is over the gateway's limit of {limit} bytes.")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(f"Request body is over the gateway's limit of {limit} bytes.")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


class ForwardEndpoint:
    def __init__(
        self,
        spec: RouteSpec,
        settings: Settings,
        pool: UpstreamPool,
        keys: KeyStore | None,
        limiter: RateLimiter,
        ledger: Ledger,
    ):
        self.spec = spec
        self.settings = settings
        self.pool = pool
        self.keys = keys
        self.limiter = limiter
        self.ledger = ledger
        self.catalog = ModelCatalog(spec.models, settings.extra_models, settings.allow_any_model)
        self.path = spec.upstream_path.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        info = request_info(scope)
        try:
            body, ticket = await self._admit(scope, receive, info)
        except ProxyError as exc:
            info.rate_limited = isinstance(exc, RateLimited)
            await send_error(send, exc)
            return
        except ClientGone:
            info.client_disconnected = True
            return
        try:
            await self._forward(scope, receive, send, body, info)
        finally:
            await self.limiter.settle(ticket, info)
            self.ledger.record(info, ticket.estimate)

    async def _admit(self, scope: Scope, receive: Receive, info: RequestInfo) -> tuple[bytes, Ticket]:
        """The request body once it has passed every check; nothing is forwarded before this returns."""
        if self.settings.token is None:
            raise UpstreamNotConfigured("The gateway has no upstream token: set ACEDATACLOUD_API_TOKEN and restart it.")
        self.pool.client  # noqa: B018 - raises NotReady while the lifespan has not opened the pool
        key = None
        if self.keys is not None:
            key = self.keys.authenticate(_header(scope["headers"], b"authorization"))
            info.key_name = key.name
        body = await read_body(scope, receive, self.settings.max_request_bytes)
        if not _is_json(_header(scope["headers"], b"content-type")):
            raise InvalidRequest("Content-Type must be application/json.")
        parsed = parse_body(self.spec.schema, body, self.catalog)
        info.model, info.model_label = parsed.model, self.catalog.label(parsed.model)
        if key is not None and key.models is not None and parsed.model not in key.models:
            raise ModelNotAllowed(f"Key '{key.name}' may not use model '{parsed.model}'.", param="model")
        return body, await self.limiter.admit(key, body, parsed, info)

    async def _forward(self, scope: Scope, receive: Receive, send: Send, body: bytes, info: RequestInfo) -> None:
        loop = self.pool.loop  # known, not asked for: asyncio asks the OS for its pid on every lookup
        task: asyncio.Task[None] = asyncio.current_task(loop)  # type: ignore[assignment]
        watch = _Watch()
        watcher = loop.create_task(watch.run(receive, task))
        try:
            await self._exchange(scope, send, body, info, watch)
        except asyncio.CancelledError:
            if not watch.disconnected:
                raise
            task.uncancel()
            info.client_disconnected = True
            log.info("client disconnected; upstream request closed")
        finally:
            watch.finished = True
            watcher.cancel()

    async def _exchange(self, scope: Scope, send: Send, body: bytes, info: RequestInfo, watch: _Watch) -> None:
        headers = request_headers(scope["headers"], self.pool.token, info.request_id)
        sent_at = time.perf_counter()
        try:
            response = await self.pool.client.post(self.path, headers, body)
        except UpstreamFailure as exc:
            info.upstream_error = exc.kind
            log.warning("upstream request failed before the response: %s", exc.message)
            await send_error(send, translate(exc))
            return
        info.upstream_ttfb = time.perf_counter() - sent_at
        try:
            await self._relay(response, send, info, watch)
        finally:
            await response.aclose()

    async def _relay(self, response: UpstreamResponse, send: Send, info: RequestInfo, watch: _Watch) -> None:
        fmt = stream_format(_header(response.headers, b"content-type") or b"")
        start = {"type": "http.response.start", "status": response.status}
        await send({**start, "headers": response_headers(response.headers, fmt)})
        tap = UsageTap() if response.status < 400 else None
        if tap is None:
            info.upstream_error = "status"
        try:
            last = await relay(response, send, fmt, tap)
        except StreamFailed as exc:
            info.upstream_error, last = exc.kind, exc.event
        except StreamBroken as exc:
            info.upstream_error = str(exc)
            raise
        finally:
            if tap is not None:
                info.input_tokens, info.output_tokens = tap.input_tokens, tap.output_tokens
        watch.finished = True
        await send({"type": "http.response.body", "body": last, "more_body": False})
