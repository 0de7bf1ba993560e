"""What a slow or oversized client may cost, over raw sockets: head size and field count (431), head and body time
(408, then the connection closes), idle connections, admission counted from the body's end, strict framing."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from app.fakes.upstream import FakeUpstream
from tests.helpers import (
    GatewayFactory,
    GatewayProcess,
    RawResponse,
    raw_exchange,
    read_response,
    start_gateway,
    stop_gateway,
)

BODY = b'{"model":"gpt-4.1","input":"hi"}'
HEAD = b"POST /openai/responses HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n"


def post(headers: bytes = b"", head: bytes = HEAD, body: bytes = BODY) -> bytes:
    return head + headers + f"content-length: {len(body)}\r\n\r\n".encode() + body


@pytest.fixture(scope="module")
def quick(tmp_path_factory: pytest.TempPathFactory, gateway_env: dict[str, str]) -> Iterator[GatewayProcess]:
    """A gateway whose clients have half a second for a head (and a body's grace), so the tests wait little."""
    process = start_gateway(tmp_path_factory.mktemp("quick"), {**gateway_env, "PROXY_HEAD_TIMEOUT": "0.5"})
    yield process
    stop_gateway(process)


def connect(gateway: GatewayProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", gateway.port), timeout=10)


def assert_refused(response: RawResponse, fake: FakeUpstream, status: int, code: str) -> None:
    assert response.status == status, response.body
    assert response.json()["error"]["code"] == code
    assert response.header("connection") == "close"
    assert fake.exchanges == []


# --- head size -----------------------------------------------------------------------------------------------


def test_a_head_over_64_kib_is_refused_without_waiting_for_its_end(gateway: GatewayProcess, fake: FakeUpstream):
    """64 KiB and one byte of an unfinished header: the 431 comes without the rest (a 20 MB header got 200)."""
    with connect(gateway) as sock:
        sock.sendall(HEAD + b"x-big: " + b"a" * (64 * 1024))
        assert_refused(read_response(sock), fake, 431, "request_header_fields_too_large")


def test_a_head_just_under_the_limit_is_served(gateway: GatewayProcess, fake: FakeUpstream):
    padding = b"x-pad: " + b"a" * (60 * 1024) + b"\r\n"
    assert raw_exchange(gateway.port, post(padding)).status == 200
    assert len(fake.exchanges) == 1


@pytest.mark.parametrize(("fields", "status"), [(95, 200), (101, 431)])
def test_more_than_100_header_fields_are_refused(gateway: GatewayProcess, fake: FakeUpstream, fields, status):
    headers = b"".join(b"x-f%d: 1\r\n" % i for i in range(fields))  # plus host, content-type, content-length
    assert raw_exchange(gateway.port, post(headers)).status == status


# --- time ----------------------------------------------------------------------------------------------------


def test_a_head_that_does_not_arrive_in_time_gets_408(quick: GatewayProcess, fake: FakeUpstream):
    with connect(quick) as sock:
        sock.sendall(HEAD)  # and never the blank line
        started = time.monotonic()
        assert_refused(read_response(sock), fake, 408, "request_timeout")
        assert time.monotonic() - started < 3


def test_a_connection_that_sends_nothing_is_closed(quick: GatewayProcess):
    with connect(quick) as sock:
        assert sock.recv(1024) == b""  # closed by the gateway, with nothing to answer


def test_an_idle_kept_alive_connection_is_closed(quick: GatewayProcess, fake: FakeUpstream):
    with connect(quick) as sock:
        sock.sendall(post())
        assert read_response(sock).status == 200
        assert sock.recv(1024) == b""


def test_a_body_that_trickles_gets_408(quick: GatewayProcess, fake: FakeUpstream):
    """Ten bytes of a thousand: past the grace plus a second per 16 KiB received, the body is late."""
    with connect(quick) as sock:
        sock.sendall(HEAD + b"content-length: 1000\r\n\r\n" + BODY[:10])
        assert_refused(read_response(sock), fake, 408, "request_timeout")


def test_slow_bodies_do_not_hold_the_inflight_slots(make_gateway: GatewayFactory, fake: FakeUpstream):
    """Three bodies still arriving on a worker admitting two: a complete request still gets in."""
    gateway = make_gateway(PROXY_MAX_INFLIGHT="2").wait_ready()
    slow = [connect(gateway) for _ in range(3)]
    try:
        for sock in slow:
            sock.sendall(HEAD + b"content-length: 1000\r\n\r\n" + BODY[:10])
        assert raw_exchange(gateway.port, post()).status == 200
    finally:
        for sock in slow:
            sock.close()


# --- framing -------------------------------------------------------------------------------------------------

CHUNKED = b"%x\r\n%s\r\n0\r\n\r\n" % (len(BODY), BODY)


@pytest.mark.parametrize(
    "raw",
    [HEAD + b"transfer-encoding: gzip, chunked\r\n\r\n" + CHUNKED,
     HEAD + b"transfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n" + CHUNKED,
     HEAD.replace(b"HTTP/1.1", b"HTTP/1.0") + b"transfer-encoding: chunked\r\n\r\n" + CHUNKED,
     post(head=HEAD.replace(b"host: localhost\r\n", b"")),
     post(head=HEAD + b"host: localhost\r\n"),
     post(head=HEAD.replace(b"application/json", b"application/json; charset=iso-8859-1")),
     post(head=HEAD.replace(b"application/json", b'application/json;charset="utf-16"'))],
    ids=["te-list", "te-twice", "chunked-http-1.0", "no-host", "two-hosts", "latin-1", "utf-16"],
)  # fmt: skip
def test_ambiguous_framing_is_refused(gateway: GatewayProcess, fake: FakeUpstream, raw: bytes):
    assert_refused(raw_exchange(gateway.port, raw), fake, 400, "invalid_request")


@pytest.mark.parametrize(
    "raw",
    [HEAD + b"transfer-encoding: chunked\r\n\r\n" + CHUNKED,
     post(head=HEAD.replace(b"application/json", b"application/json; charset=UTF-8")),
     post(head=HEAD.replace(b"HTTP/1.1\r\nhost: localhost", b"HTTP/1.0"))],
    ids=["chunked", "utf-8", "http-1.0-without-host"],
)  # fmt: skip
def test_plain_framing_is_served(gateway: GatewayProcess, fake: FakeUpstream, raw: bytes):
    assert raw_exchange(gateway.port, raw).status == 200
    assert fake.exchanges[0].body == BODY
