"""POST /openai/images/generations and /v1/images/generations through the real gateway, with the OpenAI SDK."""

from __future__ import annotations

import base64

import httpx
import openai
import orjson
import pytest

from app.fakes.upstream import FakeUpstream
from tests.helpers import GatewayProcess, SdkFactory


@pytest.mark.parametrize("prefix", ["/openai", "/v1"])
def test_sdk_generates_images(gateway: GatewayProcess, fake: FakeUpstream, make_sdk: SdkFactory, prefix: str):
    result = make_sdk(gateway.url + prefix).images.generate(model="gpt-image-1", prompt="a red fox", n=2)

    assert result.data is not None
    assert len(result.data) == 2
    assert base64.b64decode(result.data[0].b64_json or "").startswith(b"\x89PNG")
    [exchange] = fake.exchanges
    assert exchange.path == "/openai/images/generations"
    assert orjson.loads(exchange.body) == {"model": "gpt-image-1", "prompt": "a red fox", "n": 2}


def test_url_images_pass_through(client: httpx.Client, fake: FakeUpstream):
    response = client.post("/v1/images/generations", json={"model": "dall-e-3", "prompt": "cat"})
    assert response.status_code == 200
    assert response.json()["data"][0]["url"].startswith("https://")
    assert response.content == bytes(fake.exchanges[0].sent)


def test_invalid_image_requests_raise_typed_errors(gateway: GatewayProcess, fake: FakeUpstream, make_sdk: SdkFactory):
    sdk = make_sdk(gateway.url + "/v1")
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.images.generate(model="dall-e-3", prompt="cat", n=11)
    assert caught.value.param == "n"
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.images.generate(model="dall-e-3", prompt="cat", size="huge")
    assert caught.value.param == "size"
    assert fake.exchanges == []
