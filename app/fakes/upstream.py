"""A faithful fake of the AceData upstream (see docs/wire-formats.md), for tests, the demo and benchmarks.

It checks the bearer token, records what it received and sent, paces streams, and misbehaves on demand through
`Behaviour` (error statuses, hangs, mid-stream cuts and stalls).
(`tests/helpers/raw_faults.py` breaks HTTP itself, which ASGI cannot.)
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from app.fakes import answers, gemini, media, messages
from app.fakes.exchange import Behaviour, Exchange, Sender
from app.proxy.table import ROUTES
from app.types import Receive, Scope, Send

__all__ = ["Behaviour", "Exchange", "FakeUpstream", "Sender"]  # the handlers' types, where the fake is


def _for_request(behaviour: Behaviour, request_id: str | None) -> Behaviour:
    """A fault for one request, named in its x-request-id (which the gateway forwards), so that concurrent load
    can mix faults: `fake-status-500-...` answers 500, `fake-cut-3-...` drops the connection after 3 chunks."""
    kind, _, rest = (request_id or "").removeprefix("fake-").partition("-")
    number = rest.split("-", 1)[0]
    if not (request_id or "").startswith("fake-") or not number.isdigit():
        return behaviour
    if kind == "status":
        return dataclasses.replace(behaviour, status=int(number))
    if kind == "cut":
        return dataclasses.replace(behaviour, cut_after=int(number))
    return behaviour


Handler = Callable[[dict[str, Any], "Exchange", "Sender"], Awaitable[None]]


class FakeUpstream:
    """The fake upstream as an ASGI app. Tests change `behaviour` and read `exchanges`; `open_requests` counts
    the requests it is serving now (a request the gateway abandoned but never closed would stay counted)."""

    def __init__(self, token: str = "upstream-test-token", behaviour: Behaviour | None = None):
        self.token = token
        self.behaviour = behaviour or Behaviour()
        self.exchanges: list[Exchange] = []
        self.record = True
        self.open_requests = 0
        self.stored: dict[str, dict[str, Any]] = {}  # background responses, by id, for retrieval
        self.routes = self._routes()

    def _routes(self) -> dict[tuple[str, str], Handler]:
        """Each upstream route of the gateway's table, served; the table cannot name a route the fake lacks."""
        handlers: dict[tuple[str, str], Handler] = {
            ("POST", "/aichat/conversations"): self._aichat,
            ("POST", "/openai/responses"): self._responses,
            ("GET", "/openai/responses/{id}"): self._retrieve,
            ("POST", "/openai/chat/completions"): self._chat,
            ("POST", "/v1/chat/completions"): self._chat,
            ("POST", "/openai/embeddings"): self._embeddings,
            ("POST", "/openai/images/generations"): self._images,
            ("POST", "/openai/images/edits"): media.image_edits,
            ("POST", "/openai/audio/speech"): media.speech,
            ("POST", "/openai/audio/transcriptions"): media.transcriptions,
            ("POST", "/v1beta/models/{model}:generateContent"): gemini.generate,
            ("POST", "/v1beta/models/{model}:streamGenerateContent"): gemini.stream,
            ("GET", "/openai/models"): self._models,
            ("POST", "/v1/messages"): self._messages,
            ("POST", "/v1/messages/count_tokens"): self._count_tokens,
        }
        served = {(spec.method, spec.upstream_path) for spec in ROUTES}
        missing = served - handlers.keys()
        if missing:
            raise RuntimeError(f"the fake upstream does not serve {sorted(missing)}")
        return handlers

    def reset(self) -> None:
        self.behaviour = Behaviour()
        self.exchanges.clear()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
            return
        self.open_requests += 1
        try:
            await self._exchange(scope, receive, send)
        finally:
            self.open_requests -= 1

    async def _exchange(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await _read(receive)
        exchange = Exchange(scope["method"], scope["path"], list(scope["headers"]), body)
        exchange.query = scope.get("query_string", b"")
        if self.record:
            self.exchanges.append(exchange)
        behaviour = _for_request(self.behaviour, exchange.header("x-request-id"))
        serving = asyncio.create_task(self._serve(scope, exchange, Sender(send, exchange, behaviour)))
        watcher = asyncio.create_task(_until_disconnect(receive))
        await asyncio.wait((serving, watcher), return_when=asyncio.FIRST_COMPLETED)
        if serving.done():
            watcher.cancel()
            exchange.finished = serving.exception() is None
            serving.result()  # a fault raised on purpose ends the connection uncleanly, as it should
            return
        exchange.closed_early = True  # the gateway closed the request before the answer was complete
        serving.cancel()

    async def _serve(self, scope: Scope, exchange: Exchange, out: Sender) -> None:
        behaviour = out.behaviour
        if behaviour.headers_delay:
            await asyncio.sleep(behaviour.headers_delay)
        if exchange.header("authorization") != f"Bearer {self.token}":
            await out.error(401, "The specified token is invalid or wrong.")
            return
        if behaviour.status is not None:
            await out.error(behaviour.status, "The fake upstream was told to fail.")
            return
        path = scope["path"]
        if path.startswith("/openai/responses/"):
            path, exchange.parameter = "/openai/responses/{id}", path.rsplit("/", 1)[1]
        elif path.startswith("/v1beta/models/"):
            exchange.parameter, _, action = path.rsplit("/", 1)[1].partition(":")
            path = "/v1beta/models/{model}:" + action
        route = self.routes.get((scope["method"], path))
        if route is None:
            await out.error(404, "The API does not exist.")
            return
        multipart = (exchange.header("content-type") or "").startswith("multipart/")
        try:
            request = orjson.loads(exchange.body) if exchange.body and not multipart else {}
        except orjson.JSONDecodeError:
            await out.error(400, "The request body is not JSON.")
            return
        await route(request, exchange, out)

    async def _responses(self, body: dict[str, Any], exchange: Exchange, out: Sender) -> None:
        pieces = answers.text_pieces(self.behaviour.deltas, self.behaviour.pad)
        if body.get("background"):
            final = answers.response(body, pieces)
            self.stored[final["id"]] = {"body": body, "response": final}
            await out.json(200, {**answers.response(body, pieces, status="queued"), "id": final["id"]})
            return
        if not body.get("stream"):
            await out.json(200, answers.response(body, pieces))
            return
        await self._stream_events(body, pieces, out)

    async def _stream_events(self, body: dict[str, Any], pieces: list[str], out: Sender) -> None:
        await out.start(200, b"text/event-stream; charset=utf-8")
        for event in answers.responses_events(body, pieces):
            data = orjson.dumps(event if self.behaviour.sse_style == "events" else {**event, "model": body["model"]})
            prefix = b"event: " + event["type"].encode() + b"\n" if self.behaviour.sse_style == "events" else b""
            await out.chunk(prefix + b"data: " + data + b"\n\n")
        if self.behaviour.done_marker:
            await out.chunk(b"data: [DONE]\n\n")
        await out.end()

    async def _retrieve(self, body: dict[str, Any], exchange: Exchange, out: Sender) -> None:
        stored = self.stored.get(exchange.parameter)
        if stored is None:
            await out.error(404, f"No response with id '{exchange.parameter}'.")
        elif b"stream=true" in exchange.query:
            await self._stream_events(stored["body"], answers.text_pieces(self.behaviour.deltas), out)
        else:
            await out.json(200, stored["response"])

    async def _chat(self, body: dict[str, Any], exchange: Exchange, out: Sender) -> None:
        pieces = answers.text_pieces(self.behaviour.deltas, self.behaviour.pad)
        if not body.get("stream"):
            await out.json(200, answers.chat_completion(body, pieces))
            return
        await out.start(200, b"text/event-stream; charset=utf-8")
        for chunk in answers.chat_chunks(body, pieces):
            await out.chunk(b"data: " + orjson.dumps(chunk) + b"\n\n")
        await out.chunk(b"data: [DONE]\n\n")
        await out.end()

    async def _embeddings(self, body: dict[str, Any], exchange: Exchange, out: Sender) -> None:
        await out.json(200, answers.embeddings(body))

    async def _images(self, body: dict[str, Any], exchange: Exchange, out: Sender) -> None:
        await out.json(200, answers.images(body))

    async def _aichat(self, body: dict[str, Any], exchange: Exchange, out: Sender) -> None:
        pieces = answers.text_pieces(self.behaviour.deltas, self.behaviour.pad)
        conversation = body.get("id") or str(uuid.uuid4())
        accept = exchange.header("accept") or ""
        if "application/x-ndjson" not in accept and "text/event-stream" not in accept:
            await out.json(200, {"answer": "".join(pieces), "id": conversation})
            return
        sse = "text/event-stream" in accept
        await out.start(200, b"text/event-stream" if sse else b"application/x-ndjson")
        end = b"\r\n" if self.behaviour.crlf else b"\n"
        so_far = ""
        for piece in pieces:
            so_far += piece
            line = orjson.dumps({"answer": so_far, "delta_answer": piece, "id": conversation})
            await out.chunk(b"data: " + line + b"\n\n" if sse else line + end)
        if sse:
            await out.chunk(b"data: [DONE]\n\n")
        await out.end()

    async def _messages(self, body: dict[str, Any], exchange: Exchange, out: Sender) -> None:
        pieces = answers.text_pieces(self.behaviour.deltas, self.behaviour.pad)
        if not body.get("stream"):
            await out.json(200, messages.message(body, pieces))
            return
        await out.start(200, b"text/event-stream; charset=utf-8")
        for name, data in messages.message_events(body, pieces):
            await out.chunk(b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n")
        await out.end()

    async def _count_tokens(self, body: dict[str, Any], exchange: Exchange, out: Sender) -> None:
        await out.json(200, messages.count_tokens(body))

    async def _models(self, body: dict[str, Any], exchange: Exchange, out: Sender) -> None:
        model = {"id": "gpt-5.5", "object": "model", "created": 0, "owned_by": "acedata"}
        await out.json(200, {"object": "list", "data": [model]})


async def _read(receive: Receive) -> bytes:
    body = bytearray()  # grown in place: a 25 MB upload arrives in hundreds of chunks
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return bytes(body)


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return
