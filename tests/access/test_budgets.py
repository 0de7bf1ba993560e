"""Per-key budgets over real sockets, in tokens and in money: enforced across two gateways sharing a real Redis (one
by one and in a concurrent burst, whose overshoot stays within one reservation), kept across a restart with
SQLite, the 429 envelope the SDK sees, unpriced models refused to money budgets, the start-up checks; and the
period arithmetic (fail-closed and fail-open: tests/access/test_ratelimit.py)."""

from __future__ import annotations

import asyncio
import datetime as dt
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import openai
import orjson
import pytest

from app.access import keys
from app.access.budgets import period_of
from app.fakes.upstream import FakeUpstream
from tests.helpers import ROOT, GatewayFactory, GatewayProcess, RedisServer, SdkFactory, scrape, value, wait_for
from tests.helpers.cli import cli_in_process

# the fake reports 3 input + 5 output tokens; reserved at admission: body bytes / 4 + max_output_tokens
BODY: dict[str, Any] = {"model": "gpt-4.1", "input": "one two three", "max_output_tokens": 5}
USED = 8
RESERVED = len(orjson.dumps(BODY)) // 4 + 5


# 1000 per million tokens: each request (8 tokens) costs 0.008, its reservation RESERVED * 0.001
PRICES = 'currency = "USD"\n[[prices]]\nmodel = "gpt-4.1"\ninput = 1000\noutput = 1000\n'
COST = USED * 0.001


def post(gateway: GatewayProcess, key: str, model: str = "gpt-4.1") -> httpx.Response:
    body = {**BODY, "model": model}
    return httpx.post(gateway.url + "/openai/responses", json=body, headers={"authorization": f"Bearer {key}"})


def idle(gateway: GatewayProcess, admin: str) -> bool:
    """Nothing in flight: every request has ended, and so settled what it reserved."""
    return value(scrape(gateway, admin), "acedata_proxy_inflight_requests", route="openai.responses") == 0


def price_file(tmp_path: Path) -> str:
    path = tmp_path / "prices.toml"
    path.write_text(PRICES)
    return str(path)


def seconds_to_midnight() -> float:
    return period_of("day").end - time.time()


def test_budget_holds_across_two_gateways_sharing_redis(
    make_gateway: GatewayFactory, tmp_path: Path, redis_server: RedisServer, fake: FakeUpstream, make_sdk: SdkFactory
):
    path = tmp_path / "keys.toml"
    capped = keys.create(path, "capped", budget_tokens=10 * USED, budget_period="day")
    admin = keys.create(path, "ops", admin=True)
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
    assert value(scrape(gateways[0], admin), "acedata_proxy_budget_remaining_tokens", key="capped") == 0
    assert value(scrape(gateways[1], admin), "acedata_proxy_rate_limited_total", key="capped") == 1


def test_a_concurrent_burst_overshoots_by_at_most_one_reservation(
    make_gateway: GatewayFactory, tmp_path: Path, redis_server: RedisServer, fake: FakeUpstream
):
    path = tmp_path / "keys.toml"
    budget = 100
    burst = keys.create(path, "burst", budget_tokens=budget)
    admin = keys.create(path, "ops", admin=True)
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
    # in flight, reservations (RESERVED each) filled the budget; settled, they gave back what was not used. A
    # request settles once its last byte is sent, so the client may have its answer a moment before: wait for it
    wait_for(lambda: all(idle(gateway, admin) for gateway in gateways), what="the burst's requests settled")
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
    env = {"PROXY_DATA_DIR": str(tmp_path / "data")}
    listing = cli_in_process("keys", "list", "--file", str(path), cwd=tmp_path, env=env).stdout
    [line] = [line for line in listing.splitlines() if line.startswith("steady")]
    assert line.split()[4:7] == [month.label, "40", "40"]  # period, spent, budget


def test_money_budget_holds_across_two_gateways_and_refuses_unpriced_models(
    make_gateway: GatewayFactory, tmp_path: Path, redis_server: RedisServer, fake: FakeUpstream
):
    path = tmp_path / "keys.toml"
    spender = keys.create(path, "spender", budget_amount=10 * COST, budget_period="day")
    reader = keys.create(path, "reader", admin=True)  # /metrics names keys: it needs an admin key
    env = {"PROXY_KEYS_FILE": str(path), "PROXY_REDIS_URL": redis_server.url, "PROXY_PRICES_FILE": price_file(tmp_path)}
    gateways = [make_gateway(**env), make_gateway(**env)]
    unpriced = post(gateways[0], spender, "gpt-4o")
    assert unpriced.status_code == 403
    assert unpriced.json()["error"]["code"] == "model_not_allowed"
    assert "has no price in PROXY_PRICES_FILE" in unpriced.json()["error"]["message"]
    assert [post(gateways[i % 2], spender).status_code for i in range(10)] == [200] * 10
    refused = post(gateways[1], spender)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "budget_exceeded"
    assert refused.json()["error"]["message"] == "Key 'spender' has used its budget of 0.08 USD for this day (UTC)."
    assert abs(int(refused.headers["retry-after"]) - seconds_to_midnight()) <= 5
    assert refused.headers["x-should-retry"] == "false"
    assert len(fake.exchanges) == 10
    spend = sum(value(scrape(g, reader), "acedata_proxy_spend_total", key="spender", model="gpt-4.1") for g in gateways)
    assert spend == pytest.approx(10 * COST)


def test_money_budget_burst_and_restart(make_gateway: GatewayFactory, tmp_path: Path, fake: FakeUpstream):
    path = tmp_path / "keys.toml"
    budget = 100 * 0.001  # the token test's budget, in money: the same bound, scaled
    burst = keys.create(path, "burst", budget_amount=budget, budget_period="month")
    env = {"PROXY_KEYS_FILE": str(path), "PROXY_PRICES_FILE": price_file(tmp_path)}
    gateway = make_gateway(**env)

    async def fire() -> list[int]:
        async with httpx.AsyncClient(headers={"authorization": f"Bearer {burst}"}, timeout=30) as http:
            posts = [http.post(gateway.url + "/openai/responses", json=BODY) for _ in range(40)]
            return [r.status_code for r in await asyncio.gather(*posts)]

    admitted = asyncio.run(fire()).count(200)
    while post(gateway, burst).status_code == 200:
        admitted += 1
    assert budget <= admitted * COST + 1e-9
    assert admitted * COST <= budget + RESERVED * 0.001 + 1e-9
    assert gateway.stop() == 0
    again = make_gateway(**env)
    assert post(again, burst).json()["error"]["code"] == "budget_exceeded"  # the ledger's spend, priced again
    assert len(fake.exchanges) == admitted


def test_start_refuses_a_money_budget_without_prices_and_a_broken_price_file(tmp_path: Path):
    path = tmp_path / "keys.toml"
    keys.create(path, "spender", budget_amount=5)
    broken = tmp_path / "prices.toml"
    broken.write_text("currency = 'USD'\n[[prices]]\nmodel = 'gpt-4.1'\nimput = 2\n")
    for extra, message in [
        ({}, "acedata-proxy: key 'spender' has budget_amount but PROXY_PRICES_FILE is not set"),
        (
            {"PROXY_PRICES_FILE": str(broken)},
            f"acedata-proxy: PROXY_PRICES_FILE={broken}: prices[0] (gpt-4.1): unknown",
        ),
    ]:
        started = subprocess.run(
            [sys.executable, "-m", "app", "serve", "--port", "0"], capture_output=True, text=True, timeout=30,
            env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "PROXY_KEYS_FILE": str(path), **extra},
        )  # fmt: skip
        assert started.returncode != 0
        assert started.stderr.strip().startswith(message)
        assert len(started.stderr.strip().splitlines()) == 1


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
