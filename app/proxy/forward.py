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
from app.access.keys import KeyEntry
from app.access.ratelimit import RateLimiter, Ticket
from app.clients import UpstreamFailure, UpstreamResponse
from app.context import WATCH_KEY, DisconnectWatch, RequestInfo, request_info
from app.errors import (
    InvalidRequest,
    ModelNotAllowed,
    ProxyError,
    RateLimited,
    RequestTooLarge,
    UpstreamUnavailable,
    send_error,
)
from app.ledger import Ledger, Owner
from app.proxy.background import Background, IdTap
from app.proxy.catalog import ModelCatalog
from app.proxy.headers import FORWARDED_REQUEST_HEADERS, header, request_headers, response_headers, unrelayable
from app.proxy.multipart import read_form
from app.proxy.schemas import RequestBody, parse_body, validate
from app.proxy.streams import StreamFormat, is_json, media_type, stream_format
from app.proxy.table import RouteSpec
from app.proxy.upstream import StreamBroken, StreamFailed, Upstream, relay, translate
from app.proxy.usage import TextMeter, UsageTap, charge
from app.settings import Settings
from app.types import Body, Receive, Scope, Send

log = logging.getLogger("acedata_proxy.forward")

NO_RETRY = {"x-should-retry": "false"}  # the SDKs' hint (OpenAI's and Anthropic's): a retry cannot succeed


class ClientGone(Exception):
    """The client disconnected before the request body was complete."""


class _Watch:
    """Cancels the request's task when the client disconnects, until the final byte is handed over: a task that
    waits on receive(), for servers that put no DisconnectWatch in the scope (app/context.py)."""

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

    def finish(self) -> None:
        self.finished = True


Watch = DisconnectWatch | _Watch  # the server's, or the endpoint's own task


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


def _path_model(scope: Scope, spec: RouteSpec) -> str | None:
    """The model of a `models/{model}:action` path, when it is one plain segment (letters, digits, `-`, `.`, `_`:
    nothing that could move the upstream path, even with PROXY_ALLOW_ANY_MODEL); InvalidRequest if not."""
    if not spec.path_model:
        return None
    path: str = scope["path"]
    model = path.rpartition("/")[2].rpartition(":")[0]
    if not (model.isascii() and model.replace("-", "").replace(".", "").replace("_", "").isalnum()) or model[0] == ".":
        raise InvalidRequest(f"Invalid model in the path: '{model[:80]}'.", param="model")
    return model


def _is_json(content_type: bytes | None) -> bool:
    if content_type is None:
        return True
    return is_json(media_type(content_type))


EARLY_CHECK_FROM = 64 * 1024  # body bytes from which the key's limits are checked before the body is read


def _large(scope: Scope) -> bool:
    """A body announced over EARLY_CHECK_FROM, or of unknown length (chunked)."""
    length = header(scope["headers"], b"content-length")
    return length is None or not length.isdigit() or int(length) >= EARLY_CHECK_FROM


async def read_body(scope: Scope, receive: Receive, limit: int) -> Body:
    """The whole request body, refusing (413) as soon as it is known to be over `limit`. A body in several chunks
    grows one buffer in place (a large one is remapped, not copied): a 25 MB upload is held once, not twice."""
    length = header(scope["headers"], b"content-length")
    if length is not None and length.isdigit() and int(length) > limit:
        raise RequestTooLarge(f"Request body is over this route's limit of {limit} bytes.")
    body: Body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientGone
        chunk = message.get("body", b"")
        if len(body) + len(chunk) > limit:
            raise RequestTooLarge(f"Request body is over this route's limit of {limit} bytes.")
        if not body:
            body = chunk
        else:
            if not isinstance(body, bytearray):
                body = bytearray(body)
            body += chunk
        if not message.get("more_body", False):
            return body  # a bytearray passes for bytes everywhere the body goes (orjson, the socket)


class _Exchange:
    """One admitted request on its way: what goes upstream, what it holds, and its background response's state."""

    __slots__ = ("body", "creates", "owner", "response_id", "target", "ticket")

    def __init__(self, body: Body, target: bytes):
        self.body = body
        self.target = target
        self.ticket = Ticket()
        self.creates = False  # a background response's creation: its answer's id is remembered
        self.response_id: str | None = None  # a retrieval: the response it reads, and who created it
        self.owner: Owner | None = None


class Readers:
    """Everything that reads an answer in passing, fed each chunk after it is sent on. The text is measured only
    until the answer's usage is known: the charging rule reads the text of answers without usage alone."""

    __slots__ = ("ids", "text", "usage")

    def __init__(self, usage: UsageTap | None, text: TextMeter | None, ids: IdTap | None):
        self.usage = usage
        self.text = text
        self.ids = ids

    def feed(self, chunk: bytes) -> None:
        usage = self.usage
        if usage is not None:
            usage.feed(chunk)
        if self.text is not None and (usage is None or usage.input_tokens is None):
            self.text.feed(chunk)
        if self.ids is not None:
            self.ids.feed(chunk)


class ForwardEndpoint:
    """One route of the table (app/proxy/table.py): everything that differs between routes comes from `spec`."""

    def __init__(
        self,
        spec: RouteSpec,
        settings: Settings,
        upstream: Upstream,
        keys: KeyStore | None,
        limiter: RateLimiter,
        ledger: Ledger,
    ):
        self.spec = spec
        self.settings = settings
        self.upstream = upstream
        self.keys = keys
        self.limiter = limiter
        self.ledger = ledger
        patterns = settings.anthropic_models if spec.anthropic_models else ()
        self.catalog = ModelCatalog(spec.models, settings.extra_models, settings.allow_any_model, patterns)
        self.path = spec.upstream_path.encode()
        self.forwarded = FORWARDED_REQUEST_HEADERS | spec.headers
        self.background = Background(ledger, limiter, keys) if spec.background is not None else None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        info = request_info(scope)
        try:
            exchange = await self._admit(scope, receive, info)
        except ProxyError as exc:
            info.rate_limited = isinstance(exc, RateLimited)
            await send_error(send, exc, info.envelope)
            return
        except ClientGone:
            info.client_disconnected = True
            return
        try:
            await self._forward(scope, receive, send, exchange, info)
        finally:
            info.charged = charge(info)  # the one rule, read by the limits, the ledger and the metrics alike
            if exchange.ticket.holds():  # most requests hold nothing: no coroutine made to settle nothing
                await self.limiter.settle(exchange.ticket, info)
            self.ledger.record(info)

    async def _admit(self, scope: Scope, receive: Receive, info: RequestInfo) -> _Exchange:
        """The request body and upstream target once they have passed every check, and the key's admission (the
        last check, so that nothing refused after it holds a reservation); nothing is forwarded before this."""
        self.upstream.require_ready()  # raises while no token is set, or the pool is not open
        key = None
        if self.keys is not None:
            key = self.keys.authenticate(scope["headers"])
            info.key_name = key.name
        body: Body = b""
        parsed, size = None, 0
        if self.spec.schema is not None:
            if _large(scope):  # a refused key costs no large read or parse; a small one costs less than a check
                await self.limiter.refuse_early(key)
            body = await read_body(scope, receive, self.spec.max_body or self.settings.max_request_bytes)
            parsed, size = self._parse(self.spec.schema, scope, body, info)
        exchange = _Exchange(body, self._target(scope))
        if key is not None and parsed is not None and not key.allows(parsed.model):
            raise ModelNotAllowed(
                f"Key '{key.name}' may not use model '{parsed.model}'.", param="model", headers=NO_RETRY
            )
        await self._background(scope, key, parsed, exchange)
        info.estimate = self.spec.estimate(size, parsed, self.settings.tpm_output_reservation)
        if key is not None:
            exchange.ticket = await self.limiter.admit(key, info, metered=self.spec.metered)
        return exchange

    async def _background(
        self, scope: Scope, key: KeyEntry | None, parsed: RequestBody | None, exchange: _Exchange
    ) -> None:
        """A background response's creation is watched for its id; its retrieval is checked for its owner."""
        if self.background is None:
            return
        if self.spec.background == "create":
            exchange.creates = parsed is not None and getattr(parsed, "background", None) is True
        else:
            exchange.response_id = scope["path"].rpartition("/")[2]
            exchange.owner = await self.background.owner(key, exchange.response_id)

    def _parse(self, schema: type[RequestBody], scope: Scope, body: Body, info: RequestInfo) -> tuple[RequestBody, int]:
        """The checked body, and its size as the estimate counts it (a form's text fields, not its files)."""
        content_type = header(scope["headers"], b"content-type")
        if self.spec.body_kind == "multipart":
            document, size = read_form(content_type, body)
            parsed = validate(schema, document, self.catalog)
        elif not _is_json(content_type):
            raise InvalidRequest("Content-Type must be application/json.")
        else:
            parsed, size = parse_body(schema, body, self.catalog, _path_model(scope, self.spec)), len(body)
        info.model, info.model_label = parsed.model, self.catalog.label(parsed.model)
        return parsed, size

    def _target(self, scope: Scope) -> bytes:
        """The upstream path (and query) for this request: fixed by the route; only a checked path parameter and
        the route's own query parameters come from the client."""
        if not self.spec.query and not self.spec.parameterized and not self.spec.path_model:
            return self.path  # a query string here is not the route's: it never goes upstream
        target = self.spec.upstream_path
        if self.spec.path_model:
            target = target.replace("{model}", _path_model(scope, self.spec) or "")
        elif self.spec.parameterized:
            parameter = scope["path"].rpartition("/")[2]  # checked by the dispatcher against PATH_PARAMETER
            target = target.replace("{id}", parameter)
        return (target + _query(scope.get("query_string", b""), self.spec.query)).encode()

    async def _forward(
        self, scope: Scope, receive: Receive, send: Send, exchange: _Exchange, info: RequestInfo
    ) -> None:
        loop = self.upstream.loop  # known, not asked for: asyncio asks the OS for its pid on every lookup
        task: asyncio.Task[None] = asyncio.current_task(loop)  # type: ignore[assignment]
        watch: Watch | None = scope.get(WATCH_KEY)
        watcher = None
        if isinstance(watch, DisconnectWatch):
            watch.arm(task)
        else:
            watch = _Watch()
            watcher = loop.create_task(watch.run(receive, task))
        try:
            await self._exchange(scope, send, exchange, info, watch)
        except asyncio.CancelledError:
            if not watch.disconnected:
                raise
            task.uncancel()
            info.client_disconnected = True
            log.info("client disconnected; upstream request closed")
        finally:
            watch.finish()
            if watcher is not None:
                watcher.cancel()

    async def _exchange(self, scope: Scope, send: Send, exchange: _Exchange, info: RequestInfo, watch: Watch) -> None:
        headers = request_headers(scope["headers"], self.upstream.require_ready(), info.request_id, self.forwarded)
        sent_at = time.perf_counter()
        try:
            response = await self.upstream.client.request(self.spec.method, exchange.target, headers, exchange.body)
        except UpstreamFailure as exc:
            info.upstream_error = exc.kind
            log.warning("upstream request failed before the response: %s", exc.message)
            await send_error(send, translate(exc), info.envelope)
            return
        info.upstream_ttfb = time.perf_counter() - sent_at
        try:
            await self._relay(response, send, exchange, info, watch)
        finally:
            await response.aclose()

    async def _relay(
        self,
        response: UpstreamResponse,
        send: Send,
        exchange: _Exchange,
        info: RequestInfo,
        watch: Watch,
    ) -> None:
        if (problem := unrelayable(response.status, response.headers)) is not None:
            info.upstream_error = "protocol"
            log.warning("upstream answer refused: %s", problem)
            await send_error(send, UpstreamUnavailable(problem[0].upper() + problem[1:] + "."), info.envelope)
            return
        fmt = stream_format(header(response.headers, b"content-type") or b"")
        start = {"type": "http.response.start", "status": response.status}
        await send({**start, "headers": response_headers(response.headers, fmt, response.status)})
        readers = self._readers(response.status, fmt, exchange, info)
        try:
            last = await relay(response, send, fmt, readers, info.envelope)
        except StreamFailed as exc:
            info.upstream_error, last = exc.kind, exc.event
        except StreamBroken as exc:
            info.upstream_error = str(exc)
            raise
        finally:
            if readers is not None and readers.usage is not None:
                info.input_tokens, info.output_tokens = readers.usage.input_tokens, readers.usage.output_tokens
                info.units = readers.usage.units
        await self._settle_background(exchange, readers, info)
        watch.finish()
        await send({"type": "http.response.body", "body": last, "more_body": False})

    def _readers(self, status: int, fmt: StreamFormat, exchange: _Exchange, info: RequestInfo) -> Readers | None:
        """What reads the answer in passing: its usage, its generated text, a background response's id. An error
        status is read for nothing (it is charged nothing)."""
        if status >= 400:
            info.upstream_error = "status"
            return None
        keys = self.spec.text_keys(fmt is not None)
        info.text = TextMeter(keys) if keys else None
        usage = UsageTap(self.spec.usage) if self.spec.usage is not None else None
        ids = IdTap() if exchange.creates else None
        return Readers(usage, info.text, ids) if usage or info.text or ids else None

    async def _settle_background(self, exchange: _Exchange, readers: Readers | None, info: RequestInfo) -> None:
        """Before the answer's last bytes: a created background response is remembered (its creator may retrieve
        it as soon as it has the id); a retrieved one is charged to its creator, the first time it is complete."""
        if self.background is None or readers is None or info.upstream_error is not None:
            return
        if readers.ids is not None and readers.ids.id is not None:
            await self.background.created(info, readers.ids.id)
        elif exchange.response_id is not None:
            await self.background.retrieved(info, exchange.owner, exchange.response_id)
