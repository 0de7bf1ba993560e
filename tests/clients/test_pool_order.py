"""The http1 client's pool, in-process over real sockets: waiters are served first in, first out (a newcomer
never overtakes them), and a waiter that leaves at the very moment a connection is handed to it passes it on, so
the next waiter gets it instead of a 504 while the pool sits idle. A kept-alive connection the upstream wrote on
while it was idle is never handed out again."""

from __future__ import annotations

import asyncio
import threading

from app.clients import ClientOptions
from app.clients.http1 import Http1Client
from tests.helpers.raw_upstream import JSON_ANSWER, JSON_BODY, RawUpstream, Request

OPTIONS = ClientOptions(connect_timeout=3, first_byte_timeout=3, read_timeout=3, max_connections=1, max_keepalive=1)


async def fetch(client: Http1Client, name: str, served: list[str]) -> None:
    response = await client.request("POST", b"/x", [(b"x-request-id", f"plain:{name}".encode())], b"{}")
    served.append(name)
    while await response.read():
        pass
    await response.aclose()


async def queued(client: Http1Client, count: int) -> None:
    while len([w for w in client.waiting if not w.done()]) < count:  # noqa: ASYNC110 - the pool's own state
        await asyncio.sleep(0)


async def test_waiters_are_served_in_order_and_newcomers_wait_their_turn(upstream: RawUpstream):
    client = Http1Client(upstream.url, OPTIONS)
    served: list[str] = []
    holder = await client.request("POST", b"/x", [], b"{}")
    tasks = []
    for number, name in enumerate("abc", start=1):
        tasks.append(asyncio.create_task(fetch(client, name, served)))
        await queued(client, number)
    while await holder.read():
        pass
    await holder.aclose()  # hands the connection to `a`...
    tasks.append(asyncio.create_task(fetch(client, "newcomer", served)))  # ...which this must not take
    await asyncio.gather(*tasks)
    assert served == ["a", "b", "c", "newcomer"]
    assert (client.in_use, len(client.idle)) == (0, 1)
    await client.aclose()


async def test_a_waiter_leaving_as_the_connection_is_handed_to_it_passes_it_on(upstream: RawUpstream):
    client = Http1Client(upstream.url, OPTIONS)
    served: list[str] = []
    holder = await client.request("POST", b"/x", [], b"{}")
    leaving = asyncio.create_task(fetch(client, "leaving", served))
    await queued(client, 1)
    staying = asyncio.create_task(fetch(client, "staying", served))
    await queued(client, 2)
    while await holder.read():
        pass
    await holder.aclose()  # the connection goes to `leaving`'s future...
    leaving.cancel()  # ...which is cancelled before its task runs again
    await asyncio.wait_for(staying, 2)
    assert leaving.cancelled()
    assert served == ["staying"]
    assert (client.in_use, len(client.idle)) == (0, 1)
    assert not client.waiting
    await client.aclose()


async def test_bytes_sent_to_an_idle_connection_keep_it_from_reuse(upstream: RawUpstream):
    """Bytes the upstream wrote to an idle connection, before the loop saw them, would be read as the next
    request's answer: the pool polls a kept-alive connection before it sends on it again, and drops it."""
    released, written = threading.Event(), threading.Event()

    async def rogue_once_idle(request: Request, writer: asyncio.StreamWriter) -> bool:
        await request.read_body()
        writer.write(JSON_ANSWER)
        await writer.drain()
        await asyncio.get_running_loop().run_in_executor(None, released.wait, 5)  # the upstream's own thread
        writer.write(b"HTTP/1.1 500 Rogue\r\ncontent-length: 5\r\n\r\nrogue")
        await writer.drain()
        written.set()
        return True

    upstream.cases["rogue-once-idle"] = rogue_once_idle
    client = Http1Client(upstream.url, OPTIONS)
    opened = upstream.stats.opened
    try:
        first = await client.request("POST", b"/x", [(b"x-request-id", b"rogue-once-idle:1")], b"{}")
        while await first.read():
            pass
        await first.aclose()  # its connection is idle in the pool now
        released.set()
        # on purpose, this blocks the loop: the rogue bytes wait in the socket, unseen by the connection
        assert written.wait(5), "the upstream did not write"
        response = await client.request("POST", b"/x", [(b"x-request-id", b"plain:1")], b"{}")
        status, body = response.status, b""
        while chunk := await response.read():
            body += chunk
        await response.aclose()
        assert (status, body) == (200, JSON_BODY)
        assert upstream.stats.opened == opened + 2  # a new connection for the second request
    finally:
        await client.aclose()
