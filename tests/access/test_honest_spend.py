"""Spend is counted honestly, over real sockets: a stream that reports no usage is charged the text it relayed,
every choice counted; a reservation counts `n`, so a burst of many-image requests stays within a budget's bound;
an absurd output cap is a bounded reservation, never a storage outage; a background response is retrieved only
by its creator (or an admin) and charged once, to its creator, when a retrieval first reports it completed."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from app.access import keys
from app.fakes.upstream import FakeUpstream
from app.proxy.table import IMAGE_OUTPUT_TOKENS
from tests.helpers import GatewayFactory, GatewayProcess, RedisServer, sse_events, wait_for_async, wait_for_report

ARTIST_BUDGET = 20_000
Team = tuple[GatewayProcess, dict[str, str]]  # a gateway and its keys, by name


def key_files(tmp_path: Path, **limits: dict[str, Any]) -> tuple[Path, dict[str, str]]:
    """A keys file with an admin key (`admin`) and one key per entry of `limits` (its options)."""
    path = tmp_path / "keys.toml"
    created = {"admin": keys.create(path, "admin", admin=True)}
    for name, options in limits.items():
        created[name] = keys.create(path, name, None, **options)
    return path, created


def bearer(key: str) -> dict[str, str]:
    return {"authorization": f"Bearer {key}"}


@pytest.fixture(scope="module")
def team(make_module_gateway: GatewayFactory, tmp_path_factory: pytest.TempPathFactory) -> Team:
    """One gateway for the tests that read only their own key's spend (a report with key=)."""
    user, artist = {"tpm": 10_000_000}, {"budget_tokens": ARTIST_BUDGET, "budget_period": "day"}
    path, created = key_files(tmp_path_factory.mktemp("team"), user=user, artist=artist)
    return make_module_gateway(PROXY_KEYS_FILE=str(path)), created


def test_a_stream_without_usage_is_charged_the_text_it_relayed(team: Team, fake: FakeUpstream):
    """OpenAI SDK streams leave include_usage off: the answer reports nothing, so the relayed text is measured,
    every choice of `n` counted (a token a piece at least)."""
    gateway, created = team
    fake.behaviour.deltas = 20
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "n": 64, "stream": True}
    with httpx.stream("POST", gateway.url + "/v1/chat/completions", json=body, headers=bearer(created["user"])) as r:
        assert r.status_code == 200
        text = b"".join(r.iter_bytes())
    chunks = [orjson.loads(data) for _, data in sse_events(text) if data != b"[DONE]"]
    pieces = [c["choices"][0]["delta"].get("content") for c in chunks if c["choices"]]
    relayed = [piece for piece in pieces if piece]
    assert len(relayed) == 64 * 20
    assert all(b'"usage"' not in orjson.dumps(chunk) for chunk in chunks)  # nothing reported
    output = wait_for_report(gateway, created["admin"], 1, key="user")["total"]["output_tokens"]
    size = sum(len(piece.encode()) for piece in relayed)
    assert output == max(len(relayed), math.ceil(size / 4)) >= 64 * 20


def test_a_burst_of_many_image_requests_stays_within_the_budget_bound(team: Team, fake: FakeUpstream):
    """Each request asks for 10 images: it reserves 10 images' worth, so one is admitted where, counting one
    image each, a burst would have spent ten times the budget."""
    gateway, created = team
    body = {"model": "gpt-image-1", "prompt": "a red circle", "n": 10}
    fake.behaviour.headers_delay = 2.0  # the first request holds its reservation while the rest arrive

    async def burst() -> list[int]:
        async with httpx.AsyncClient(headers=bearer(created["artist"]), timeout=30) as http:
            first = asyncio.ensure_future(http.post(gateway.url + "/v1/images/generations", json=body))
            await wait_for_async(lambda: len(fake.exchanges) == 1, 10, "the first request upstream")
            posts = [http.post(gateway.url + "/v1/images/generations", json=body) for _ in range(9)]
            rest = [response.status_code for response in await asyncio.gather(*posts)]
            assert not first.done()  # refused while the first was in flight, not after it settled
            return [(await first).status_code, *rest]

    statuses = asyncio.run(burst())
    assert statuses == [200] + [429] * 9
    reservation = len(orjson.dumps(body)) // 4 + 10 * IMAGE_OUTPUT_TOKENS
    spent = wait_for_report(gateway, created["admin"], 1, key="artist")["total"]["total_tokens"]
    assert 10 * 1056 <= spent <= ARTIST_BUDGET + reservation  # the fake reports 1056 output tokens an image


def test_an_absurd_output_cap_is_a_bounded_reservation_not_an_outage(
    make_gateway: GatewayFactory, tmp_path: Path, redis_server: RedisServer, fake: FakeUpstream
):
    """2**63 - 1 once overflowed Redis' INCRBY, which read as "Redis unreachable": fail-closed, a 503 and an
    outage in the log while /readyz said ready. Clamped, it is an ordinary reservation: while one such request is
    in flight, the next is refused for the key's TPM, not for the storage."""
    path, created = key_files(tmp_path, greedy={"tpm": 5_000, "budget_tokens": 50_000})
    gateway = make_gateway(PROXY_KEYS_FILE=str(path), PROXY_REDIS_URL=redis_server.url)
    fake.behaviour.headers_delay = 1.0  # the first request holds its reservation meanwhile
    body = {"model": "gpt-4.1", "input": "hi", "n": 128, "max_output_tokens": 2**63 - 1}

    async def two() -> tuple[httpx.Response, httpx.Response]:
        async with httpx.AsyncClient(headers=bearer(created["greedy"]), timeout=30) as http:
            first = asyncio.ensure_future(http.post(gateway.url + "/v1/responses", json=body))
            await wait_for_async(lambda: len(fake.exchanges) == 1, 10, "the first request upstream")
            second = await http.post(gateway.url + "/v1/responses", json=body)
            return await first, second

    first, second = asyncio.run(two())
    assert first.status_code == 200
    assert second.status_code == 429
    assert second.json()["error"]["code"] == "rate_limit_exceeded"
    assert httpx.get(gateway.url + "/readyz").status_code == 200
    assert "unreachable" not in gateway.log()


def retrieve(gateway: GatewayProcess, response_id: str, key: str) -> httpx.Response:
    return httpx.get(f"{gateway.url}/v1/responses/{response_id}", headers=bearer(key))


def test_a_background_response_is_its_creators_and_charged_once(
    make_gateway: GatewayFactory, tmp_path: Path, fake: FakeUpstream
):
    path, created = key_files(tmp_path, creator={"budget_tokens": 100_000}, other={})
    gateway = make_gateway(PROXY_KEYS_FILE=str(path))
    body = {"model": "gpt-4.1", "input": "one two three", "background": True}
    queued = httpx.post(gateway.url + "/v1/responses", json=body, headers=bearer(created["creator"]))
    assert queued.status_code == 200
    assert queued.json()["status"] == "queued"
    response_id = queued.json()["id"]

    refused = retrieve(gateway, response_id, created["other"])
    assert refused.status_code == 404
    assert refused.json()["error"]["code"] == "not_found"
    polls = len(fake.exchanges)
    assert polls == 1  # the refusal never reached the upstream
    for key in ("admin", "creator", "creator"):  # the first completed retrieval charges it, to the creator
        answer = retrieve(gateway, response_id, created[key])
        assert answer.status_code == 200
        assert answer.json()["status"] == "completed"
    usage = answer.json()["usage"]
    report = wait_for_report(gateway, created["admin"], 4, by="key")
    rows = {row["key"]: row for row in report["rows"]}
    assert (rows["creator"]["input_tokens"], rows["creator"]["output_tokens"]) == (
        usage["input_tokens"],
        usage["output_tokens"],
    )
    assert rows["creator"]["requests"] == 3  # the creation and two polls
    assert rows["admin"]["total_tokens"] == 0  # a poll is free, whoever makes it
    assert "other" not in rows  # refused before anything left: nothing to record
