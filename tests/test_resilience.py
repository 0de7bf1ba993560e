"""Resilience over real sockets: SIGTERM drains in-flight streams (one worker, several, the demo), and a client
that leaves at any point closes its upstream request and leaves nothing open behind it.

(Disconnects mid-SSE-stream and during a JSON request's wait are in test_upstream.py; these are the rest.)
"""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from app.fakes.upstream import FakeUpstream
from tests.helpers import (
    CliProcess,
    GatewayFactory,
    GatewayProcess,
    inflight,
    scrape,
    sse_events,
    value,
    wait_for,
    wait_healthy,
)

STREAM = {"model": "gpt-4.1", "input": "hi", "stream": True}
AICHAT = {"model": "gpt-4o", "question": "hi"}
NDJSON = {"accept": "application/x-ndjson"}


def refuses_connections(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return False
    except ConnectionRefusedError:
        return True


# --- SIGTERM -------------------------------------------------------------------------------------------------


def drain_one_stream(url: str, port: int, stop: Callable[[], None], fake: FakeUpstream, request_id: str) -> bytes:
    """Start a stream, stop the gateway once its first bytes arrived, and read the stream to its end."""
    headers = {"x-request-id": request_id}
    with httpx.stream("POST", url + "/openai/responses", json=STREAM, headers=headers, timeout=30) as response:
        chunks = response.iter_raw()
        received = next(chunks)
        stop()
        # stopped accepting: new connections are refused while the stream goes on
        wait_for(lambda: refuses_connections(port), what="listener closed")
        assert not fake.exchanges[0].finished
        for chunk in chunks:
            received += chunk
    return received


def assert_complete(received: bytes, fake: FakeUpstream) -> None:
    assert received == bytes(fake.exchanges[0].sent)  # byte for byte what the upstream sent
    assert sse_events(received)[-1][0] == "response.completed"
    # the fake marks its exchange finished after its last send returns, which may be after the gateway relayed it
    wait_for(lambda: fake.exchanges[0].finished, what="the upstream's exchange finished")


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_lets_an_inflight_stream_finish_then_exits_0(
    make_gateway: GatewayFactory, fake: FakeUpstream, workers: str
):
    fake.behaviour.deltas, fake.behaviour.delay = 6, 0.1  # 14 chunks, ~1.3 s
    gateway = make_gateway("--workers", workers)
    stop = lambda: gateway.proc.send_signal(signal.SIGTERM)  # noqa: E731
    received = drain_one_stream(gateway.url, gateway.port, stop, fake, f"drain-{workers}")
    assert_complete(received, fake)
    assert gateway.proc.wait(10) == 0
    [line] = [line for line in gateway.log().splitlines() if f"request_id=drain-{workers}" in line]
    assert "status=200" in line


def test_sigterm_past_the_grace_ends_the_stream_with_an_error_event(make_gateway: GatewayFactory, fake: FakeUpstream):
    """The stream outlives PROXY_SHUTDOWN_GRACE: it ends at the grace with an error event (never hangs, never looks
    complete), the upstream request is closed, and the process exits 0 in time."""
    fake.behaviour.deltas, fake.behaviour.delay = 60, 0.2  # ~13 s: far longer than the grace
    grace = 1.0
    gateway = make_gateway(PROXY_SHUTDOWN_GRACE=str(grace))
    with httpx.stream("POST", gateway.url + "/openai/responses", json=STREAM, timeout=30) as response:
        chunks = response.iter_raw()
        received = next(chunks)
        signalled = time.monotonic()
        gateway.proc.send_signal(signal.SIGTERM)
        for chunk in chunks:
            received += chunk
        ended = time.monotonic() - signalled
    assert gateway.proc.wait(10) == 0
    exited = time.monotonic() - signalled
    assert grace - 0.2 < ended < grace + 1.5, ended
    assert exited < grace + 2.5, exited
    events = sse_events(received)
    assert "response.completed" not in [name for name, _ in events]
    name, data = events[-1]
    assert name == "error"
    assert orjson.loads(data)["error"]["code"] == "not_ready"
    relayed = received[: received.rindex(b"event: error")]
    assert bytes(fake.exchanges[0].sent).startswith(relayed.removesuffix(b"\n\n")) or relayed == b""
    wait_for(lambda: fake.exchanges[0].closed_early and fake.open_requests == 0, what="upstream request closed")
    [line] = [line for line in gateway.log().splitlines() if "acedata_proxy.access" in line and "/openai" in line]
    assert "status=200" in line


def test_sigterm_past_the_grace_answers_a_waiting_request_503(make_gateway: GatewayFactory, fake: FakeUpstream):
    """A request still waiting for the upstream's first byte when the grace runs out gets a 503 in the envelope
    (SDKs retry it), not uvicorn's plain-text 500."""
    fake.behaviour.headers_delay = 30
    gateway = make_gateway(PROXY_SHUTDOWN_GRACE="0.5")

    def stop_once_upstream() -> None:
        wait_for(lambda: fake.open_requests == 1, what="request upstream")
        gateway.proc.send_signal(signal.SIGTERM)

    stopper = threading.Thread(target=stop_once_upstream)
    stopper.start()
    try:
        response = httpx.post(gateway.url + "/openai/responses", json={**STREAM, "stream": False}, timeout=10)
    finally:
        stopper.join()
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "not_ready"
    assert response.headers["x-request-id"]
    assert gateway.proc.wait(10) == 0
    wait_for(lambda: fake.open_requests == 0, what="upstream request closed")
    assert "status=503" in gateway.log()


def test_demo_drains_on_sigterm(tmp_path: Path):
    """`acedata-proxy demo` runs the gateway and its fake upstream in one process: SIGTERM lets the gateway's
    stream finish (the fake keeps serving until the gateway is done), then both stop and the process exits 0."""
    cli = CliProcess(tmp_path, "demo", listen=True)
    proc, port, url = cli.proc, cli.port, cli.url
    try:
        wait_healthy(url, proc)
        with httpx.stream("POST", url + "/openai/responses", json=STREAM, timeout=30) as response:
            chunks = response.iter_raw()
            received = next(chunks)
            proc.send_signal(signal.SIGTERM)
            wait_for(lambda: refuses_connections(port), what="listener closed")
            for chunk in chunks:
                received += chunk
        events = sse_events(received)
        assert events[-1][0] == "response.completed"
        deltas = [e for name, e in events if name == "response.output_text.delta"]
        assert len(deltas) == 16  # the demo's stream, complete
        assert proc.wait(15) == 0
    finally:
        cli.stop()


# --- client disconnects --------------------------------------------------------------------------------------


def assert_nothing_left_open(gateway: GatewayProcess, fake: FakeUpstream, route: str) -> None:
    wait_for(lambda: fake.open_requests == 0, timeout=2, what="fake upstream has no open request")
    wait_for(lambda: inflight(gateway, route) == 0, timeout=2, what="in-flight gauge back to 0")


def raw_post(port: int, path: str, body: bytes, headers: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    head = f"POST {path} HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n"
    sock.sendall(head.encode() + headers + f"content-length: {len(body)}\r\n\r\n".encode() + body)
    return sock


BEFORE_HEADERS = [
    pytest.param("/openai/responses", STREAM, b"", "openai.responses", id="sse"),
    pytest.param("/aichat/conversations", AICHAT, b"accept: application/x-ndjson\r\n", "aichat.conversations",
                 id="ndjson"),
    pytest.param("/aichat/conversations", AICHAT, b"", "aichat.conversations", id="json"),
]  # fmt: skip


@pytest.mark.parametrize(("path", "body", "headers", "route"), BEFORE_HEADERS)
def test_disconnect_while_upstream_thinks(
    gateway: GatewayProcess, fake: FakeUpstream, path: str, body: dict[str, Any], headers: bytes, route: str
):
    """The client leaves after sending its request, before the upstream answered anything: the upstream
    request is closed within a second, counted as 499 and as a disconnect, and nothing stays open."""
    fake.behaviour.headers_delay = 30
    before = scrape(gateway)
    sock = raw_post(gateway.port, path, orjson.dumps(body), headers)
    with sock:
        wait_for(lambda: len(fake.exchanges) == 1 and fake.open_requests == 1, what="request upstream")
        assert inflight(gateway, route) == 1
    assert wait_for(lambda: fake.exchanges[0].closed_early, timeout=1, what="upstream closed") < 1
    assert_nothing_left_open(gateway, fake, route)
    after = scrape(gateway)
    model = body["model"]
    assert value(after, "acedata_proxy_requests_total", route=route, model=model, status="499") == (
        value(before, "acedata_proxy_requests_total", route=route, model=model, status="499") + 1
    )
    disconnects = "acedata_proxy_client_disconnects_total"
    assert value(after, disconnects, route=route) == value(before, disconnects, route=route) + 1


def test_disconnect_with_a_pipelined_request_queued(gateway: GatewayProcess, fake: FakeUpstream):
    """A client pipelines a second request behind one the upstream is still thinking about, then leaves: the
    upstream request is closed at once all the same, and the queued request is never forwarded."""
    fake.behaviour.headers_delay = 30
    body = orjson.dumps({"model": "gpt-4.1", "input": "hi"})
    one = (
        "POST /openai/responses HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\n\r\n"
    ).encode() + body
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(one + one)
        wait_for(lambda: len(fake.exchanges) == 1 and fake.open_requests == 1, what="request upstream")
    assert wait_for(lambda: fake.exchanges[0].closed_early, timeout=1, what="upstream closed") < 1
    assert_nothing_left_open(gateway, fake, "openai.responses")
    assert len(fake.exchanges) == 1


def test_disconnect_mid_ndjson_stream(gateway: GatewayProcess, fake: FakeUpstream):
    fake.behaviour.deltas, fake.behaviour.delay = 50, 0.2
    with httpx.stream("POST", gateway.url + "/aichat/conversations", json=AICHAT, headers=NDJSON) as response:
        lines = response.iter_lines()
        assert orjson.loads(next(lines))["delta_answer"] == "Hello! "
    assert wait_for(lambda: fake.exchanges[0].closed_early, timeout=1, what="upstream closed") < 1
    assert not fake.exchanges[0].finished
    assert_nothing_left_open(gateway, fake, "aichat.conversations")


def test_disconnect_after_json_headers_before_the_body(gateway: GatewayProcess, fake: FakeUpstream):
    """A JSON answer whose status line arrived but whose body has not: the client leaves, the upstream is closed."""
    fake.behaviour.stall_after = 0  # the fake sends its headers, then nothing
    with httpx.stream("POST", gateway.url + "/aichat/conversations", json=AICHAT) as response:
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
    assert wait_for(lambda: fake.exchanges[0].closed_early, timeout=1, what="upstream closed") < 1
    assert_nothing_left_open(gateway, fake, "aichat.conversations")


def test_disconnect_while_sending_the_body_forwards_nothing(gateway: GatewayProcess, fake: FakeUpstream):
    body = orjson.dumps({**AICHAT, "question": "x" * 5000})
    before = scrape(gateway)
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        head = "POST /aichat/conversations HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n"
        sock.sendall(head.encode() + f"content-length: {len(body)}\r\n\r\n".encode() + body[:1000])
        wait_for(lambda: inflight(gateway, "aichat.conversations") == 1, what="request under way")
    assert_nothing_left_open(gateway, fake, "aichat.conversations")
    assert fake.exchanges == []
    after = scrape(gateway)
    disconnects = "acedata_proxy_client_disconnects_total"
    assert value(after, disconnects, route="aichat.conversations") == (
        value(before, disconnects, route="aichat.conversations") + 1
    )


def test_many_disconnects_leave_nothing_open(gateway: GatewayProcess, fake: FakeUpstream):
    """Twenty clients leave mid-stream at once: every upstream request closes, the gauge returns to 0."""
    fake.behaviour.deltas, fake.behaviour.delay = 100, 0.05
    sockets = [raw_post(gateway.port, "/openai/responses", orjson.dumps(STREAM)) for _ in range(20)]
    try:
        for sock in sockets:
            assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        assert inflight(gateway, "openai.responses") == 20
    finally:
        for sock in sockets:
            sock.close()
    wait_for(lambda: all(e.closed_early for e in fake.exchanges), timeout=1, what="every upstream closed")
    assert len(fake.exchanges) == 20
    assert_nothing_left_open(gateway, fake, "openai.responses")


# --- upstream silence mid-body, per format (the SSE case is in test_upstream.py) ---------------------------


def test_silence_mid_body_ends_ndjson_with_an_error_line_and_aborts_json(
    make_gateway: GatewayFactory, fake: FakeUpstream
):
    """(timeouts: see upstream settings) After PROXY_READ_TIMEOUT of silence once the answer began: NDJSON gets
    an error line; a JSON body has no error format, so its connection is aborted, never left looking complete."""
    gateway = make_gateway(PROXY_READ_TIMEOUT="0.5")
    fake.behaviour.stall_after = 2
    with httpx.stream("POST", gateway.url + "/aichat/conversations", json=AICHAT, headers=NDJSON) as response:
        lines = [orjson.loads(line) for line in response.iter_lines() if line]
    assert len(lines) == 3
    assert lines[-1]["error"]["code"] == "upstream_timeout"
    fake.behaviour.stall_after = 0  # the JSON answer's status line goes out, its body never does
    with httpx.stream("POST", gateway.url + "/aichat/conversations", json=AICHAT) as response:
        assert response.status_code == 200
        with pytest.raises(httpx.RemoteProtocolError):
            response.read()
    kinds = scrape(gateway)
    assert value(kinds, "acedata_proxy_upstream_errors_total", route="aichat.conversations", kind="timeout") == 2


def test_workers_keep_their_last_log_lines_on_sigterm(make_gateway: GatewayFactory, fake: FakeUpstream):
    """uvicorn re-raises SIGTERM in a worker once it has shut down: lines logged just before must be written."""
    gateway = make_gateway("--workers", "2")
    assert httpx.post(gateway.url + "/openai/responses", json={"model": "gpt-4.1", "input": "hi"}).status_code == 200
    directory = Path(gateway.log().split("workers merge in ", 1)[1].split()[0])
    assert directory.is_dir()
    assert gateway.stop() == 0
    assert gateway.log().count("Finished server process") == 2
    assert not directory.exists()  # the metrics directory it made for its workers goes with it
