"""The upstream boundary: header filtering (unit), and faults over real sockets (refused, reset, garbage,
timeouts, mid-stream cuts and stalls, client disconnects)."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import orjson
import pytest

from app.fakes.upstream import FakeUpstream
from app.proxy.headers import request_headers, response_headers
from app.proxy.streams import stream_format
from tests.helpers import GatewayFactory, GatewayProcess, SdkFactory, refused_port, sse_events, wait_for
from tests.helpers.raw_faults import RawFaultServer

STREAM = {"model": "gpt-4.1", "input": "hi", "stream": True}


def test_request_headers_keep_only_the_allowed_ones():
    client = [
        (b"authorization", b"Bearer sk-client"), (b"cookie", b"a=b"), (b"accept", b"text/event-stream"),
        (b"user-agent", b"ua"), (b"x-request-id", b"spoof"), (b"host", b"evil.example"), (b"connection", b"close"),
        (b"x-forwarded-host", b"evil.example"),
    ]  # fmt: skip
    headers = request_headers(client, b"Bearer tok", "rid")
    assert sorted(headers) == sorted([
        (b"accept", b"text/event-stream"), (b"user-agent", b"ua"), (b"content-type", b"application/json"),
        (b"accept-encoding", b"identity"), (b"authorization", b"Bearer tok"), (b"x-request-id", b"rid"),
    ])  # fmt: skip


def test_request_headers_default_what_the_client_did_not_send():
    names = [name for name, _ in request_headers([], b"Bearer tok", "rid")]
    assert sorted(names) == sorted(
        [b"accept", b"content-type", b"user-agent", b"accept-encoding", b"authorization", b"x-request-id"]
    )
    assert len(names) == len(set(names))


def test_response_headers_drop_hop_by_hop_and_mark_streams():
    upstream = [
        (b"content-type", b"text/event-stream"), (b"connection", b"keep-alive"), (b"set-cookie", b"s=1"),
        (b"transfer-encoding", b"chunked"), (b"alt-svc", b"h3=:443"), (b"x-request-id", b"up-1"),
        (b"cache-control", b"max-age=60"), (b"openai-processing-ms", b"12"),
    ]  # fmt: skip
    headers = dict(response_headers(upstream, stream_format(b"text/event-stream")))
    assert headers == {
        b"content-type": b"text/event-stream", b"cache-control": b"no-cache", b"x-accel-buffering": b"no",
        b"openai-processing-ms": b"12", b"x-upstream-request-id": b"up-1",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [(b"text/event-stream; charset=utf-8", "sse"), (b"application/x-ndjson", "ndjson"),
     (b"application/json", None), (b"", None)],
)  # fmt: skip
def test_stream_format(content_type: bytes, expected: str | None):
    assert stream_format(content_type) == expected


@pytest.fixture
def raw_fault() -> Iterator[dict[str, int]]:
    """A reset server and a garbage server on loopback, on an event loop of their own."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    servers = {mode: RawFaultServer(mode) for mode in ("reset", "garbage")}
    ports = {m: asyncio.run_coroutine_threadsafe(s.start(), loop).result(5) for m, s in servers.items()}
    yield ports
    for server in servers.values():
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)
    loop.close()


def post_json(gateway: GatewayProcess, body: dict[str, Any] | None = None) -> httpx.Response:
    return httpx.post(gateway.url + "/openai/responses", json=body or {"model": "gpt-4.1", "input": "hi"}, timeout=30)


def assert_gateway_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code
    assert response.headers["x-request-id"]


@pytest.fixture
def refused_url() -> Iterator[str]:
    """An upstream URL whose port is held and not listening: every connection to it is refused."""
    with refused_port() as sock:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_refused_connection_is_502(make_gateway: GatewayFactory, refused_url: str):
    gateway = make_gateway(ACEDATACLOUD_API_BASE_URL=refused_url)
    assert_gateway_error(post_json(gateway), 502, "upstream_unavailable")


@pytest.mark.parametrize("mode", ["reset", "garbage"])
def test_reset_or_garbage_before_headers_is_502(make_gateway: GatewayFactory, raw_fault: dict[str, int], mode: str):
    gateway = make_gateway(ACEDATACLOUD_API_BASE_URL=f"http://127.0.0.1:{raw_fault[mode]}")
    assert_gateway_error(post_json(gateway), 502, "upstream_unavailable")


@pytest.fixture(scope="module")
def impatient(make_module_gateway: GatewayFactory) -> GatewayProcess:
    return make_module_gateway(PROXY_READ_TIMEOUT="0.5")


def test_silent_upstream_is_504_within_the_read_timeout(impatient: GatewayProcess, fake: FakeUpstream):
    fake.behaviour.headers_delay = 5
    started = time.monotonic()
    response = post_json(impatient)
    assert_gateway_error(response, 504, "upstream_timeout")
    assert time.monotonic() - started < 2


def test_first_byte_and_silence_timeouts_are_separate(make_gateway: GatewayFactory, fake: FakeUpstream):
    """A model may think long before its first byte, then stream fast: the two waits have their own limits."""
    thinker = make_gateway(PROXY_FIRST_BYTE_TIMEOUT="3", PROXY_READ_TIMEOUT="0.4")
    fake.behaviour.headers_delay = 1  # past the silence limit, within the first-byte one
    assert post_json(thinker).status_code == 200
    fake.behaviour.headers_delay = 0
    fake.behaviour.stall_after = 2
    started = time.monotonic()
    with httpx.stream("POST", thinker.url + "/openai/responses", json=STREAM, timeout=30) as response:
        raw = b"".join(response.iter_raw())
    assert time.monotonic() - started < 2
    assert sse_events(raw)[-1][0] == "error"

    hasty = make_gateway(PROXY_FIRST_BYTE_TIMEOUT="0.4", PROXY_READ_TIMEOUT="30")
    fake.behaviour.stall_after = None
    fake.behaviour.headers_delay = 5
    started = time.monotonic()
    assert_gateway_error(post_json(hasty), 504, "upstream_timeout")
    assert time.monotonic() - started < 2


def test_refused_connection_is_retried_with_backoff_then_502(make_gateway: GatewayFactory, refused_url: str):
    gateway = make_gateway(ACEDATACLOUD_API_BASE_URL=refused_url, PROXY_CONNECT_RETRIES="2")
    started = time.monotonic()
    assert_gateway_error(post_json(gateway), 502, "upstream_unavailable")
    assert time.monotonic() - started >= 0.075  # at least the two shortest jittered backoffs
    assert gateway.log().count("retrying in") == 2


def test_upstream_errors_are_never_retried(client: httpx.Client, fake: FakeUpstream):
    fake.behaviour.status = 500  # SDKs retry 5xx and 429 themselves; the gateway doing it too would multiply
    response = client.post("/openai/responses", json={"model": "gpt-4.1", "input": "hi"})
    assert response.status_code == 500
    assert len(fake.exchanges) == 1


def test_stall_mid_stream_ends_with_an_error_event(impatient: GatewayProcess, fake: FakeUpstream):
    fake.behaviour.stall_after = 3
    started = time.monotonic()
    with httpx.stream("POST", impatient.url + "/openai/responses", json=STREAM, timeout=30) as response:
        raw = b"".join(response.iter_raw())
    assert time.monotonic() - started < 3
    assert response.status_code == 200
    events = sse_events(raw)
    assert len(events) == 4
    name, data = events[-1]
    assert name == "error"
    assert orjson.loads(data)["error"]["code"] == "upstream_timeout"


def test_cut_mid_stream_ends_sse_with_an_error_event(client: httpx.Client, fake: FakeUpstream):
    fake.behaviour.cut_after = 5
    with client.stream("POST", "/openai/responses", json=STREAM) as response:
        raw = b"".join(response.iter_raw())
    assert raw.startswith(bytes(fake.exchanges[0].sent))
    name, data = sse_events(raw)[-1]
    assert name == "error"
    assert orjson.loads(data)["error"]["code"] == "upstream_unavailable"


def test_cut_mid_stream_makes_the_sdk_raise(gateway: GatewayProcess, fake: FakeUpstream, make_sdk: SdkFactory):
    fake.behaviour.cut_after = 6
    sdk = make_sdk(gateway.url + "/v1")
    seen = []
    with pytest.raises(openai.APIError, match="upstream"):  # noqa: PT012 - the error comes while iterating
        for event in sdk.responses.create(model="gpt-4.1", input="hi", stream=True):
            seen.append(event.type)
    assert len(seen) == 6


def test_cut_mid_stream_ends_ndjson_with_an_error_line(client: httpx.Client, fake: FakeUpstream):
    fake.behaviour.cut_after = 2
    headers = {"accept": "application/x-ndjson"}
    body = {"model": "gpt-4o", "question": "hi"}
    with client.stream("POST", "/aichat/conversations", json=body, headers=headers) as response:
        lines = [orjson.loads(line) for line in response.iter_lines() if line]
    assert len(lines) == 3
    assert lines[-1]["error"]["code"] == "upstream_unavailable"


def test_cut_json_body_aborts_the_connection(client: httpx.Client, fake: FakeUpstream):
    """A plain JSON body has no error format: the client must see a broken response, never a short one."""
    fake.behaviour.cut_after = 0
    with pytest.raises(httpx.RemoteProtocolError):
        client.post("/openai/responses", json={"model": "gpt-4.1", "input": "hi"})


def test_client_disconnect_mid_stream_closes_upstream(client: httpx.Client, fake: FakeUpstream):
    fake.behaviour.deltas, fake.behaviour.delay = 50, 0.2
    with client.stream("POST", "/openai/responses", json=STREAM) as response:
        next(response.iter_raw())
    assert wait_for(lambda: fake.exchanges[0].closed_early) < 1
    assert not fake.exchanges[0].finished


def test_client_disconnect_while_upstream_thinks_closes_upstream(gateway: GatewayProcess, fake: FakeUpstream):
    fake.behaviour.headers_delay = 10
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(gateway.url + "/openai/responses", json={"model": "gpt-4.1", "input": "hi"}, timeout=0.5)
    assert wait_for(lambda: bool(fake.exchanges) and fake.exchanges[0].closed_early) < 1.5
