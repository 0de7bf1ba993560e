"""PROXY_MAX_INFLIGHT: in-process, what the middleware counts and refuses; over real sockets, a burst past the limit
gets fast 503 `overloaded` refusals that the OpenAI SDK retries, while the streams held up to the limit flow on."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator
from typing import Any

import httpx
import openai
import orjson
import pydantic
import pytest

from app.context import SCOPE_KEY, RequestInfo
from app.fakes.upstream import Behaviour, FakeUpstream
from app.middleware.admission import AdmissionMiddleware
from app.settings import Settings
from app.types import Message, Receive, Scope, Send
from tests.helpers import CLIENT_KEY, GatewayFactory, scrape, value, wait_for

FORWARDED, ROUTE = "/openai/responses", "openai.responses"
STREAM = {"model": "gpt-4.1", "input": "hi", "stream": True}
JSON: dict[str, Any] = {"model": "gpt-4.1", "input": "hi"}


class HeldApp:
    """An app that answers 200 once `release` is set, counting the requests it saw."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.entered = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.entered += 1
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


async def call(app: AdmissionMiddleware, path: str) -> tuple[list[Message], RequestInfo]:
    sent: list[Message] = []
    info = RequestInfo("test")
    info.route = ROUTE if path == FORWARDED else "other"  # as ObserveMiddleware resolves it, outside this one
    scope = {"type": "http", "method": "POST", "path": path, "headers": [], SCOPE_KEY: info}

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}

    await app(scope, receive, send)
    return sent, info


async def test_past_the_limit_a_request_is_refused_at_once_and_counted():
    held = HeldApp()
    admission = AdmissionMiddleware(held, 2, [ROUTE])
    holding = [asyncio.create_task(call(admission, FORWARDED)) for _ in range(2)]
    await asyncio.sleep(0)  # both enter and wait
    (start, body), info = await call(admission, FORWARDED)
    assert start["status"] == 503
    assert (b"retry-after", b"1") in start["headers"]
    assert orjson.loads(body["body"])["error"]["code"] == "overloaded"
    assert info.overloaded
    assert held.entered == 2, "a refused request must not reach the app"
    held.release.set()
    for sent, info in await asyncio.gather(*holding):
        assert sent[0]["status"] == 200
        assert not info.overloaded
    assert admission.inflight == 0
    assert (await call(admission, FORWARDED))[0][0]["status"] == 200  # the slots are free again


async def test_other_paths_are_neither_counted_nor_refused():
    held = HeldApp()
    admission = AdmissionMiddleware(held, 1, [ROUTE])
    holding = asyncio.create_task(call(admission, FORWARDED))
    await asyncio.sleep(0)
    held.release.set()
    sent, info = await call(admission, "/metrics")  # answers while the one forwarding slot is taken
    assert sent[0]["status"] == 200
    assert not info.overloaded
    await holding


async def test_a_request_that_fails_gives_its_slot_back():
    async def failing(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("boom")

    admission = AdmissionMiddleware(failing, 1, [ROUTE])
    for _ in range(3):
        with pytest.raises(RuntimeError):
            await call(admission, FORWARDED)
    assert admission.inflight == 0


def test_the_limit_is_a_positive_number_or_unset():
    assert Settings(_env_file=None).max_inflight is None
    assert Settings(_env_file=None, PROXY_MAX_INFLIGHT="3").max_inflight == 3
    with pytest.raises(pydantic.ValidationError):
        Settings(_env_file=None, PROXY_MAX_INFLIGHT="0")


async def first_event(raw: AsyncIterator[bytes]) -> list[bytes]:
    """The chunks up to the stream's first whole event; `raw` goes on from there (ending the loop over the
    iterator instead would close the response)."""
    chunks: list[bytes] = []
    while b"\n\n" not in b"".join(chunks):
        chunks.append(await anext(raw))
    return chunks


async def test_a_burst_past_the_limit_is_refused_fast_while_held_streams_flow(
    make_gateway: GatewayFactory, fake: FakeUpstream
):
    fake.behaviour.deltas, fake.behaviour.delay = 100, 0.05  # ~5 s a stream: the burst comes and goes meanwhile
    gateway = make_gateway(PROXY_MAX_INFLIGHT="4")
    limits = httpx.Limits(max_connections=40, max_keepalive_connections=0)
    client = httpx.AsyncClient(base_url=gateway.url, limits=limits, timeout=30)
    async with client, contextlib.AsyncExitStack() as stack:
        streams = []
        for index in range(4):
            request = client.build_request("POST", FORWARDED, json=STREAM, headers={"x-request-id": f"held-{index}"})
            response = await client.send(request, stream=True)
            stack.push_async_callback(response.aclose)
            assert response.status_code == 200
            raw = response.aiter_raw()
            streams.append((raw, await first_event(raw)))
        refusals = await asyncio.gather(*(client.post(FORWARDED, json=JSON) for _ in range(16)))
        assert fake.open_requests == 4, "the held streams were still open when the burst was refused"
        for refusal in refusals:
            assert refusal.status_code == 503
            assert refusal.headers["retry-after"] == "1"
            assert refusal.json()["error"]["code"] == "overloaded"
            assert refusal.headers["x-request-id"]
        for raw, chunks in streams:
            chunks += [chunk async for chunk in raw]
        sent = {exchange.header("x-request-id"): bytes(exchange.sent) for exchange in fake.exchanges}
        for index, (_, chunks) in enumerate(streams):
            assert b"".join(chunks) == sent[f"held-{index}"], f"held stream {index} was not relayed whole"
    assert len(fake.exchanges) == 4, "a refused request reached the upstream"
    samples = scrape(gateway)
    assert value(samples, "acedata_proxy_overloaded_total", route="openai.responses") == 16
    assert value(samples, "acedata_proxy_requests_total", route="openai.responses", model="other", status="503") == 16


def test_the_sdk_retries_a_refusal_until_a_slot_frees(make_gateway: GatewayFactory, fake: FakeUpstream):
    gateway = make_gateway(PROXY_MAX_INFLIGHT="1")
    fake.behaviour = Behaviour(deltas=5, stall_after=1)  # the held stream goes silent after its first chunk
    held = httpx.Client(base_url=gateway.url, timeout=30)
    with held.stream("POST", FORWARDED, json=STREAM) as stream:
        raw = stream.iter_raw()  # kept: a dropped iterator would close the stream
        next(raw)
        fake.behaviour = Behaviour()  # later requests are answered normally; the held one keeps its stall
        sdk = openai.OpenAI(base_url=gateway.url + "/openai", api_key=CLIENT_KEY, max_retries=5, timeout=30)
        answers: list[str] = []
        caller = threading.Thread(target=lambda: answers.append(sdk.responses.create(**JSON).output_text))
        caller.start()
        refused = lambda: value(scrape(gateway), "acedata_proxy_overloaded_total", route="openai.responses") >= 1  # noqa: E731
        wait_for(refused, 10, "the SDK's first try refused")
    held.close()  # the held stream ends: its slot frees, and the SDK's next try gets it
    caller.join(timeout=30)
    sdk.close()
    assert answers, "the SDK did not get an answer after retrying"
    assert answers[0]
