"""Pool exhaustion through the real gateway, each client with a pool of one connection: a request that finds it
taken waits PROXY_CONNECT_TIMEOUT for it, then gets the 504 envelope; once the first is answered, the pool serves
again. (Order among waiters and a waiter leaving at the moment of a hand-over: tests/clients/test_pool_order.py.)"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.helpers import GatewayProcess, wait_for
from tests.helpers.conformance import CLIENTS, exchange, start_gateways, stop_gateways
from tests.helpers.raw_upstream import JSON_ANSWER, RawUpstream, Request

RELEASE = threading.Event()


@pytest.fixture(scope="module", autouse=True)
def registered(upstream: RawUpstream) -> None:
    async def held(request: Request, writer: asyncio.StreamWriter) -> bool:
        await request.read_body()
        await asyncio.to_thread(RELEASE.wait, 10)
        writer.write(JSON_ANSWER)
        await writer.drain()
        return True

    upstream.cases["held"] = held


@pytest.fixture(scope="module")
def gateways(tmp_path_factory: pytest.TempPathFactory, upstream: RawUpstream) -> Iterator[dict[str, GatewayProcess]]:
    running = start_gateways(
        tmp_path_factory.mktemp("pool"), upstream.url, PROXY_MAX_CONNECTIONS="1", PROXY_CONNECT_TIMEOUT="1"
    )
    yield running
    stop_gateways(running)


@pytest.mark.parametrize("kind", CLIENTS)
def test_an_exhausted_pool_answers_504_then_serves_again(gateways, upstream: RawUpstream, kind):
    """One connection, held by a request the upstream sits on: the next waits for it PROXY_CONNECT_TIMEOUT (1 s),
    then gets the 504 envelope; once the first is answered, the pool serves again."""
    gateway: GatewayProcess = gateways[kind]
    release: threading.Event = RELEASE
    release.clear()
    seen = len(upstream.stats.requests)
    with ThreadPoolExecutor(1) as pool:
        holder = pool.submit(exchange, gateway, "held")
        wait_for(lambda: any(r.startswith("held:") for r in upstream.stats.requests[seen:]), timeout=10,
                 what="the held request reaching the upstream")  # fmt: skip
        started = time.monotonic()
        waited = exchange(gateway, "plain")
        assert (waited.status, waited.error_code) == (504, "upstream_timeout"), waited
        assert 0.9 < time.monotonic() - started < 5
        release.set()
        assert holder.result(10).status == 200
    assert exchange(gateway, "plain").status == 200
