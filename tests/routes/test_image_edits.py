"""POST /v1/images/edits and /openai/images/edits: a multipart form with `image` or `image[]`, checked, forwarded."""

from __future__ import annotations

import base64
from pathlib import Path

import httpx
import openai
import pytest

from app.fakes.upstream import FakeUpstream
from tests.helpers import GatewayProcess, SdkFactory, png


@pytest.mark.parametrize("prefix", ["/openai", "/v1"])
def test_sdk_edits_images(
    gateway: GatewayProcess, fake: FakeUpstream, make_sdk: SdkFactory, tmp_path: Path, prefix: str
):
    first, second = tmp_path / "a.png", tmp_path / "b.png"
    first.write_bytes(png())
    second.write_bytes(png(8))
    sdk = make_sdk(gateway.url + prefix)
    with first.open("rb") as a, second.open("rb") as b:
        result = sdk.images.edit(model="gpt-image-1", image=[a, b], prompt="add a hat", n=2)
    assert result.data is not None
    assert len(result.data) == 2
    assert base64.b64decode(result.data[0].b64_json or "").startswith(b"\x89PNG")
    [exchange] = fake.exchanges
    assert exchange.path == "/openai/images/edits"
    assert png() in exchange.body
    assert png(8) in exchange.body


def test_dall_e_2_edits_one_image(gateway: GatewayProcess, fake: FakeUpstream, make_sdk: SdkFactory):
    result = make_sdk(gateway.url + "/v1").images.edit(
        model="dall-e-2", image=("a.png", png(), "image/png"), prompt="a cat"
    )
    assert result.data is not None
    assert (result.data[0].url or "").startswith("https://")
    assert fake.exchanges[0].path == "/openai/images/edits"


def test_bad_edits_are_refused(gateway: GatewayProcess, fake: FakeUpstream, make_sdk: SdkFactory):
    sdk = make_sdk(gateway.url + "/v1")
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.images.edit(model="dall-e-3", image=("a.png", png(), "image/png"), prompt="a cat")
    assert caught.value.param == "model"
    with pytest.raises(openai.BadRequestError) as caught:
        sdk.images.edit(model="gpt-image-1", image=("a.png", png(), "image/png"), prompt="a cat", n=11)
    assert caught.value.param == "n"
    assert fake.exchanges == []


def test_an_edit_without_image_or_prompt_is_refused(client: httpx.Client, fake: FakeUpstream):
    files = {"mask": ("m.png", png(), "image/png")}
    response = client.post("/v1/images/edits", data={"prompt": "a cat"}, files=files)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "image"
    response = client.post("/v1/images/edits", files={"image": ("a.png", png(), "image/png")})
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "prompt"
    assert fake.exchanges == []
