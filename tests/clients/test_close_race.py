"""The close race: an upstream that closes the connection right after a response (no `connection: close` to
warn), every time or every few. A reused connection may meet that close with the next request in flight; no byte
of any answer was lost, so no client may see an error: zero 502s, every body whole, sequential and concurrent."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.helpers import GatewayProcess
from tests.helpers.conformance import BODY, CLIENTS, request_id
from tests.helpers.raw_upstream import JSON_ANSWER, JSON_BODY, RawUpstream, Request

SEQUENTIAL = 500
WORKERS, PER_WORKER = 8, 75
TIME_LIMIT = 25  # seconds per run, far above what it takes (a bound, not a wait)


def closing_every(n: int):
    async def handler(request: Request, writer: asyncio.StreamWriter) -> bool:
        await request.read_body()
        writer.write(JSON_ANSWER)
        await writer.drain()
        return _count(writer) % n != 0  # keep the connection unless this was its n-th response

    return handler


_served: dict[int, int] = {}


def _count(writer: asyncio.StreamWriter) -> int:
    _served[id(writer)] = _served.get(id(writer), 0) + 1
    return _served[id(writer)]


@pytest.fixture(scope="module", autouse=True)
def registered(upstream: RawUpstream) -> None:
    upstream.cases["close-after-each"] = closing_every(1)
    upstream.cases["close-every-3rd"] = closing_every(3)


def run(gateway: GatewayProcess, case: str, count: int, deadline: float) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    with httpx.Client(base_url=gateway.url, timeout=10) as client:
        for _ in range(count):
            assert time.monotonic() < deadline, f"not done within {TIME_LIMIT} s: {outcomes}"
            response = client.post(
                "/openai/responses",
                content=BODY,
                headers={"content-type": "application/json", "x-request-id": request_id(case)},
            )
            whole = response.status_code == 200 and response.content == JSON_BODY
            outcomes["whole" if whole else f"{response.status_code} {response.text[:120]}"] += 1
    return outcomes


@pytest.mark.parametrize("kind", CLIENTS)
def test_sequential_requests_on_an_upstream_closing_after_each_response(gateways: dict[str, GatewayProcess], kind):
    outcomes = run(gateways[kind], "close-after-each", SEQUENTIAL, time.monotonic() + TIME_LIMIT)
    assert outcomes == Counter({"whole": SEQUENTIAL})


@pytest.mark.parametrize("kind", CLIENTS)
def test_concurrent_requests_on_an_upstream_closing_every_third_response(gateways: dict[str, GatewayProcess], kind):
    deadline = time.monotonic() + TIME_LIMIT
    with ThreadPoolExecutor(WORKERS) as pool:
        runs = list(pool.map(lambda _: run(gateways[kind], "close-every-3rd", PER_WORKER, deadline), range(WORKERS)))
    assert sum(runs, Counter()) == Counter({"whole": WORKERS * PER_WORKER})
