"""The usage ledger over real sockets: exact spend after mixed load on two gateways sharing a real Redis, the
report matching the upstream's reported usage token for token, a worker killed with SIGKILL mid-load (SQLite
shared by two processes), and Redis going away while the ledger buffers."""

from __future__ import annotations

import asyncio
import json
import math
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import orjson
import pytest

from app.access import keys
from app.fakes.upstream import FakeUpstream
from app.ledger import FLUSH_INTERVAL
from tests.helpers import ROOT, GatewayFactory, GatewayProcess, RedisServer, admin_report, wait_for, wait_for_report


def reported_usage(sent: bytes) -> tuple[int, int] | None:
    """The usage the fake upstream put on the wire, read independently of the gateway's own parser."""
    if sent.startswith(b"{"):
        usage = orjson.loads(sent).get("usage")
    else:
        events = [line[6:] for line in sent.split(b"\n") if line.startswith(b"data: {")]
        completed = [orjson.loads(e) for e in events if b'"response.completed"' in e]
        usage = completed[0]["response"]["usage"] if completed else None
    return (usage["input_tokens"], usage["output_tokens"]) if usage else None


def text_tokens(sent: bytes, streamed: bool) -> int:
    """The generated text of an answer, counted from the answer itself: aichat's `answer`, or a Responses stream's
    text deltas."""
    if not streamed:
        pieces = [orjson.loads(sent)["answer"]]
    else:
        events = [orjson.loads(line[6:]) for line in sent.split(b"\n") if line.startswith(b"data: {")]
        pieces = [event["delta"] for event in events if event["type"] == "response.output_text.delta"]
    size = sum(len(piece.encode()) for piece in pieces)
    return max(len([piece for piece in pieces if piece]), math.ceil(size / 4))


def mixed_request(index: int) -> tuple[str, bytes, dict[str, str]]:
    """Five kinds in turn: Responses JSON, Responses stream, aichat (no usage: its input estimate and the text it
    answered count), an upstream 500 (no tokens), and a stream the upstream cuts before its usage (likewise)."""
    kind = index % 5
    words = " ".join(["word"] * (index % 7 + 1))
    headers = {"x-request-id": f"mixed-{index}"}
    body: dict[str, object]
    if kind == 2:
        body = {"model": "gpt-4o", "question": words}
        return "/aichat/conversations", orjson.dumps(body), headers
    body = {"model": "gpt-4.1" if index % 2 else "gpt-4o", "input": words, "stream": kind in (1, 4)}
    if kind == 3:
        headers["x-request-id"] = f"fake-status-500-{index}"
    if kind == 4:
        headers["x-request-id"] = f"fake-cut-1-{index}"
        body["max_output_tokens"] = 50
    return "/openai/responses", orjson.dumps(body), headers


def expected_tokens(index: int, body: bytes, fake: FakeUpstream) -> tuple[int, int]:
    kind = index % 5
    if kind == 3:
        return 0, 0
    request_id = f"fake-cut-1-{index}" if kind == 4 else f"mixed-{index}"
    [exchange] = [e for e in fake.exchanges if e.header("x-request-id") == request_id]
    if kind in (2, 4):  # nothing reported: body bytes / 4, and the text relayed (a token a piece, 4 bytes a token)
        return len(body) // 4, text_tokens(bytes(exchange.sent), kind == 4)
    usage = reported_usage(bytes(exchange.sent))
    assert usage is not None
    return usage


async def drive(urls: list[str], key_of: list[str], count: int, concurrency: int = 16) -> list[int]:
    """`count` mixed requests, spread over the gateways and keys, `concurrency` at a time; their statuses."""
    gate = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=30) as http:

        async def one(index: int) -> int:
            path, body, headers = mixed_request(index)
            headers = {**headers, "authorization": f"Bearer {key_of[index % len(key_of)]}"}
            headers["content-type"] = "application/json"
            async with gate:
                response = await http.post(urls[index % len(urls)] + path, content=body, headers=headers)
                return response.status_code

        return list(await asyncio.gather(*(one(i) for i in range(count))))


def cli_usage(*args: str, **env: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "app", "usage", *args], capture_output=True, text=True, timeout=30,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", **env},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.slow  # 1,000 requests: a load test, in `scripts/test --all`
def test_exact_spend_of_mixed_load_on_two_gateways_sharing_redis(
    make_gateway: GatewayFactory, tmp_path: Path, redis_server: RedisServer, fake: FakeUpstream
):
    path = tmp_path / "keys.toml"
    members = [keys.create(path, name) for name in ("alpha", "beta", "gamma")]
    admin = keys.create(path, "lead", admin=True)
    env = {"PROXY_KEYS_FILE": str(path), "PROXY_REDIS_URL": redis_server.url}
    gateways = [make_gateway(**env), make_gateway(**env)]
    sent = 1000
    statuses = asyncio.run(drive([g.url for g in gateways], members, sent))
    assert Counter(statuses) == {200: 800, 500: 200}

    expected: dict[str, list[int]] = {name: [0, 0, 0] for name in ("alpha", "beta", "gamma")}
    for index in range(sent):
        name = ("alpha", "beta", "gamma")[index % 3]
        tokens = expected_tokens(index, mixed_request(index)[1], fake)
        for column, amount in enumerate((1, *tokens)):
            expected[name][column] += amount
    report = wait_for_report(gateways[1], admin, sent, by="key")
    got = {line["key"]: [line["requests"], line["input_tokens"], line["output_tokens"]] for line in report["rows"]}
    assert got == expected
    assert report["total"]["total_tokens"] == sum(e[1] + e[2] for e in expected.values())

    by_model = admin_report(gateways[0], admin, by="model")
    assert {line["model"] for line in by_model["rows"]} == {"gpt-4.1", "gpt-4o"}
    assert by_model["total"] == report["total"]
    cli = json.loads(cli_usage("--by", "key", "--format", "json", PROXY_REDIS_URL=redis_server.url))
    assert cli["total"] == report["total"]
    assert cli["rows"] == report["rows"]


@pytest.mark.slow  # a load until the kill: in `scripts/test --all`
def test_a_worker_killed_mid_load_loses_at_most_its_last_flush_interval(
    make_gateway: GatewayFactory, tmp_path: Path, fake: FakeUpstream
):
    """Two gateway processes on one SQLite file (as `--workers 2` are); one is SIGKILLed mid-load."""
    path = tmp_path / "keys.toml"
    doomed_key, survivor_key = keys.create(path, "doomed"), keys.create(path, "survivor")
    doomed, survivor = make_gateway(PROXY_KEYS_FILE=str(path)), make_gateway(PROXY_KEYS_FILE=str(path))
    database = tmp_path / "data" / "ledger.sqlite3"
    body = {"model": "gpt-4.1", "input": "one two three"}
    done: dict[str, list[float]] = {"doomed": [], "survivor": []}
    stop = threading.Event()

    def load(gateway: GatewayProcess, key: str, name: str) -> None:
        with httpx.Client(headers={"authorization": f"Bearer {key}"}, timeout=10) as http:
            for _ in range(2000):  # bounded: the test stops it long before
                if stop.is_set():
                    return
                try:
                    response = http.post(gateway.url + "/openai/responses", json=body)
                except httpx.TransportError:
                    return  # the gateway was killed under this request
                assert response.status_code == 200
                done[name].append(time.monotonic())

    threads = [threading.Thread(target=load, args=args) for args in
               [(doomed, doomed_key, "doomed"), (survivor, survivor_key, "survivor")]]  # fmt: skip
    for thread in threads:
        thread.start()
    # seconds of load written, more in flight
    wait_for(lambda: recorded(database, "doomed") >= 300, timeout=30, what="the load getting going")
    doomed.proc.send_signal(signal.SIGKILL)
    killed_at = time.monotonic()
    doomed.proc.wait(10)
    more = len(done["survivor"]) + 20
    # the other process keeps serving and writing
    wait_for(lambda: len(done["survivor"]) >= more, timeout=30, what="the survivor serving on")
    stop.set()
    for thread in threads:
        thread.join(30)
    assert survivor.stop() == 0  # SIGTERM: its last batch is written on the way out

    assert recorded(database, "survivor") == len(done["survivor"])  # nothing lost by a clean stop
    answered = len(done["doomed"])
    kept = recorded(database, "doomed")
    lost = answered - kept
    last_interval = sum(1 for t in done["doomed"] if t > killed_at - FLUSH_INTERVAL - 1.0)  # 1 s of slack
    print(f"SIGKILL: {answered} answered, {kept} in the ledger, {lost} lost; {last_interval} in the last ~2 s")
    assert 0 <= lost <= last_interval
    assert kept >= 300


def recorded(database: Path, key: str) -> int:
    if not database.exists():
        return 0
    with sqlite3.connect(f"file:{database}?mode=ro", uri=True) as db:
        query = "SELECT COALESCE(SUM(requests), 0) FROM usage WHERE key = ?"
        return int(db.execute(query, (key,)).fetchone()[0])


def test_ledger_buffers_while_redis_is_away_and_writes_when_it_is_back(
    make_gateway: GatewayFactory, tmp_path: Path, redis_server: RedisServer, fake: FakeUpstream
):
    path = tmp_path / "keys.toml"
    member, admin = keys.create(path, "member"), keys.create(path, "lead", admin=True)
    gateway = make_gateway(PROXY_KEYS_FILE=str(path), PROXY_REDIS_URL=redis_server.url)
    redis_server.stop()
    headers = {"authorization": f"Bearer {member}"}
    for _ in range(10):  # a key without limits or budget does not need Redis to be served
        response = httpx.post(gateway.url + "/openai/responses", json={"model": "gpt-4.1", "input": "a b"},
                              headers=headers)  # fmt: skip
        assert response.status_code == 200
    wait_for(lambda: "usage ledger" in " ".join(httpx.get(gateway.url + "/readyz").json().get("problems", [])),
             timeout=15, what="/readyz reporting the ledger")  # fmt: skip
    assert httpx.get(gateway.url + "/readyz").json()["ledger"]["pending_rows"] == 1
    redis_server.start()  # an empty Redis on the same port: the buffered rows are written to it
    report = wait_for_report(gateway, admin, 10)
    assert report["total"] == {"requests": 10, "input_tokens": 20, "output_tokens": 50, "total_tokens": 70,
                               "cost": None, "unpriced_requests": 10}  # fmt: skip
    assert "usage ledger: writing again" in gateway.log()
