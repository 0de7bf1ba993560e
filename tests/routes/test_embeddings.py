"""POST /openai/embeddings and /v1/embeddings through the real gateway, with the official OpenAI SDK."""

from __future__ import annotations

import httpx
import orjson
import pytest

from app.fakes.upstream import FakeUpstream
from tests.helpers import GatewayProcess, SdkFactory


@pytest.mark.parametrize("prefix", ["/openai", "/v1"])
def test_sdk_embeddings(gateway: GatewayProcess, fake: FakeUpstream, make_sdk: SdkFactory, prefix: str):
    """The SDK asks for base64 by default and decodes float32s: the vectors must survive the trip."""
    result = make_sdk(gateway.url + prefix).embeddings.create(model="text-embedding-3-small", input=["a b", "c"])

    assert [item.index for item in result.data] == [0, 1]
    assert result.data[0].embedding == pytest.approx([1 / (d + 2) for d in range(8)], rel=1e-5)  # float32
    assert result.usage.prompt_tokens > 0
    [exchange] = fake.exchanges
    assert exchange.path == "/openai/embeddings"
    assert orjson.loads(exchange.body)["input"] == ["a b", "c"]


def test_float_embeddings_pass_through_byte_for_byte(client: httpx.Client, fake: FakeUpstream):
    body = b'{"model":"text-embedding-3-large","input":"hi","encoding_format":"float","dimensions":4}'
    response = client.post("/v1/embeddings", content=body)
    assert response.status_code == 200
    [exchange] = fake.exchanges
    assert exchange.body == body
    assert response.content == bytes(exchange.sent)
    assert len(response.json()["data"][0]["embedding"]) == 4


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "text-embedding-3-small", "input": []}, "input"),
        ({"model": "text-embedding-3-small", "input": "x", "dimensions": 0}, "dimensions"),
        ({"model": "gpt-4o", "input": "x"}, "model"),  # a chat model is not an embedding model
    ],
)
def test_invalid_embedding_bodies_are_refused(
    client: httpx.Client, fake: FakeUpstream, body: dict[str, object], param: str
):
    response = client.post("/openai/embeddings", json=body)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param
    assert fake.exchanges == []
