"""Cancellation safety: a request cancelled at each point where it waits (for a connection, for the connect,
for the answer, for each body chunk, on release) leaves the pool consistent and usable, and no connection behind.

The sweep cancels the request at its k-th suspension (the k-th future it waits on that outlasts a turn of the
loop), for k = 0, 1, 2, ... until the request finishes before its cancellation comes, so every such suspension
point is hit, in both pool states that matter: a new connection to open, and an idle one to reuse. (httpx waits
through anyio, whose checkpoints are not futures: fewer of its points are seen.)"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from app.clients import ClientOptions, UpstreamClient
from app.clients.http1 import Http1Client
from app.clients.httpx_client import HttpxClient
from tests.helpers import wait_for_async
from tests.helpers.conformance import CLIENTS
from tests.helpers.raw_upstream import JSON_BODY, RawUpstream, Request

OPTIONS = ClientOptions(connect_timeout=3, first_byte_timeout=3, read_timeout=3, max_connections=2, max_keepalive=2)
MAX_POINTS = 100


async def whole_request(client: UpstreamClient, case: str) -> bytes:
    response = await client.request("POST", b"/x", [(b"x-request-id", f"{case}:0".encode())], b'{"model":"m"}')
    try:
        chunks = []
        while chunk := await response.read():
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        await response.aclose()


async def cancelled_after(client: UpstreamClient, case: str, points: int) -> bool:
    """Run a request and cancel it at its `points`-th suspension (each new future it waits on); True when it
    finished before that. The loop is turned meanwhile, so I/O and the upstream (another thread) go on."""
    task = asyncio.create_task(whole_request(client, case))
    seen, waiting_on = 0, None
    while not task.done():
        await asyncio.sleep(0)
        future = task._fut_waiter  # type: ignore[attr-defined]  # what the task is suspended on
        if future is not None and future is not waiting_on:
            waiting_on, seen = future, seen + 1
            if seen > points:
                break
    if task.done():
        assert task.result() == JSON_BODY
        return True
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    return False


@pytest.fixture(scope="module")
def upstream() -> Iterator[RawUpstream]:
    """An upstream of this module's own: its count of open connections is this module's clients' alone (the
    session's upstream also serves the conformance gateways, whose pools keep connections open)."""
    server = RawUpstream().start()
    yield server
    server.stop()


async def pool_serves_in_full(client: UpstreamClient) -> None:
    """As many requests at once as the pool allows all get their own connection and finish: a slot a cancelled
    request kept counted as in use would leave one of them waiting out the pool timeout (an UpstreamFailure)."""
    answers = await asyncio.gather(*(whole_request(client, "plain") for _ in range(OPTIONS.max_connections)))
    assert answers == [JSON_BODY] * OPTIONS.max_connections


@pytest.fixture(scope="module", autouse=True)
def registered(upstream: RawUpstream) -> None:
    async def dribbling(request: Request, writer: asyncio.StreamWriter) -> bool:
        """The answer in pieces, so that reading it waits several times."""
        await request.read_body()
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n")
        for piece in (JSON_BODY[:10], JSON_BODY[10:20], JSON_BODY[20:]):
            await asyncio.sleep(0.001)
            writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        return True

    upstream.cases["dribbling"] = dribbling


@pytest.mark.parametrize("kind", CLIENTS)
@pytest.mark.parametrize("warm", [False, True], ids=["new-connection", "idle-connection"])
async def test_cancelled_at_every_suspension_point(upstream: RawUpstream, kind: str, warm: bool):
    client: UpstreamClient = (
        Http1Client(upstream.url, OPTIONS) if kind == "http1" else HttpxClient(upstream.url, OPTIONS)
    )
    opened_before = upstream.stats.opened
    try:
        for points in range(MAX_POINTS):
            if warm:
                assert await whole_request(client, "plain") == JSON_BODY  # leaves an idle connection to reuse
            if await cancelled_after(client, "dribbling", points):
                break
            # the pool still serves in full, and a cancelled request's connection is never handed out half-read
            await pool_serves_in_full(client)
            # and keeps no more connections than it may: the ones cancelled were closed (seen once the upstream
            # reads their end)
            await wait_for_async(lambda: upstream.stats.open <= OPTIONS.max_connections, what="cancelled closed")
        else:
            pytest.fail(f"the request did not finish within {MAX_POINTS} suspensions")
        # at least the wait for the answer; how many more depends on how the bytes happen to arrive (pieces that
        # land together cost one wait), so a busy machine sees fewer: a lower bound would make the test flaky
        assert points >= 1, "the sweep met no suspension: the request never waited"
    finally:
        await client.aclose()

    # nothing left behind: every connection the sweep opened is closed, or idle in the pool (now closed)
    await wait_for_async(lambda: upstream.stats.open == 0, what="every connection closed")
    assert upstream.stats.opened > opened_before
