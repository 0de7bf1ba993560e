"""The ASGI endpoint every forwarding route shares: read the body, validate it, forward it, relay the answer.

Plain ASGI rather than a FastAPI handler: the hot path pays for no request object, no dependency graph and no
per-chunk wrapper, and it can watch for the client leaving while the upstream is still thinking.
"""

from __future__ import annotations

import asyncio
import logging
import time
from urllib.parse import parse_qsl, urlencode

from app.access.auth import KeyStore
from app.access.ratelimit import RateLimiter, Ticket
from app.clients import UpstreamFailure, UpstreamResponse
from app.context import RequestInfo, request_info
from app.errors import (
    InvalidRequest,
    ModelNotAllowed,
    ProxyError,
    RateLimited,
    RequestTooLarge,
    UpstreamUnavailable,
    send_error,
)
from app.ledger import Ledger
from app.proxy.catalog import ModelCatalog
from app.proxy.headers import header, request_headers, response_headers, unrelayable
from app.proxy.schemas import RequestBody, parse_body
from app.proxy.streams import stream_format
from app.proxy.table import RouteSpec
from app.proxy.upstream import StreamBroken, StreamFailed, UpstreamPool, relay, translate
from app.proxy.usage import UsageTap
from app.settings import Settings
from app.types import Receive, Scope, Send

log = logging.getLogger("acedata_proxy.forward")


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


def _query(raw: bytes, allowed: frozenset[str]) -> str:
    """The client's query string, re-encoded, when it names only the route's parameters; InvalidRequest if not."""
    if not raw:
        return ""
    try:
        pairs = parse_qsl(raw.decode("ascii"), keep_blank_values=True, strict_parsing=True)
    except (UnicodeDecodeError, ValueError):
        raise InvalidRequest("The query string is not valid.") from None
    for name, _ in pairs:
        if name not in allowed:
            raise InvalidRequest(f"Unknown query parameter '{name[:40]}' for this route.", param=name[:40])
    return "?" + urlencode(pairs)


def _is_json(content_type: bytes | None) -> bool:
    if content_type is None:
        return True
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or media.endswith(b"+json")


EARLY_CHECK_FROM = 64 * 1024  # body bytes from which the key's limits are checked before the body is read


def _large(scope: Scope) -> bool:
    """A body announced over EARLY_CHECK_FROM, or of unknown length (chunked)."""
    length = header(scope["headers"], b"content-length")
    return length is None or not length.isdigit() or int(length) >= EARLY_CHECK_FROM


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The whole request body, refusing (413) as soon as it is known to be over `limit`."""
    length = header(scope["headers"], b"content-length")
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
    """One route of the table (app/proxy/table.py): everything that differs between routes comes from `spec`."""

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
            body, target, ticket = await self._admit(scope, receive, info)
        except ProxyError as exc:
            info.rate_limited = isinstance(exc, RateLimited)
            await send_error(send, exc)
            return
        except ClientGone:
            info.client_disconnected = True
            return
        try:
            await self._forward(scope, receive, send, target, body, info)
        finally:
            await self.limiter.settle(ticket, info)
            self.ledger.record(info, ticket.estimate)

    async def _admit(self, scope: Scope, receive: Receive, info: RequestInfo) -> tuple[bytes, bytes, Ticket]:
        """The request body and upstream target once they have passed every check, and the key's admission (the
        last check, so that nothing refused after it holds a reservation); nothing is forwarded before this."""
        self.pool.authorization  # noqa: B018 - raises while no token is set, or the pool is not open
        key = None
        if self.keys is not None:
            key = self.keys.authenticate(header(scope["headers"], b"authorization"))
            info.key_name = key.name
        body, parsed = b"", None
        if self.spec.schema is not None:
            if _large(scope):  # a refused key costs no large read or parse; a small one costs less than a check
                await self.limiter.refuse_early(key)
            body = await read_body(scope, receive, self.settings.max_request_bytes)
            parsed = self._parse(self.spec.schema, scope, body, info)
        target = self._target(scope)
        if key is not None and parsed is not None and key.models is not None and parsed.model not in key.models:
            raise ModelNotAllowed(f"Key '{key.name}' may not use model '{parsed.model}'.", param="model")
        estimate = self.spec.estimate(body, parsed, self.settings.tpm_output_reservation)
        return body, target, await self.limiter.admit(key, estimate, info)

    def _parse(self, schema: type[RequestBody], scope: Scope, body: bytes, info: RequestInfo) -> RequestBody:
        if not _is_json(header(scope["headers"], b"content-type")):
            raise InvalidRequest("Content-Type must be application/json.")
        parsed = parse_body(schema, body, self.catalog)
        info.model, info.model_label = parsed.model, self.catalog.label(parsed.model)
        return parsed

    def _target(self, scope: Scope) -> bytes:
        """The upstream path (and query) for this request: fixed by the route; only a checked path parameter and
        the route's own query parameters come from the client."""
        if not self.spec.parameterized:
            return self.path
        parameter = scope["path"].rpartition("/")[2]  # checked by the dispatcher against PATH_PARAMETER
        target = self.spec.upstream_path.replace("{id}", parameter)
        return (target + _query(scope.get("query_string", b""), self.spec.query)).encode()

    async def _forward(
        self, scope: Scope, receive: Receive, send: Send, target: bytes, body: bytes, info: RequestInfo
    ) -> None:
        loop = self.pool.loop  # known, not asked for: asyncio asks the OS for its pid on every lookup
        task: asyncio.Task[None] = asyncio.current_task(loop)  # type: ignore[assignment]
        watch = _Watch()
        watcher = loop.create_task(watch.run(receive, task))
        try:
            await self._exchange(scope, send, target, body, info, watch)
        except asyncio.CancelledError:
            if not watch.disconnected:
                raise
            task.uncancel()
            info.client_disconnected = True
            log.info("client disconnected; upstream request closed")
        finally:
            watch.finished = True
            watcher.cancel()

    async def _exchange(
        self, scope: Scope, send: Send, target: bytes, body: bytes, info: RequestInfo, watch: _Watch
    ) -> None:
        headers = request_headers(scope["headers"], self.pool.authorization, info.request_id)
        sent_at = time.perf_counter()
        try:
            response = await self.pool.client.request(self.spec.method, target, headers, body)
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
        if (problem := unrelayable(response.status, response.headers)) is not None:
            info.upstream_error = "protocol"
            log.warning("upstream answer refused: %s", problem)
            await send_error(send, UpstreamUnavailable(problem[0].upper() + problem[1:] + "."))
            return
        fmt = stream_format(header(response.headers, b"content-type") or b"")
        start = {"type": "http.response.start", "status": response.status}
        await send({**start, "headers": response_headers(response.headers, fmt, response.status)})
        usage = self.spec.usage
        tap = UsageTap(usage) if usage is not None and response.status < 400 else None
        if response.status >= 400:
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
