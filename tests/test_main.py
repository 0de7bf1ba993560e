"""The app factory in-process, with an injected upstream transport (fast unit tests of the whole pipeline)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from app.main import create_app
from tests.helpers.inprocess import running
from tests.helpers.inprocess import settings as base_settings

TOKEN = "unit-token-abcdef"


def settings(**overrides: object):
    return base_settings(**{"api_token": TOKEN, "api_base_url": "http://upstream.invalid", **overrides})


async def chunks() -> AsyncIterator[bytes]:
    """A streamed body, as real transports give (httpx pre-reads bytes content, which no socket does)."""
    yield b'{"answer": "hi",'
    yield b' "id": "1"}'


async def test_injected_transport_sees_the_exact_request():
    seen: list[httpx.Request] = []

    def upstream(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, headers={"content-type": "application/json"}, content=chunks())

    app = create_app(settings(), transport=httpx.MockTransport(upstream))
    async with running(app) as client:
        body = b'{"model": "gpt-4o",  "question": "x"}'
        response = await client.post("/aichat/conversations", content=body, headers={"authorization": "Bearer sk-x"})
    assert response.status_code == 200
    assert response.json() == {"answer": "hi", "id": "1"}
    [request] = seen
    assert str(request.url) == "http://upstream.invalid/aichat/conversations"
    assert request.content == body
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert request.headers["accept-encoding"] == "identity"


@pytest.mark.parametrize("model", ["gpt-9-preview"])
async def test_extra_models_setting_reaches_validation(model: str):
    app = create_app(
        settings(extra_models=(model,)),
        transport=httpx.MockTransport(lambda r: httpx.Response(200, content=chunks())),
    )
    async with running(app) as client:
        ok = await client.post("/openai/responses", json={"model": model, "input": "x"})
        refused = await client.post("/aichat/conversations", json={"model": "gpt-10", "question": "x"})
    assert ok.status_code == 200
    assert refused.status_code == 400
