"""POST /openai/responses and /v1/responses through the real gateway, with the official OpenAI SDK."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import orjson
import pytest

from app.access.keys import create
from app.fakes.upstream import FakeUpstream
from tests.helpers import CLIENT_KEY, UPSTREAM_TOKEN, GatewayFactory, GatewayProcess, SdkFactory, assert_no_secrets


@pytest.mark.parametrize("prefix", ["/openai", "/v1"])
def test_sdk_create_returns_the_upstream_response(
    gateway: GatewayProcess, fake: FakeUpstream, make_sdk: SdkFactory, prefix: str
):
    response = make_sdk(gateway.url + prefix).responses.create(model="gpt-4.1", input="Say hello")

    assert response.status == "completed"
    assert response.output_text.startswith("Hello! This answer streams")
    assert response.usage is not None
    assert response.usage.output_tokens == 5
    [exchange] = fake.exchanges
    assert exchange.path == "/openai/responses"
    assert orjson.loads(exchange.body) == {"model": "gpt-4.1", "input": "Say hello"}


@pytest.mark.parametrize("prefix", ["/openai", "/v1"])
def test_sdk_stream_yields_every_event_in_order(
    gateway: GatewayProcess, fake: FakeUpstream, make_sdk: SdkFactory, prefix: str
):
    fake.behaviour.deltas = 7
    with make_sdk(gateway.url + prefix).responses.create(model="gpt-4.1", input="hi", stream=True) as stream:
        events = list(stream)

    types = [event.type for event in events]
    assert types[:4] == [
        "response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
    ]  # fmt: skip
    assert types.count("response.output_text.delta") == 7
    assert types[-1] == "response.completed"
    assert [event.sequence_number for event in events] == list(range(len(events)))
    final = events[-1].response  # type: ignore[union-attr]
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert final.output_text == deltas


def test_sdk_accepts_data_only_streams_with_done_marker(
    gateway: GatewayProcess, fake: FakeUpstream, make_sdk: SdkFactory
):
    fake.behaviour.sse_style, fake.behaviour.done_marker = "data-only", True
    with make_sdk(gateway.url + "/openai").responses.create(model="gpt-4.1", input="hi", stream=True) as stream:
        types = [event.type for event in stream]
    assert types[-1] == "response.completed"


def test_stream_is_byte_exact(client: httpx.Client, fake: FakeUpstream):
    body = b'{"model":"gpt-4.1","input":[{"role":"user","content":"hi"}],"stream":true,"x_extra":{"k":[1,2]}}'
    with client.stream("POST", "/openai/responses", content=body) as response:
        received = b"".join(response.iter_raw())

    [exchange] = fake.exchanges
    assert exchange.body == body  # forwarded byte for byte, unknown fields included
    assert received == bytes(exchange.sent)
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["x-accel-buffering"] == "no"
    assert response.headers["cache-control"] == "no-cache"


def test_stream_is_not_buffered(client: httpx.Client, fake: FakeUpstream):
    """The first event reaches the client long before the upstream sends the last one."""
    fake.behaviour.deltas, fake.behaviour.delay = 6, 0.25  # 14 chunks, ~3.2 s of pacing
    body = {"model": "gpt-4.1", "input": "hi", "stream": True}
    arrivals: list[float] = []
    with client.stream("POST", "/openai/responses", json=body) as response:
        for _ in response.iter_raw():
            arrivals.append(time.monotonic())

    [exchange] = fake.exchanges
    pacing = exchange.chunk_times[-1] - exchange.chunk_times[0]
    assert pacing > 3
    assert arrivals[0] < exchange.chunk_times[-1] - 2.5  # the first byte did not wait for the last
    assert len(arrivals) >= 10  # chunks arrived one by one, not as one lump


def test_upstream_gets_our_token_and_no_client_credentials(client: httpx.Client, fake: FakeUpstream):
    response = client.post(
        "/openai/responses",
        json={"model": "gpt-4.1", "input": "hi"},
        headers={
            "x-request-id": "req-123",
            "user-agent": "my-app/1.0",
            "x-api-key": "other",
            "proxy-authorization": "x",
        },
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "req-123"
    [exchange] = fake.exchanges
    names = {name.decode().lower() for name, _ in exchange.headers}
    assert exchange.header("authorization") == f"Bearer {UPSTREAM_TOKEN}"
    assert exchange.header("x-request-id") == "req-123"
    assert exchange.header("user-agent") == "my-app/1.0"
    assert not names & {"cookie", "x-api-key", "proxy-authorization"}
    assert CLIENT_KEY.encode() not in b"".join(value for _, value in exchange.headers)
    assert_no_secrets(response.text + str(response.headers), "a response")


def test_request_id_is_generated_when_absent_or_unsafe(client: httpx.Client, fake: FakeUpstream):
    first = client.post("/openai/responses", json={"model": "gpt-4.1", "input": "hi"})
    second = client.post("/openai/responses", json={"model": "gpt-4.1", "input": "hi"}, headers={"x-request-id": "a b"})
    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert len(set(ids)) == 2
    assert all(len(i) == 32 for i in ids)
    assert [e.header("x-request-id") for e in fake.exchanges] == ids


def test_upstream_error_passes_through_unchanged(client: httpx.Client, fake: FakeUpstream):
    fake.behaviour.status = 403
    response = client.post("/openai/responses", json={"model": "gpt-4.1", "input": "hi"})
    assert response.status_code == 403
    assert response.content == bytes(fake.exchanges[0].sent)
    assert response.json()["error"]["code"] == "used_up"


def test_sdk_raises_typed_error_for_upstream_status(gateway: GatewayProcess, fake: FakeUpstream, make_sdk: SdkFactory):
    import openai

    fake.behaviour.status = 401
    with pytest.raises(openai.AuthenticationError):
        make_sdk(gateway.url + "/v1").responses.create(model="gpt-4.1", input="hi")


def test_sdk_stream_helper_builds_the_final_response(gateway: GatewayProcess, fake: FakeUpstream, make_sdk: SdkFactory):
    """openai-python's `responses.stream()` helper rebuilds the response from the events: it fails on an `output`
    that is not empty in response.created (OpenAI sends `output: []` there)."""
    with make_sdk(gateway.url + "/v1").responses.stream(model="gpt-4.1", input="hi") as stream:
        deltas = [event.delta for event in stream if event.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert final.output_text == "".join(deltas) == "Hello! This answer streams from"


def test_empty_tools_list_is_accepted(gateway: GatewayProcess, fake: FakeUpstream, make_sdk: SdkFactory):
    """The OpenAI Agents SDK sends `"tools": []` for an agent without tools."""
    response = make_sdk(gateway.url + "/v1").responses.create(model="gpt-4.1", input="hi", tools=[])
    assert response.status == "completed"
    assert orjson.loads(fake.exchanges[0].body)["tools"] == []


@pytest.mark.parametrize("prefix", ["/openai", "/v1"])
def test_background_response_is_retrieved(
    gateway: GatewayProcess, fake: FakeUpstream, make_sdk: SdkFactory, prefix: str
):
    sdk = make_sdk(gateway.url + prefix)
    queued = sdk.responses.create(model="gpt-4.1", input="hi", background=True)
    assert queued.status == "queued"
    assert queued.output == []

    done = sdk.responses.retrieve(queued.id)
    assert (done.id, done.status) == (queued.id, "completed")
    assert done.output_text.startswith("Hello!")
    with sdk.responses.retrieve(queued.id, stream=True) as stream:
        types = [event.type for event in stream]
    assert types[0] == "response.created"
    assert types[-1] == "response.completed"
    retrievals = [exchange for exchange in fake.exchanges if exchange.method == "GET"]
    assert [exchange.path for exchange in retrievals] == [f"/openai/responses/{queued.id}"] * 2
    assert retrievals[1].query == b"stream=true"
    assert retrievals[0].body == b""


@pytest.mark.parametrize(
    ("target", "status"),
    [
        ("/v1/responses/..", 404),  # a dot-segment never reaches the upstream
        ("/v1/responses/a%2F..%2Fb", 404),  # neither does an encoded slash
        ("/v1/responses/resp_1?stream=true&evil=1", 400),  # only the route's own query parameters go upstream
        ("/v1/responses/resp_1?stream=%0d%0ahost:x", 200),  # a value is re-encoded, never a header
    ],
)
def test_retrieve_takes_one_safe_path_segment(client: httpx.Client, fake: FakeUpstream, target: str, status: int):
    response = client.send(client.build_request("GET", target))
    forwarded = [exchange for exchange in fake.exchanges if exchange.method == "GET"]
    if status == 200:
        assert response.status_code == 404  # the fake upstream knows no such response: its 404 passes through
        assert response.json()["error"]["code"] == "no_api"
        [exchange] = forwarded
        assert (exchange.path, exchange.query) == ("/openai/responses/resp_1", b"stream=%0D%0Ahost%3Ax")
    else:
        assert response.status_code == status
        assert response.json()["error"]["code"] in ("not_found", "invalid_request")
        assert forwarded == []


def test_a_refused_retrieval_spends_none_of_the_key_limit(
    make_gateway: GatewayFactory, fake: FakeUpstream, tmp_path: Path
):
    """Every check runs before the key's admission: a request refused for its query, or for a response id that is
    not its own, holds no RPM slot."""
    keys_file = tmp_path / "keys.toml"
    key = create(keys_file, "two-a-minute", rpm=2)
    gateway = make_gateway(PROXY_KEYS_FILE=str(keys_file))
    auth = {"authorization": f"Bearer {key}"}
    body = {"model": "gpt-4.1", "input": "hi", "background": True}
    response_id = httpx.post(gateway.url + "/v1/responses", json=body, headers=auth).json()["id"]
    assert httpx.get(gateway.url + f"/v1/responses/{response_id}?evil=1", headers=auth).status_code == 400
    assert httpx.get(gateway.url + "/v1/responses/resp_someone_elses", headers=auth).status_code == 404
    answered = httpx.get(gateway.url + f"/v1/responses/{response_id}", headers=auth)
    assert answered.status_code == 200
    assert answered.headers["x-ratelimit-remaining-requests"] == "0"
    assert httpx.get(gateway.url + f"/v1/responses/{response_id}", headers=auth).status_code == 429
