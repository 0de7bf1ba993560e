"""Load over real sockets, each test bounded in count and time: many concurrent streams arrive byte for byte,
slow readers do not make the gateway buffer without bound, and a soak of mixed requests leaves its memory flat.

Memory is the gateway process's resident set (/proc/<pid>/status), with one worker so that it is one process.
"""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter

import httpx
import orjson
import pytest

from app.fakes.upstream import FakeUpstream
from tests.helpers import (
    GatewayFactory,
    GatewayProcess,
    cpu_seconds,
    rss_bytes,
    scrape,
    sse_events,
    steady_value,
    value,
    wait_for,
)

pytestmark = pytest.mark.slow  # load and soak: `scripts/test --all`

MiB = 1024 * 1024
STREAM = {"model": "gpt-4.1", "input": "hi", "stream": True}
AICHAT = {"model": "gpt-4o", "question": "hi"}


async def test_200_concurrent_streams_arrive_intact(gateway: GatewayProcess, fake: FakeUpstream):
    fake.behaviour.deltas, fake.behaviour.delay = 20, 0.05  # ~1.4 s a stream, so they overlap
    count = 200
    peak = 0

    async def watch_open() -> None:
        nonlocal peak
        while True:
            peak = max(peak, fake.open_requests)
            await asyncio.sleep(0.01)

    async def one(client: httpx.AsyncClient, index: int) -> tuple[int, bytes]:
        headers = {"x-request-id": f"load-{index}"}
        async with client.stream("POST", "/openai/responses", json=STREAM, headers=headers) as response:
            return response.status_code, b"".join([chunk async for chunk in response.aiter_raw()])

    limits = httpx.Limits(max_connections=count + 10, max_keepalive_connections=0)
    watcher = asyncio.create_task(watch_open())
    started = time.monotonic()
    async with httpx.AsyncClient(base_url=gateway.url, limits=limits, timeout=30) as client:
        results = await asyncio.gather(*(one(client, index) for index in range(count)))
    watcher.cancel()
    elapsed = time.monotonic() - started

    sent = {exchange.header("x-request-id"): exchange for exchange in fake.exchanges}
    assert len(sent) == count
    # the fake marks an exchange finished after its last send returns, which may be after the gateway relayed it
    wait_for(lambda: all(exchange.finished for exchange in sent.values()), what="every upstream exchange finished")
    for index, (status, body) in enumerate(results):
        exchange = sent[f"load-{index}"]
        assert status == 200
        assert body == bytes(exchange.sent), f"stream {index} differs from what the upstream sent"
        assert sse_events(body)[-1][0] == "response.completed"
    assert peak >= count * 3 // 4, f"only {peak} streams were open at once"
    assert elapsed < 15, elapsed
    assert value(scrape(gateway), "acedata_proxy_inflight_requests", route="openai.responses") == 0


def slow_reader(port: int) -> socket.socket:
    """A client with a small receive buffer that sends its request, reads the status line, then stops reading."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)  # before connect: it sets the window
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    body = orjson.dumps(STREAM)
    head = "POST /openai/responses HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n"
    sock.sendall(head.encode() + f"content-length: {len(body)}\r\n\r\n".encode() + body)
    response = read_response_head(sock)
    assert response.startswith(b"HTTP/1.1 200"), response
    return sock


def read_response_head(sock: socket.socket) -> bytes:
    head = b""
    while b"\r\n\r\n" not in head:
        data = sock.recv(1)
        assert data
        head += data
    return head


def test_slow_readers_do_not_grow_gateway_memory(make_gateway: GatewayFactory, fake: FakeUpstream):
    """Twenty clients stop reading while the upstream sends ~8 MiB each as fast as it can. The gateway must hold
    a bounded amount per stream, not the streams: 160 MiB pass, and its memory grows by a fraction of that.

    (Loopback's kernel buffers, not the gateway's memory, take most of what the readers have not read: a gateway
    that read the upstream eagerly into its own buffers would hold half the volume or more.)"""
    fake.behaviour.deltas, fake.behaviour.pad = 200, 8 * 1024  # delta events of ~8 KiB; ~8 MiB a stream
    gateway = make_gateway()
    pid = gateway.proc.pid
    readers = 20
    baseline = rss_bytes(pid)
    sockets = [slow_reader(gateway.port) for _ in range(readers)]
    try:
        wait_for(lambda: len(fake.exchanges) == readers, 5, "every request upstream")
        upstream_sent = steady_value(lambda: sum(len(e.sent) for e in fake.exchanges))
        grown = rss_bytes(pid) - baseline
        assert upstream_sent > 100 * MiB
        assert grown < 40 * MiB, f"the gateway grew by {grown / MiB:.1f} MiB for {upstream_sent / MiB:.0f} MiB"
        assert value(scrape(gateway), "acedata_proxy_inflight_requests", route="openai.responses") == readers
        # a slow reader that finally reads gets its stream, whole
        received = bytearray()
        while not received.endswith(b"\r\n0\r\n\r\n"):
            data = sockets[0].recv(1 << 20)
            assert data, "the stream ended early"
            received += data
        assert b"event: response.completed" in received
    finally:
        for sock in sockets:
            sock.close()
    wait_for(lambda: fake.open_requests == 0, 5, "every upstream request closed")
    route = "openai.responses"
    wait_for(lambda: value(scrape(gateway), "acedata_proxy_inflight_requests", route=route) == 0, 5, "gauge at 0")


MIX = ["json", "sse", "ndjson", "aichat-json", "upstream-500", "cut-sse", "invalid", "unknown-model", "404"]


async def soak_one(client: httpx.AsyncClient, kind: str, index: int) -> int:
    """One request of the mix; streams are read to their end and checked for the event that ends them."""
    rid = {"cut-sse": f"fake-cut-4-{index}", "upstream-500": f"fake-status-500-{index}"}.get(kind, f"soak-{index}")
    headers = {"x-request-id": rid}
    if kind in ("sse", "cut-sse"):
        async with client.stream("POST", "/v1/responses", json=STREAM, headers=headers) as response:
            last = sse_events(await response.aread())[-1][0]
        assert last == ("error" if kind == "cut-sse" else "response.completed")
        return response.status_code
    if kind == "ndjson":
        headers["accept"] = "application/x-ndjson"
        async with client.stream("POST", "/aichat/conversations", json=AICHAT, headers=headers) as response:
            lines = (await response.aread()).splitlines()
        assert len(lines) == 5
        return response.status_code
    requests = {
        "json": ("/openai/responses", {"json": {**STREAM, "stream": False}}),
        "upstream-500": ("/openai/responses", {"json": {**STREAM, "stream": False}}),
        "aichat-json": ("/aichat/conversations", {"json": AICHAT}),
        "invalid": ("/openai/responses", {"content": b'{"model": 1}'}),
        "unknown-model": ("/openai/responses", {"json": {**STREAM, "model": f"m-{index}"}}),
    }
    if kind not in requests:
        return (await client.get(f"/no/such/{index}", headers=headers)).status_code
    path, content = requests[kind]
    return (await client.post(path, headers=headers, **content)).status_code  # type: ignore[arg-type]


async def soak(gateway: GatewayProcess, count: int, start: int) -> Counter[tuple[str, int]]:
    statuses: Counter[tuple[str, int]] = Counter()
    queue = iter(range(start, start + count))

    async def worker(client: httpx.AsyncClient) -> None:
        for index in queue:
            kind = MIX[index % len(MIX)]
            statuses[(kind, await soak_one(client, kind, index))] += 1

    limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
    async with httpx.AsyncClient(base_url=gateway.url, limits=limits, timeout=30) as client:
        await asyncio.gather(*(worker(client) for _ in range(16)))
    return statuses


async def test_soak_of_mixed_requests_keeps_memory_flat(make_gateway: GatewayFactory, fake: FakeUpstream):
    fake.record = False  # thousands of exchanges: the fake need not keep them
    try:
        gateway = make_gateway()
        pid = gateway.proc.pid
        started, cpu = time.monotonic(), cpu_seconds(pid)
        await soak(gateway, 900, 0)  # warm-up: every code path, every label series, the pools
        warm = rss_bytes(pid)
        statuses = await soak(gateway, 2700, 900)
        end = rss_bytes(pid)
        elapsed, cpu = time.monotonic() - started, cpu_seconds(pid) - cpu
    finally:
        fake.record = True
    expected = {"json": 200, "sse": 200, "ndjson": 200, "aichat-json": 200, "upstream-500": 500, "cut-sse": 200,
                "invalid": 400, "unknown-model": 400, "404": 404}  # fmt: skip
    assert statuses == Counter({(kind, status): 300 for kind, status in expected.items()})
    assert end - warm < 5 * MiB, f"rss grew by {(end - warm) / MiB:.1f} MiB over 2700 requests"
    assert cpu < 15, f"the gateway spent {cpu:.1f} s of CPU on 3600 requests"  # ~1 ms each, streams included
    assert elapsed < 90  # nothing waited for a timeout (wall time: the machine may be busy with other work)
    assert fake.open_requests == 0
    metrics = scrape(gateway)
    for route in ("openai.responses", "aichat.conversations", "other"):
        assert value(metrics, "acedata_proxy_inflight_requests", route=route) == 0
    answered = sum(v for (name, _), v in metrics.items() if name == "acedata_proxy_requests_total")
    assert answered >= 3600  # every request counted (plus the start-up health checks)
