"""Clients leaving a slow, silent or non-reading upstream, and requests the gateway gives up on (504): every
upstream connection involved is dropped at once (the upstream sees the close), and the gateway's sockets and
memory come back to where they were, large unsent request bodies included."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.helpers import GatewayProcess, rss_bytes, wait_for
from tests.helpers.conformance import CLIENTS, exchange, request_id
from tests.helpers.raw_upstream import RawUpstream, Request, until_closed

REQUESTS = 10
BIG = b'{"model":"gpt-4.1","input":"' + b"x" * (8 * 1024 * 1024) + b'"}'


def sockets(pid: int) -> int:
    fds = Path(f"/proc/{pid}/fd")
    count = 0
    for fd in fds.iterdir():
        with contextlib.suppress(FileNotFoundError):  # closed while listing
            count += fd.readlink().name.startswith("socket:")
    return count


@pytest.fixture(scope="module", autouse=True)
def registered(upstream: RawUpstream) -> None:
    async def silent(request: Request, writer: asyncio.StreamWriter) -> bool:
        await request.read_body()
        await until_closed(writer, upstream.stats)
        return False

    async def not_reading(request: Request, writer: asyncio.StreamWriter) -> bool:
        await until_closed(writer, upstream.stats)  # the body stays in the socket buffers, then the gateway's
        return False

    async def slow(request: Request, writer: asyncio.StreamWriter) -> bool:
        await request.read_body()
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")
        event = b'data: {"type":"response.output_text.delta","delta":"x"}\n\n'
        writer.write(b"%x\r\n%s\r\n" % (len(event), event))
        await until_closed(writer, upstream.stats)
        return False

    upstream.cases.update({"silent": silent, "not-reading": not_reading, "slow": slow})


def leave_after_upstream_saw(gateway: GatewayProcess, upstream: RawUpstream, case: str, body: bytes) -> None:
    """Send the request, wait until the upstream has it, read what has come (a stream's first event), leave."""
    rid = request_id(case)
    head = (
        f"POST /openai/responses HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n"
        f"accept: text/event-stream\r\nx-request-id: {rid}\r\ncontent-length: {len(body)}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(head + body)
        wait_for(lambda: rid in upstream.stats.requests, timeout=10, what=f"the upstream to receive {rid}")
        if case == "slow":
            assert b"delta" in sock.recv(65536) + sock.recv(65536)


@pytest.mark.slow  # 40 bodies of 8 MB: a load test, in `scripts/test --all`
@pytest.mark.parametrize("kind", CLIENTS)
def test_connections_and_memory_come_back(gateways: dict[str, GatewayProcess], upstream: RawUpstream, kind: str):
    gateway, pid = gateways[kind], gateways[kind].proc.pid
    exchange(gateway, "plain")  # a warm pool: an idle upstream connection
    base_sockets, base_rss, noticed = sockets(pid), rss_bytes(pid), upstream.stats.noticed
    leaving = [("silent", b'{"model":"gpt-4.1","input":"hi"}'), ("slow", b'{"model":"gpt-4.1","input":"hi"}')]
    leaving += [("not-reading", BIG)] * REQUESTS
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda job: leave_after_upstream_saw(gateway, upstream, *job), leaving))
        # the gateway gives up itself: no answer within the first-byte timeout (2 s), a 504
        timeouts = list(pool.map(lambda _: exchange(gateway, "not-reading", BIG).status, range(REQUESTS)))
    assert timeouts == [504] * REQUESTS
    expected = noticed + len(leaving) + REQUESTS
    wait_for(lambda: upstream.stats.noticed == expected, timeout=10, what="the upstream to see every close")
    wait_for(lambda: sockets(pid) <= base_sockets, timeout=10, what=f"the gateway's sockets back at {base_sockets}")
    grown = rss_bytes(pid) - base_rss
    assert grown < 40 * 1024 * 1024, f"the gateway kept {grown / 2**20:.0f} MB after {2 * REQUESTS} bodies of 8 MB"
    assert exchange(gateway, "plain").status == 200
