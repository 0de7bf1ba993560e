"""Every validation rule: 400 in the OpenAI envelope, `param` named, upstream never called. The rules run
in-process (`app_client`: create_app with the fake upstream in-process); one rule and the valid bodies also go
over real sockets to the gateway process."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from app.fakes.upstream import FakeUpstream

RESPONSES = {"model": "gpt-4.1", "input": "hi"}
AICHAT = {"model": "gpt-4o", "question": "hi"}

RESPONSES_CASES = [
    ({"input": "hi"}, "model"),
    ({"model": "gpt-4.1"}, "input"),
    ({**RESPONSES, "model": "not-a-model"}, "model"),
    ({**RESPONSES, "model": 7}, "model"),
    ({**RESPONSES, "input": []}, "input"),
    ({**RESPONSES, "input": 3}, "input"),
    ({**RESPONSES, "input": {"role": "user"}}, "input"),
    ({**RESPONSES, "n": 0}, "n"),
    ({**RESPONSES, "n": 129}, "n"),
    ({**RESPONSES, "n": "2"}, "n"),
    ({**RESPONSES, "temperature": -0.1}, "temperature"),
    ({**RESPONSES, "temperature": 2.01}, "temperature"),
    ({**RESPONSES, "temperature": "hot"}, "temperature"),
    ({**RESPONSES, "max_tokens": 0}, "max_tokens"),
    ({**RESPONSES, "max_tokens": -5}, "max_tokens"),
    ({**RESPONSES, "tools": {"type": "web_search"}}, "tools"),
    ({**RESPONSES, "background": "yes"}, "background"),
    ({**RESPONSES, "stream": 1}, "stream"),
    ({**RESPONSES, "response_format": "json"}, "response_format"),
]

AICHAT_CASES = [
    ({"question": "hi"}, "model"),
    ({"model": "gpt-4o"}, "question"),
    ({**AICHAT, "model": "gpt-35-turbo-16k"}, "model"),  # a Responses model, not an aichat one
    ({**AICHAT, "question": ["hi"]}, "question"),
    ({**AICHAT, "id": 12}, "id"),
    ({**AICHAT, "preset": False}, "preset"),
    ({**AICHAT, "stateful": "true"}, "stateful"),
    ({**AICHAT, "references": "http://a"}, "references"),
    ({**AICHAT, "references": [1]}, "references"),
]


def assert_rejected(response: httpx.Response, fake: FakeUpstream, param: str | None) -> None:
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert set(error) == {"message", "type", "code", "param"}
    assert error["code"] == "invalid_request"
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    assert error["message"]
    assert fake.exchanges == []  # never forwarded


@pytest.mark.parametrize(("body", "param"), RESPONSES_CASES)
async def test_responses_rule(app_client: httpx.AsyncClient, fake: FakeUpstream, body: dict[str, Any], param: str):
    assert_rejected(await app_client.post("/openai/responses", json=body), fake, param)


@pytest.mark.parametrize(("body", "param"), AICHAT_CASES)
async def test_aichat_rule(app_client: httpx.AsyncClient, fake: FakeUpstream, body: dict[str, Any], param: str):
    assert_rejected(await app_client.post("/aichat/conversations", json=body), fake, param)


def test_a_rule_over_real_sockets(client: httpx.Client, fake: FakeUpstream):
    assert_rejected(client.post("/openai/responses", json={**RESPONSES, "temperature": "hot"}), fake, "temperature")
    assert_rejected(client.post("/aichat/conversations", json={"question": "hi"}), fake, "model")


@pytest.mark.parametrize(
    "content",
    [b"", b"not json", b"[1, 2]", b'"text"', b"null", b'{"model": "gpt-4.1", "input": "hi"', b"\xff\xfe{}"],
)
async def test_body_must_be_a_json_object(app_client: httpx.AsyncClient, fake: FakeUpstream, content: bytes):
    headers = {"content-type": "application/json"}
    assert_rejected(await app_client.post("/openai/responses", content=content, headers=headers), fake, None)


async def test_wrong_content_type_is_refused(app_client: httpx.AsyncClient, fake: FakeUpstream):
    response = await app_client.post("/openai/responses", content=b'{"model":"gpt-4.1","input":"hi"}',
                                     headers={"content-type": "text/plain"})  # fmt: skip
    assert_rejected(response, fake, None)


async def test_deeply_nested_json_is_a_400(app_client: httpx.AsyncClient, fake: FakeUpstream):
    content = b'{"model":"gpt-4.1","input":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert_rejected(await app_client.post("/openai/responses", content=content), fake, None)


def test_valid_bodies_pass(client: httpx.Client, fake: FakeUpstream):
    full = {**RESPONSES, "n": 128, "temperature": 0, "max_tokens": 1, "tools": [{"type": "web_search"}],
            "background": False, "stream": None, "response_format": {"type": "json_object"}}  # fmt: skip
    assert client.post("/openai/responses", json=full).status_code == 200
    aichat = {**AICHAT, "id": "x", "preset": "p", "stateful": True, "references": ["https://example.com"]}
    assert client.post("/aichat/conversations", json=aichat).status_code == 200
    assert len(fake.exchanges) == 2
