"""Per-key token budgets over real sockets: enforced across two gateways sharing a real Redis (one by one and in
a concurrent burst, whose overshoot stays within one reservation), kept across a restart with SQLite, the
429 envelope the SDK sees; and the period arithmetic (fail-closed and fail-open: tests/access/test_ratelimit.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import orjson
import pytest

from app.access import keys
from app.access.budgets import period_of
from app.fakes.upstream import FakeUpstream
from tests.helpers import ROOT, GatewayFactory, GatewayProcess, RedisServer, SdkFactory, scrape, value

# the fake reports 3 input + 5 output tokens; reserved at admission: body bytes / 4 + max_output_tokens
BODY = {"model": "gpt-4.1", "input": "one two three", "max_output_tokens": 5}
USED = 8
RESERVED = len(orjson.dumps(BODY)) // 4 + 5


def post(gateway: GatewayProcess, key: str) -> httpx.Response:
    return httpx.post(gateway.url + "/openai/responses", json=BODY, headers={"authorization": f"Bearer {key}"})


def seconds_to_midnight() -> float:
    return period_of("day").end - time.time()


def test_budget_holds_across_two_gateways_sharing_redis(
    make_gateway: GatewayFactory, tmp_path: Path, redis_server: RedisServer, fake: FakeUpstream, make_sdk: SdkFactory
):
    path = tmp_path / "keys.toml"
    capped = keys.create(path, "capped", budget_tokens=10 * USED, budget_period="day")
    env = {"PROXY_KEYS_FILE": str(path), "PROXY_REDIS_URL": redis_server.url}
    gateways = [make_gateway(**env), make_gateway(**env)]
    statuses = [post(gateways[i % 2], capped).status_code for i in range(10)]
    assert statuses == [200] * 10  # admitted while the day's count (8 per request) is below 80
    refused = post(gateways[0], capped)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "budget_exceeded"
    assert refused.json()["error"]["type"] == "insufficient_quota"
    assert abs(int(refused.headers["retry-after"]) - seconds_to_midnight()) <= 5
    assert refused.headers["x-should-retry"] == "false"  # the OpenAI SDKs do not retry it
    with pytest.raises(openai.RateLimitError) as raised:
        make_sdk(gateways[1].url + "/v1", capped).responses.create(**BODY)
    assert raised.value.code == "budget_exceeded"
    assert len(fake.exchanges) == 10
    assert value(scrape(gateways[0]), "acedata_proxy_budget_remaining_tokens", key="capped") == 0
    assert value(scrape(gateways[1]), "acedata_proxy_rate_limited_total", key="capped") == 1


def test_a_concurrent_burst_overshoots_by_at_most_one_reservation(
    make_gateway: GatewayFactory, tmp_path: Path, redis_server: RedisServer, fake: FakeUpstream
):
    path = tmp_path / "keys.toml"
    budget = 100
    burst = keys.create(path, "burst", budget_tokens=budget)
    env = {"PROXY_KEYS_FILE": str(path), "PROXY_REDIS_URL": redis_server.url}
    gateways = [make_gateway(**env), make_gateway(**env)]

    async def fire() -> list[int]:
        async with httpx.AsyncClient(headers={"authorization": f"Bearer {burst}"}, timeout=30) as http:
            posts = [http.post(gateways[i % 2].url + "/openai/responses", json=BODY) for i in range(40)]
            return [r.status_code for r in await asyncio.gather(*posts)]

    statuses = asyncio.run(fire())
    admitted = statuses.count(200)
    assert statuses.count(429) == 40 - admitted
    assert admitted >= 1
    assert admitted * USED <= budget + RESERVED  # the bound docs/team-gateway.md states
    # in flight, reservations (RESERVED each) filled the budget; settled, they gave back what was not used
    for index in range(budget // USED + 1):
        if post(gateways[index % 2], burst).status_code == 429:
            break
        admitted += 1
    assert budget <= admitted * USED <= budget + RESERVED


def test_restart_keeps_the_periods_spend(make_gateway: GatewayFactory, tmp_path: Path, fake: FakeUpstream):
    path = tmp_path / "keys.toml"
    steady = keys.create(path, "steady", budget_tokens=5 * USED, budget_period="month")
    gateway = make_gateway(PROXY_KEYS_FILE=str(path))
    assert [post(gateway, steady).status_code for _ in range(6)] == [200] * 5 + [429]
    assert gateway.stop() == 0
    again = make_gateway(PROXY_KEYS_FILE=str(path))
    refused = post(again, steady)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "budget_exceeded"
    month = period_of("month")
    assert abs(int(refused.headers["retry-after"]) - (month.end - time.time())) <= 5
    assert len(fake.exchanges) == 5
    listing = subprocess.run(
        [sys.executable, "-m", "app", "keys", "list", "--file", str(path)], capture_output=True, text=True,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "PROXY_DATA_DIR": str(tmp_path / "data")}, timeout=30,
    ).stdout  # fmt: skip
    [line] = [line for line in listing.splitlines() if line.startswith("steady")]
    assert line.split()[4:7] == [month.label, "40", "40"]  # period, spent, budget


@pytest.mark.parametrize(
    ("kind", "now", "label", "start", "end"),
    [
        ("day", "2026-11-25T23:59:59", "2026-11-25", "2026-11-25", "2026-11-26"),
        ("month", "2026-12-31T12:00:00", "2026-12", "2026-12-01", "2027-01-01"),
        ("month", "2028-02-10T00:00:00", "2028-02", "2028-02-01", "2028-03-01"),
    ],
)
def test_periods_are_utc_days_and_months(kind: str, now: str, label: str, start: str, end: str):
    def utc(text: str) -> float:
        return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()

    period = period_of(kind, utc(now))
    assert (period.label, period.start, period.end) == (label, utc(start), utc(end))
