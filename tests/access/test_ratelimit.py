"""The team gateway over real sockets: client keys, allowlists, RPM/TPM (in-process and through a real Redis
shared by two gateway processes), reload without restart, and what happens when Redis goes away."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from app.access import keys
from app.fakes.upstream import FakeUpstream
from tests.helpers import (
    GatewayFactory,
    GatewayProcess,
    RedisServer,
    SdkFactory,
    assert_no_secrets,
    scrape,
    value,
    wait_for,
)

BODY: dict[str, Any] = {"model": "gpt-4.1", "input": "one two three"}  # the fake reports 3 input + 5 output tokens
Team = tuple[GatewayProcess, dict[str, str]]  # a gateway and its keys, by name


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    return tmp_path / "keys.toml"


def add_key(path: Path, name: str, **limits: object) -> str:
    return keys.create(path, name, **limits)  # type: ignore[arg-type]


def post(gateway: GatewayProcess, key: str | None, body: dict[str, Any] | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {key}"} if key else {}
    return httpx.post(gateway.url + "/openai/responses", json=body or BODY, headers=headers, timeout=30)


@pytest.fixture(scope="module")
def team(make_module_gateway: GatewayFactory, tmp_path_factory: pytest.TempPathFactory) -> Team:
    """One gateway for the tests whose keys file needs nothing else: each test's limits are on keys of its own."""
    path = tmp_path_factory.mktemp("team") / "keys.toml"
    created = {
        "alice": add_key(path, "alice", models=["gpt-4o"]),
        "bob": add_key(path, "bob"),
        "carol": add_key(path, "carol", rpm=3),
        "dave": add_key(path, "dave", tpm=40),
        "ops": add_key(path, "ops", admin=True),
    }
    return make_module_gateway(PROXY_KEYS_FILE=str(path)), created


def test_keys_allowlists_and_typed_sdk_errors(team: Team, fake: FakeUpstream, make_sdk: SdkFactory):
    gateway, created = team
    alice, bob, admin = created["alice"], created["bob"], created["ops"]

    missing = post(gateway, None)
    assert missing.status_code == 401
    assert missing.json()["error"]["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError) as wrong:
        make_sdk(gateway.url + "/v1", "sk-wrong").responses.create(**BODY)
    assert wrong.value.code == "invalid_api_key"
    with pytest.raises(openai.PermissionDeniedError) as denied:
        make_sdk(gateway.url + "/v1", alice).responses.create(**BODY)
    assert denied.value.code == "model_not_allowed"
    assert fake.exchanges == []

    assert make_sdk(gateway.url + "/v1", bob).responses.create(**BODY).status == "completed"
    aichat = httpx.post(gateway.url + "/aichat/conversations", json={"model": "gpt-4o", "question": "hi"},
                        headers={"authorization": f"Bearer {alice}"})  # fmt: skip
    assert aichat.status_code == 200
    assert fake.exchanges[0].header("authorization") != f"Bearer {bob}"  # our token replaced the client key
    for secret in (alice, bob):
        assert_no_secrets(gateway.log(), "the log")
        assert secret not in gateway.log()
        assert secret not in httpx.get(gateway.url + "/metrics", headers={"authorization": f"Bearer {admin}"}).text


def test_rpm_limit_429_with_retry_after_and_headers(team: Team, fake: FakeUpstream, make_sdk: SdkFactory):
    gateway, created = team
    key, admin = created["carol"], created["ops"]
    responses = [post(gateway, key) for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 200]
    assert [r.headers["x-ratelimit-remaining-requests"] for r in responses] == ["2", "1", "0"]
    assert responses[0].headers["x-ratelimit-limit-requests"] == "3"
    refused = post(gateway, key)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limit_exceeded"
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    with pytest.raises(openai.RateLimitError):
        make_sdk(gateway.url + "/v1", key).responses.create(**BODY)
    assert len(fake.exchanges) == 3
    assert value(scrape(gateway, admin), "acedata_proxy_rate_limited_total", key="carol") == 2


def test_tpm_counts_reported_usage_streams_included(team: Team, fake: FakeUpstream):
    gateway, created = team
    key, admin = created["dave"], created["ops"]
    statuses = []
    for index in range(8):
        body = {**BODY, "stream": index % 2 == 1}  # streams count their usage too
        with httpx.stream("POST", gateway.url + "/openai/responses", json=body,
                          headers={"authorization": f"Bearer {key}"}) as response:  # fmt: skip
            response.read()
            statuses.append(response.status_code)
            if response.status_code == 200:
                assert response.headers["x-ratelimit-limit-tokens"] == "40"
    # each request uses 8 tokens: admitted while the minute's count is below 40 -> 0, 8, 16, 24, 32 -> 5 admitted
    assert statuses == [200] * 5 + [429] * 3
    metrics = scrape(gateway, admin)
    tokens = {"route": "openai.responses", "model": "gpt-4.1", "key": "dave"}
    assert value(metrics, "acedata_proxy_tokens_total", **tokens, direction="input") == 15
    assert value(metrics, "acedata_proxy_tokens_total", **tokens, direction="output") == 25


def test_keys_reload_without_restart(make_gateway: GatewayFactory, keys_file: Path, fake: FakeUpstream):
    first = add_key(keys_file, "erin")
    gateway = make_gateway(PROXY_KEYS_FILE=str(keys_file))
    second = add_key(keys_file, "frank")
    wait_for(lambda: post(gateway, second).status_code == 200, 3, "the new key picked up")
    keys.revoke(keys_file, "erin")
    gateway.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: post(gateway, first).status_code == 401, 3, "the revoked key refused")
    log = gateway.log_from_now()
    keys_file.write_text("this is [[ not toml")  # a broken edit keeps the previous keys in force
    # the file is checked for changes when a request arrives, at most once a second: ask until it was read
    wait_for(lambda: post(gateway, second).status_code == 200 and "previous keys stay in force" in log.text(), 5,
             "the broken file refused")  # fmt: skip
    assert post(gateway, second).status_code == 200


def test_invalid_budget_refused_at_start_and_on_a_live_edit(
    make_gateway: GatewayFactory, keys_file: Path, tmp_path: Path, fake: FakeUpstream
):
    key = add_key(keys_file, "hal", budget_tokens=1000)
    good = keys_file.read_text()
    keys_file.write_text(good.replace("budget_tokens = 1000", "budget_tokens = -1000"))
    with pytest.raises(RuntimeError, match="exited") as refused:
        make_gateway(PROXY_KEYS_FILE=str(keys_file))
    [line] = [line for line in str(refused.value).splitlines() if "acedata-proxy:" in line]
    assert "keys[0] (hal): budget_tokens must be a non-negative integer" in line
    assert "Traceback" not in str(refused.value)

    keys_file.write_text(good)
    gateway = make_gateway(PROXY_KEYS_FILE=str(keys_file))
    keys_file.write_text(good.replace('budget_period = "month"', 'budget_period = "fortnight"'))
    gateway.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: "keys[0] (hal): budget_period must be" in gateway.log(), what="the bad edit reported")
    assert "previous keys stay in force" in gateway.log()
    assert post(gateway, key).status_code == 200  # still the previous keys, budget included


def test_public_bind_is_allowed_with_a_keys_file(make_gateway: GatewayFactory, keys_file: Path):
    add_key(keys_file, "gina")
    gateway = make_gateway("--host", "0.0.0.0", PROXY_KEYS_FILE=str(keys_file))
    assert httpx.get(gateway.url + "/healthz").status_code == 200


def test_two_gateways_sharing_redis_admit_exactly_the_rpm(
    make_gateway: GatewayFactory, keys_file: Path, redis_server: RedisServer, fake: FakeUpstream
):
    key = add_key(keys_file, "team", rpm=10)
    env = {"PROXY_KEYS_FILE": str(keys_file), "PROXY_REDIS_URL": redis_server.url}
    gateways = [make_gateway(**env), make_gateway(**env)]
    statuses = [post(gateways[i % 2], key).status_code for i in range(30)]
    assert statuses.count(200) == 10
    assert statuses.count(429) == 20
    assert len(fake.exchanges) == 10
    assert httpx.get(gateways[0].url + "/readyz").status_code == 200


def test_redis_gone_fail_closed_and_fail_open(
    make_gateway: GatewayFactory, keys_file: Path, redis_server: RedisServer, fake: FakeUpstream
):
    limited = add_key(keys_file, "limited", rpm=100)
    unlimited = add_key(keys_file, "unlimited")
    budgeted = add_key(keys_file, "budgeted", budget_tokens=1000)
    env = {"PROXY_KEYS_FILE": str(keys_file), "PROXY_REDIS_URL": redis_server.url}
    closed, opened = make_gateway(**env), make_gateway(**env, PROXY_RATE_LIMIT_FAIL_OPEN="true")
    assert post(closed, limited).status_code == 200
    redis_server.stop()

    refused = post(closed, limited)
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "rate_limiter_unavailable"
    assert post(closed, unlimited).status_code == 200  # keys without limits do not need Redis
    assert post(opened, limited).status_code == 200
    assert post(closed, budgeted).json()["error"]["code"] == "rate_limiter_unavailable"  # budgets follow the limits
    assert post(opened, budgeted).status_code == 200
    ready = httpx.get(closed.url + "/readyz")
    assert ready.status_code == 503
    assert "redis" in " ".join(ready.json()["problems"])
    assert httpx.get(closed.url + "/healthz").status_code == 200
    wait_for(lambda: "fail-closed" in closed.log() and "fail-open" in opened.log(), what="both failures logged")
