"""POST /openai/chat/completions and /v1/chat/completions through the real gateway, with the official OpenAI SDK."""

from __future__ import annotations

import time

import httpx
import openai
import orjson
import pytest
from openai import Omit, omit
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionStreamOptionsParam

from app.fakes.upstream import FakeUpstream
from tests.helpers import GatewayProcess, SdkFactory, wait_for

MESSAGES: list[ChatCompletionMessageParam] = [{"role": "user", "content": "Say hello"}]


@pytest.mark.parametrize(
    ("prefix", "model", "upstream"),
    [
        ("/openai", "gpt-4o", "/openai/chat/completions"),
        ("/v1", "gpt-4o", "/v1/chat/completions"),
        ("/v1", "claude-sonnet-4-20250514", "/v1/chat/completions"),  # AceData's /v1 takes its Claude models
        ("/v1", "gemini-2.5-pro", "/v1/chat/completions"),
    ],
)
def test_sdk_chat_completion(
    gateway: GatewayProcess, fake: FakeUpstream, make_sdk: SdkFactory, prefix: str, model: str, upstream: str
):
    completion = make_sdk(gateway.url + prefix).chat.completions.create(model=model, messages=MESSAGES, temperature=0)

    assert completion.object == "chat.completion"
    assert completion.choices[0].message.content == "Hello! This answer streams from"
    assert completion.usage is not None
    assert completion.usage.completion_tokens == 5
    [exchange] = fake.exchanges
    assert exchange.path == upstream
    assert orjson.loads(exchange.body) == {"model": model, "messages": MESSAGES, "temperature": 0}


def test_claude_is_refused_on_the_openai_chat_route(gateway: GatewayProcess, fake: FakeUpstream, make_sdk: SdkFactory):
    """/openai/chat/completions takes OpenAI's models only; Claude goes through /v1."""
    with pytest.raises(openai.BadRequestError) as caught:
        make_sdk(gateway.url + "/openai").chat.completions.create(model="claude-sonnet-4-20250514", messages=MESSAGES)
    assert caught.value.code == "invalid_request"
    assert fake.exchanges == []


@pytest.mark.parametrize("include_usage", [True, False])
def test_sdk_stream_ends_with_done_and_counts_usage(
    gateway: GatewayProcess, fake: FakeUpstream, make_sdk: SdkFactory, include_usage: bool
):
    fake.behaviour.deltas = 6
    options: ChatCompletionStreamOptionsParam | Omit = {"include_usage": True} if include_usage else omit
    stream = make_sdk(gateway.url + "/v1").chat.completions.create(
        model="gpt-4o", messages=MESSAGES, stream=True, stream_options=options
    )
    chunks = list(stream)

    text = "".join(chunk.choices[0].delta.content or "" for chunk in chunks if chunk.choices)
    assert text == "Hello! This answer streams from the"
    assert bytes(fake.exchanges[0].sent).endswith(b"data: [DONE]\n\n")
    assert (chunks[-1].usage is not None) is include_usage
    if include_usage:
        assert chunks[-1].choices == []
        assert chunks[-1].usage is not None
        assert chunks[-1].usage.completion_tokens == 6


def test_stream_is_byte_exact_and_unbuffered(client: httpx.Client, fake: FakeUpstream):
    fake.behaviour.deltas, fake.behaviour.delay = 6, 0.25
    body = b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"stream":true,"x_extra":1}'
    arrivals: list[float] = []
    received = b""
    with client.stream("POST", "/openai/chat/completions", content=body) as response:
        for chunk in response.iter_raw():
            arrivals.append(time.monotonic())
            received += chunk

    [exchange] = fake.exchanges
    assert exchange.body == body
    assert received == bytes(exchange.sent)
    assert received.endswith(b"data: [DONE]\n\n")
    assert response.headers["x-accel-buffering"] == "no"
    assert arrivals[0] < exchange.chunk_times[-1] - 1.5  # the first chunk did not wait for the last
    assert len(arrivals) >= 6


def test_tokens_reach_the_metrics(gateway: GatewayProcess, fake: FakeUpstream, make_sdk: SdkFactory):
    def tokens() -> float:
        text = httpx.get(gateway.url + "/metrics").text
        labels = 'direction="output",key="-",model="gpt-4.1-mini",route="openai.chat.completions"'
        line = "acedata_proxy_tokens_total{" + labels + "}"
        return next((float(row.split()[-1]) for row in text.splitlines() if row.startswith(line)), 0.0)

    before = tokens()
    stream = make_sdk(gateway.url + "/openai").chat.completions.create(
        model="gpt-4.1-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    list(stream)
    # the counter is written when the request ends, just after the last byte
    wait_for(lambda: tokens() == before + 5, what="the stream's usage in tokens_total")


def test_invalid_chat_bodies_are_refused_and_not_forwarded(client: httpx.Client, fake: FakeUpstream):
    cases = [
        ({"model": "gpt-4o", "messages": []}, "messages"),
        ({"model": "gpt-4o", "messages": MESSAGES, "temperature": 2.5}, "temperature"),
        ({"model": "gpt-4o", "messages": MESSAGES, "n": 0}, "n"),
        ({"model": "no-such-model", "messages": MESSAGES}, "model"),
    ]
    for body, param in cases:
        response = client.post("/v1/chat/completions", json=body)
        assert response.status_code == 400, body
        assert response.json()["error"]["param"] == param
    assert fake.exchanges == []


def test_a_model_served_on_the_other_base_url_says_which(client: httpx.Client, fake: FakeUpstream):
    """Claude is served on the /v1 base URL only: a client on /openai/... is told where to go, not "unknown"."""
    body = {"model": "claude-sonnet-4-20250514", "messages": MESSAGES}
    refused = client.post("/openai/chat/completions", json=body)
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "model"
    assert refused.json()["error"]["message"] == (
        "The model 'claude-sonnet-4-20250514' is not served on this route; POST /v1/chat/completions serves it "
        "(an OpenAI SDK with the /v1 base URL)."
    )
    assert (
        "Unknown model 'no-such-model'"
        in client.post("/openai/chat/completions", json={**body, "model": "no-such-model"}).json()["error"]["message"]
    )
    assert fake.exchanges == []
