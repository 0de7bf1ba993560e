"""POST /v1/messages and /v1/messages/count_tokens over real sockets, as Claude Code and the anthropic SDKs call them:
byte-identical streams, the headers that cross and the credentials that do not, Anthropic's error envelope for
what the gateway refuses, usage in the ledger, metrics, TPM and budgets token for token, free count_tokens, glob
allowlists, both shapes of GET /v1/models, and HEAD /. (The anthropic SDK's own calls: tests/compat.)"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest

from app.access import keys
from app.fakes.upstream import FakeUpstream
from tests.helpers import (
    UPSTREAM_TOKEN,
    GatewayProcess,
    scrape,
    sse_events,
    start_gateway,
    stop_gateway,
    value,
    wait_for,
)

VERSION = {"anthropic-version": "2023-06-01"}
HELLO = [{"role": "user", "content": "Say hello"}]
BODY = {"model": "claude-sonnet-4-5-20250929", "max_tokens": 64, "messages": HELLO}
TPM = 1000
KEYS: dict[str, dict[str, Any]] = {
    "member": {},
    "lead": {"admin": True},
    "narrow": {"models": ["claude-haiku-*", "gpt-4o*"]},
    "rpm1": {"rpm": 1},
    "tpm": {"tpm": TPM},
    "budget": {"budget_tokens": 9, "budget_period": "day"},
}


class Keyed:
    def __init__(self, process: GatewayProcess, plaintext: dict[str, str]):
        self.process, self.plaintext = process, plaintext
        self.url = process.url

    def post(self, path: str, body: Any, key: str | None = "member", **headers: str) -> httpx.Response:
        sent = {**VERSION, **headers} | ({"x-api-key": self.plaintext[key]} if key else {})
        content = body if isinstance(body, bytes) else orjson.dumps(body)
        return httpx.post(self.url + path, content=content, headers=sent, timeout=30)

    def get(self, path: str, key: str = "member", **headers: str) -> httpx.Response:
        return httpx.get(self.url + path, headers={"x-api-key": self.plaintext[key], **headers}, timeout=30)


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory, gateway_env: dict[str, str]) -> Iterator[Keyed]:
    """A team gateway (keys file, limits, the ledger) in front of the session's fake upstream."""
    workdir = tmp_path_factory.mktemp("messages")
    path = workdir / "keys.toml"
    plaintext = {name: keys.create(path, name, **options) for name, options in KEYS.items()}
    env = {**gateway_env, "PROXY_KEYS_FILE": str(path), "PROXY_MAX_REQUEST_BYTES": "4096"}
    process = start_gateway(workdir, env)
    yield Keyed(process, plaintext)
    stop_gateway(process)


def anthropic_error(response: httpx.Response, status: int, kind: str) -> str:
    """The message of an error in Anthropic's envelope, after checking its status and type."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"type", "error"}
    assert body["type"] == "error"
    assert body["error"]["type"] == kind
    return str(body["error"]["message"])


def sent_usage(exchange: Any) -> tuple[int, int]:
    """(input, output) as the fake upstream reported them: a body's usage, or a stream's message_start (input
    with cache counts) and last message_delta (output)."""
    sent = bytes(exchange.sent)
    if not sent.startswith(b"event:"):
        usage = orjson.loads(sent)["usage"]
    else:
        events = [orjson.loads(data) for _, data in sse_events(sent)]
        usage = {**events[0]["message"]["usage"], "output_tokens": events[-2]["usage"]["output_tokens"]}
    cached = usage.get("cache_creation_input_tokens", 0) + usage.get("cache_read_input_tokens", 0)
    return usage["input_tokens"] + cached, usage["output_tokens"]


def test_stream_is_byte_identical_unbuffered_with_claude_code_headers(keyed: Keyed, fake: FakeUpstream):
    fake.behaviour.deltas, fake.behaviour.delay = 6, 0.2
    body = orjson.dumps({**BODY, "stream": True, "thinking": {"type": "disabled"}, "x_extra": [1, 2]})
    headers = {
        **VERSION, "anthropic-beta": "claude-code-20250219,fine-grained-tool-streaming-2025-05-14",
        "x-claude-code-session-id": "3f1c-session", "user-agent": "claude-cli/2.1.328 (external, cli)",
        "x-api-key": keyed.plaintext["member"], "cookie": "session=abc",
    }  # fmt: skip
    arrivals: list[float] = []
    received = b""
    with httpx.stream("POST", keyed.url + "/v1/messages?beta=true", content=body, headers=headers) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        for chunk in response.iter_raw():
            arrivals.append(time.monotonic())
            received += chunk

    [exchange] = fake.exchanges
    assert (exchange.path, exchange.query, exchange.body) == ("/v1/messages", b"beta=true", body)
    assert received == bytes(exchange.sent)
    assert [name for name, _ in sse_events(received)][:3] == ["message_start", "content_block_start", "ping"]
    assert arrivals[-1] - arrivals[0] >= 1.0  # six events 0.2 s apart arrived as they were sent, not at the end
    for name in ("anthropic-version", "anthropic-beta", "x-claude-code-session-id", "user-agent"):
        assert exchange.header(name) == headers[name]
    assert exchange.header("authorization") == f"Bearer {UPSTREAM_TOKEN}"
    assert exchange.header("x-api-key") is None
    assert exchange.header("cookie") is None


def test_json_message_with_bearer_key_and_a_model_newer_than_the_catalog(keyed: Keyed, fake: FakeUpstream):
    body = orjson.dumps({**BODY, "model": "claude-opus-5-5"})
    response = httpx.post(
        keyed.url + "/v1/messages", content=body, headers={"authorization": f"Bearer {keyed.plaintext['member']}"}
    )
    assert response.status_code == 200
    assert response.json()["content"][0]["text"] == "Hello! This answer streams from"
    [exchange] = fake.exchanges
    assert exchange.body == body
    assert response.content == bytes(exchange.sent)
    assert exchange.header("authorization") == f"Bearer {UPSTREAM_TOKEN}"


def test_usage_reaches_ledger_and_metrics_token_for_token(keyed: Keyed, fake: FakeUpstream):
    """Input counts cache writes and reads; output is the last message_delta's; per key and model."""
    system = [{"type": "text", "text": "You are terse. " * 20, "cache_control": {"type": "ephemeral"}}]
    cached = {**BODY, "model": "claude-haiku-4-5-20251001", "system": system}
    assert keyed.post("/v1/messages", cached, key="lead").status_code == 200
    assert (
        keyed.post("/v1/messages", {**cached, "model": "claude-opus-5-5", "stream": True}, key="lead").status_code
        == 200
    )
    json_usage, stream_usage = (sent_usage(exchange) for exchange in fake.exchanges)
    assert b'"cache_read_input_tokens"' in bytes(fake.exchanges[1].sent)

    def report() -> dict[str, Any]:
        return keyed.get("/admin/usage?key=lead&by=model", key="lead").json()  # type: ignore[no-any-return]

    wait_for(lambda: report()["total"]["requests"] >= 2, timeout=10, what="the ledger's 2 requests")
    rows = {row["model"]: (row["input_tokens"], row["output_tokens"]) for row in report()["rows"]}
    assert rows == {"claude-haiku-4-5-20251001": json_usage, "claude-opus-5-5": stream_usage}
    samples = scrape(keyed.process, keyed.plaintext["lead"])  # an admin key: /metrics names keys
    labels = {"route": "anthropic.messages", "key": "lead"}
    for model, usage in [("claude-haiku-4-5-20251001", json_usage), ("claude-*", stream_usage)]:  # bounded label
        assert value(samples, "acedata_proxy_tokens_total", model=model, direction="input", **labels) == usage[0]
        assert value(samples, "acedata_proxy_tokens_total", model=model, direction="output", **labels) == usage[1]


def test_tpm_reserves_max_tokens_and_settles_to_reported_usage(keyed: Keyed, fake: FakeUpstream):
    body = orjson.dumps({**BODY, "max_tokens": 300})
    reserved = len(body) // 4 + 300
    first = keyed.post("/v1/messages", body, key="tpm")
    assert int(first.headers["x-ratelimit-remaining-tokens"]) == TPM - reserved
    used = sum(sent_usage(fake.exchanges[0]))
    second = keyed.post("/v1/messages", body, key="tpm")
    if int(second.headers["x-ratelimit-remaining-tokens"]) != TPM - used - reserved:  # a minute turned over
        second = keyed.post("/v1/messages", body, key="tpm")
        assert int(second.headers["x-ratelimit-remaining-tokens"]) == TPM - used - reserved
    free = keyed.post("/v1/messages/count_tokens", {"model": BODY["model"], "messages": HELLO}, key="tpm")
    assert free.status_code == 200
    assert "x-ratelimit-remaining-tokens" not in free.headers  # never held by TPM


def test_spent_budget_refuses_messages_but_not_count_tokens(keyed: Keyed, fake: FakeUpstream):
    assert keyed.post("/v1/messages", BODY, key="budget").status_code == 200  # spends 4 + 5 of 9 tokens
    refused = keyed.post("/v1/messages", BODY, key="budget")
    assert "budget" in anthropic_error(refused, 429, "rate_limit_error")
    assert refused.headers["x-should-retry"] == "false"
    assert int(refused.headers["retry-after"]) >= 1
    counted = keyed.post("/v1/messages/count_tokens?beta=true", {"model": "claude-opus-5-5", "messages": HELLO},
                         key="budget")  # fmt: skip
    assert counted.status_code == 200
    assert counted.json() == {"input_tokens": 4}
    assert [exchange.path for exchange in fake.exchanges] == ["/v1/messages", "/v1/messages/count_tokens"]
    assert fake.exchanges[1].query == b"beta=true"


def test_count_tokens_is_never_charged(keyed: Keyed, fake: FakeUpstream):
    counted = keyed.post("/v1/messages/count_tokens", {"model": BODY["model"], "messages": HELLO}, key="narrow")
    assert counted.status_code == 403  # the allowlist still applies: sonnet is not a narrow model
    assert keyed.post("/v1/messages/count_tokens", {"model": "claude-haiku-4-5", "messages": HELLO},
                      key="narrow").status_code == 200  # fmt: skip

    def narrow() -> list[dict[str, Any]]:
        return keyed.get("/admin/usage?key=narrow&by=model", key="lead").json()["rows"]  # type: ignore[no-any-return]

    wait_for(lambda: narrow() != [], timeout=10, what="the count_tokens request in the ledger")
    assert [(row["model"], row["requests"], row["input_tokens"], row["output_tokens"]) for row in narrow()] == [
        ("claude-haiku-4-5", 1, 0, 0)
    ]


def test_rpm_applies_to_count_tokens_with_retry_after(keyed: Keyed, fake: FakeUpstream):
    body = {"model": BODY["model"], "messages": HELLO}
    assert keyed.post("/v1/messages/count_tokens", body, key="rpm1").status_code == 200
    refused = keyed.post("/v1/messages/count_tokens", body, key="rpm1")
    anthropic_error(refused, 429, "rate_limit_error")
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert len(fake.exchanges) == 1


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({**BODY, "max_tokens": 0}, "max_tokens"),
        ({"model": BODY["model"], "messages": HELLO}, "max_tokens"),
        ({**BODY, "messages": []}, "messages"),
        ({**BODY, "model": "gpt-4o"}, "model"),
        (b"{not json", "JSON"),
    ],
)
def test_invalid_bodies_get_400_in_anthropic_shape_and_never_go_upstream(
    keyed: Keyed, fake: FakeUpstream, body: Any, field: str
):
    assert field in anthropic_error(keyed.post("/v1/messages", body), 400, "invalid_request_error")
    assert fake.exchanges == []


def test_gateway_refusals_use_anthropic_envelope(keyed: Keyed, fake: FakeUpstream):
    anthropic_error(keyed.post("/v1/messages", BODY, key=None), 401, "authentication_error")
    wrong = httpx.post(keyed.url + "/v1/messages", json=BODY, headers={"x-api-key": "sk-wrong"})
    assert anthropic_error(wrong, 401, "authentication_error") == "Invalid client key."
    forbidden = keyed.post("/v1/messages", BODY, key="narrow")
    assert "claude-sonnet-4-5-20250929" in anthropic_error(forbidden, 403, "permission_error")
    assert forbidden.headers["x-should-retry"] == "false"
    anthropic_error(keyed.post("/v1/messages/batches", BODY), 404, "not_found_error")
    anthropic_error(keyed.get("/v1/messages"), 405, "invalid_request_error")
    big = {**BODY, "messages": [{"role": "user", "content": "x" * 5000}]}
    anthropic_error(keyed.post("/v1/messages", big), 413, "invalid_request_error")
    openai_shape = keyed.post("/v1/chat/completions", {"model": "gpt-4o", "messages": HELLO}, key=None)
    assert openai_shape.json()["error"]["code"] == "invalid_api_key"  # the OpenAI routes keep theirs
    assert fake.exchanges == []


def test_upstream_errors_pass_through_unchanged(keyed: Keyed, fake: FakeUpstream):
    fake.behaviour.status = 429  # AceData's own envelope
    refused = keyed.post("/v1/messages", BODY)
    assert refused.status_code == 429
    assert refused.content == bytes(fake.exchanges[0].sent)
    assert refused.json()["error"]["code"] == "too_many_requests"


def test_mid_stream_failure_ends_with_anthropic_error_event(keyed: Keyed, fake: FakeUpstream):
    response = keyed.post("/v1/messages", {**BODY, "stream": True}, **{"x-request-id": "fake-cut-3-messages"})
    assert response.status_code == 200
    events = sse_events(response.content)
    assert [name for name, _ in events] == ["message_start", "content_block_start", "ping", "error"]
    error = orjson.loads(events[-1][1])
    assert error["type"] == "error"
    assert error["error"]["type"] == "api_error"


def test_models_in_anthropic_shape_with_anthropic_version(keyed: Keyed, fake: FakeUpstream):
    listed = keyed.get("/v1/models", key="narrow", **VERSION).json()
    assert set(listed) == {"data", "has_more", "first_id", "last_id"}
    ids = [model["id"] for model in listed["data"]]
    assert ids
    assert all(i.startswith("claude-haiku-") or i.startswith("gpt-4o") for i in ids)  # the glob allowlist
    assert (listed["first_id"], listed["last_id"], listed["has_more"]) == (ids[0], ids[-1], False)
    haiku = next(model for model in listed["data"] if model["id"] == "claude-haiku-4-5-20251001")
    assert haiku == {"type": "model", "id": "claude-haiku-4-5-20251001", "display_name": "claude-haiku-4-5-20251001",
                     "created_at": "2025-10-01T00:00:00Z"}  # fmt: skip
    openai_list = keyed.get("/v1/models", key="narrow").json()
    assert openai_list["object"] == "list"
    assert [model["id"] for model in openai_list["data"]] == ids
    unknown = keyed.get("/v1/models/claude-nope", key="narrow", **VERSION)
    anthropic_error(unknown, 404, "not_found_error")


def test_glob_allowlist_on_an_openai_route(keyed: Keyed, fake: FakeUpstream):
    key = {"authorization": f"Bearer {keyed.plaintext['narrow']}"}
    allowed = httpx.post(keyed.url + "/openai/chat/completions", json={"model": "gpt-4o-mini", "messages": HELLO},
                         headers=key)  # fmt: skip
    assert allowed.status_code == 200
    refused = httpx.post(keyed.url + "/openai/chat/completions", json={"model": "gpt-4.1", "messages": HELLO},
                         headers=key)  # fmt: skip
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "model_not_allowed"
    assert refused.headers["x-should-retry"] == "false"


def test_head_root_answers_200(keyed: Keyed):
    response = httpx.head(keyed.url + "/")
    assert response.status_code == 200
    assert response.content == b""
