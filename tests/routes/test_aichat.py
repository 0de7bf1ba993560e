"""POST /aichat/conversations through the real gateway: JSON, NDJSON and SSE, read with httpx."""

from __future__ import annotations

import time

import httpx
import orjson
import pytest

from app.fakes.upstream import FakeUpstream

QUESTION = {"model": "gpt-4o", "question": "Who are you?"}


def test_json_answer(client: httpx.Client, fake: FakeUpstream):
    response = client.post("/aichat/conversations", json={**QUESTION, "stateful": True})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    assert answer["answer"].startswith("Hello!")
    assert answer["id"]
    assert response.content == bytes(fake.exchanges[0].sent)


def test_conversation_id_continues(client: httpx.Client, fake: FakeUpstream):
    first = client.post("/aichat/conversations", json={**QUESTION, "stateful": True}).json()
    second = client.post("/aichat/conversations", json={**QUESTION, "id": first["id"]}).json()
    assert second["id"] == first["id"]
    assert orjson.loads(fake.exchanges[1].body)["id"] == first["id"]


@pytest.mark.parametrize("crlf", [False, True])
def test_ndjson_stream_is_byte_exact(client: httpx.Client, fake: FakeUpstream, crlf: bool):
    fake.behaviour.crlf, fake.behaviour.deltas = crlf, 8
    headers = {"accept": "application/x-ndjson"}
    with client.stream("POST", "/aichat/conversations", json=QUESTION, headers=headers) as response:
        received = b"".join(response.iter_raw())

    [exchange] = fake.exchanges
    assert exchange.header("accept") == "application/x-ndjson"
    assert response.headers["content-type"] == "application/x-ndjson"
    assert response.headers["x-accel-buffering"] == "no"
    assert received == bytes(exchange.sent)
    lines = [orjson.loads(line) for line in received.splitlines() if line.strip()]
    assert len(lines) == 8
    assert lines[-1]["answer"] == "".join(line["delta_answer"] for line in lines)


def test_sse_stream_ends_with_done(client: httpx.Client, fake: FakeUpstream):
    headers = {"accept": "text/event-stream"}
    with client.stream("POST", "/aichat/conversations", json=QUESTION, headers=headers) as response:
        received = b"".join(response.iter_raw())
    assert response.headers["content-type"].startswith("text/event-stream")
    assert received == bytes(fake.exchanges[0].sent)
    assert received.endswith(b"data: [DONE]\n\n")


def test_ndjson_lines_arrive_as_sent(client: httpx.Client, fake: FakeUpstream):
    fake.behaviour.deltas, fake.behaviour.delay = 8, 0.3
    headers = {"accept": "application/x-ndjson"}
    arrivals = []
    with client.stream("POST", "/aichat/conversations", json=QUESTION, headers=headers) as response:
        for line in response.iter_lines():
            if line:
                arrivals.append(time.monotonic())
    sent = fake.exchanges[0].chunk_times
    assert len(arrivals) == 8
    assert arrivals[0] < sent[-1] - 1.8
    # each line is seen within a fraction of the upstream's pacing after it was sent
    assert all(arrived - sent_at < 0.2 for arrived, sent_at in zip(arrivals, sent, strict=True))
