"""Errors the gateway produces itself, in the OpenAI envelope: unknown routes, wrong methods, big bodies. In-process
(`app_client`); the same errors over raw sockets, and many more cases, are in test_hostile.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from app import errors
from app.errors import RequestTooLarge, UpstreamTimeout
from app.fakes.upstream import FakeUpstream
from app.proxy.streams import error_event
from app.settings import MiB


def test_envelope_shape():
    error = UpstreamTimeout("slow")
    assert error.envelope() == {
        "error": {"message": "slow", "type": "api_error", "code": "upstream_timeout", "param": None}
    }
    assert error_event(error, "sse").startswith(b"event: error\ndata: {")
    assert error_event(error, "ndjson").endswith(b"}\n")


@pytest.mark.parametrize("path", ["/nope", "/openai/../admin/nope", "/openai/responses/", "/openai/chat"])
async def test_unknown_route_is_404_envelope(app_client: httpx.AsyncClient, fake: FakeUpstream, path: str):
    response = await app_client.post(path, json={"model": "gpt-4.1", "input": "hi"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"
    assert response.headers["x-request-id"]
    assert fake.exchanges == []


async def test_wrong_method_is_405(app_client: httpx.AsyncClient):
    response = await app_client.get("/openai/responses")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json()["error"]["code"] == "method_not_allowed"
    assert (await app_client.post("/healthz")).json()["error"]["code"] == "method_not_allowed"


async def test_body_over_the_limit_is_413_before_reading_it(app_client: httpx.AsyncClient, fake: FakeUpstream):
    big = b'{"model": "gpt-4.1", "input": "' + b"x" * (10 * MiB) + b'"}'
    response = await app_client.post("/openai/responses", content=big)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == RequestTooLarge.code
    assert fake.exchanges == []


async def test_chunked_body_over_the_limit_is_413(app_client: httpx.AsyncClient, fake: FakeUpstream):
    async def chunks() -> AsyncIterator[bytes]:
        yield b'{"model": "gpt-4.1", "input": "'
        for _ in range(11):
            yield b"x" * MiB
        yield b'"}'

    response = await app_client.post("/openai/responses", content=chunks())
    assert response.status_code == 413
    assert fake.exchanges == []


def test_unknown_route_names_the_request_and_the_routes_served(client: httpx.Client, fake: FakeUpstream):
    message = client.get("/v1/completions").json()["error"]["message"]
    assert message.startswith("Unknown route: GET /v1/completions. This gateway serves: ")
    for route in (
        "POST /v1/chat/completions",
        "GET /v1/models",
        "GET /v1/responses/{id}",
        "POST /aichat/conversations",
    ):
        assert route in message


def test_wrong_method_names_the_methods_allowed(client: httpx.Client, fake: FakeUpstream):
    response = client.get("/v1/chat/completions")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.json()["error"]["message"] == "Use POST on /v1/chat/completions."


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (errors.InvalidRequest("bad"), "invalid_request_error"),
        (errors.RequestTooLarge("big"), "invalid_request_error"),
        (errors.InvalidApiKey("who"), "authentication_error"),
        (errors.ModelNotAllowed("no"), "permission_error"),
        (errors.NotFound("where"), "not_found_error"),
        (errors.RateLimited("slow down"), "rate_limit_error"),
        (errors.BudgetExceeded("spent"), "rate_limit_error"),
        (errors.UpstreamUnavailable("down"), "api_error"),
        (errors.Overloaded("busy"), "overloaded_error"),
        (errors.NotReady("starting"), "overloaded_error"),
        (errors.UpstreamTimeout("slow"), "api_error"),
    ],
)
def test_anthropic_envelope_by_status(error: errors.ProxyError, kind: str):
    """The error tree rendered in Anthropic's shape, so the anthropic SDKs raise their typed exceptions."""
    assert orjson.loads(error.body("anthropic")) == {"type": "error", "error": {"type": kind, "message": error.message}}
    event = error_event(error, "sse", "anthropic")
    assert event == b"event: error\ndata: " + error.body("anthropic") + b"\n\n"


async def test_unknown_path_under_messages_is_an_anthropic_404(app_client: httpx.AsyncClient, fake: FakeUpstream):
    response = await app_client.post("/v1/messages/batches/x/cancel", json={})
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found_error"
    wrong_method = await app_client.get("/v1/messages/count_tokens")
    assert (wrong_method.status_code, wrong_method.json()["type"]) == (405, "error")
    assert (await app_client.post("/v1/messagesx", json={})).json()["error"]["code"] == "not_found"  # not the family
