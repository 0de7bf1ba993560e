"""The shutdown cutoff in-process, through ObserveMiddleware, which answers it: what a request cancelled by the end
of the shutdown grace sends, by how far its response had gone. (Over real sockets, with SIGTERM:
tests/test_resilience.py.)"""

from __future__ import annotations

import asyncio

import orjson
import pytest
from prometheus_client import CollectorRegistry

from app.errors import Envelope
from app.logs import AccessLog, CoalescingHandler, Formatter
from app.metrics import Metrics
from app.middleware.observe import ObserveMiddleware
from app.types import ASGIApp, Message, Receive, Scope, Send

SCOPE = {"type": "http", "method": "POST", "path": "/openai/responses", "headers": []}


def app_that_hangs_after(messages: list[Message], hanging: asyncio.Event):
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        for message in messages:
            await send(message)
        hanging.set()
        await asyncio.sleep(3600)

    return app


def observed(app: ASGIApp, envelope: Envelope) -> ObserveMiddleware:
    handler = CoalescingHandler()
    handler.setFormatter(Formatter("text"))
    return ObserveMiddleware(app, Metrics(CollectorRegistry()), lambda _path: ("route", envelope), AccessLog(handler))


async def cut(messages: list[Message], envelope: Envelope = "openai") -> list[Message]:
    """Run the app until it hangs, then cancel it as uvicorn does when the grace is over."""
    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        await asyncio.sleep(3600)
        return {}

    hanging = asyncio.Event()
    task = asyncio.create_task(observed(app_that_hangs_after(messages, hanging), envelope)(dict(SCOPE), receive, send))
    await hanging.wait()
    task.cancel()
    await task  # ended, not cancelled: the guard answered
    return sent[len(messages) :]


def start(content_type: bytes) -> Message:
    return {"type": "http.response.start", "status": 200, "headers": [(b"content-type", content_type)]}


def body(data: bytes) -> Message:
    return {"type": "http.response.body", "body": data, "more_body": True}


async def test_no_status_yet_gets_a_503_envelope():
    start_message, body_message = await cut([])
    assert start_message["status"] == 503
    assert orjson.loads(body_message["body"])["error"]["code"] == "not_ready"


@pytest.mark.parametrize(
    ("sent", "prefix"),
    [(b"event: a\ndata: {}\n\n", b""), (b"event: a\ndata: {", b"\n\n"), (b"", b"")],
)
async def test_sse_ends_with_an_error_event_of_its_own(sent: bytes, prefix: bytes):
    [last] = await cut([start(b"text/event-stream; charset=utf-8"), body(sent)])
    assert last["more_body"] is False
    assert last["body"].startswith(prefix + b"event: error\ndata: ")
    assert orjson.loads(last["body"].split(b"data: ", 1)[1])["error"]["code"] == "not_ready"


@pytest.mark.parametrize(("sent", "prefix"), [(b'{"a": 1}\n', b""), (b'{"a": ', b"\n")])
async def test_ndjson_ends_with_an_error_line(sent: bytes, prefix: bytes):
    [last] = await cut([start(b"application/x-ndjson"), body(sent)])
    assert last["body"].startswith(prefix + b'{"error":')
    assert last["body"].endswith(b"}\n")


async def test_json_body_under_way_is_aborted():
    with pytest.raises(asyncio.CancelledError):
        await cut([start(b"application/json"), body(b'{"id": ')])


async def test_anthropic_route_gets_its_own_envelope_and_error_event():
    """The envelope resolved with the route (RequestInfo.envelope), before and after the stream began."""
    _, refused = await cut([], "anthropic")
    assert orjson.loads(refused["body"])["error"]["type"] == "overloaded_error"
    [last] = await cut([start(b"text/event-stream"), body(b"event: ping\ndata: {}\n\n")], "anthropic")
    assert last["body"].startswith(b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error"')
