"""Gemini's native API through the real gateway with the real google-genai SDK: the model from the path, the key
as x-goog-api-key, /v1 and /v1beta both forwarded to the upstream's /v1beta, usage from `usageMetadata`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import orjson
import pytest

from app.access import keys
from app.fakes import answers
from app.fakes.upstream import FakeUpstream
from tests.helpers import CLIENT_KEY, GatewayFactory, GatewayProcess, wait_for_report

if TYPE_CHECKING:
    from google import genai

BODY = {"contents": [{"role": "user", "parts": [{"text": "Say hello"}]}]}


def sdk(gateway: GatewayProcess, key: str = CLIENT_KEY, version: str | None = None) -> genai.Client:
    # imported here, not at the top: every xdist worker collects this module, one runs it (1 s of CPU)
    from google import genai

    options = genai.types.HttpOptions(base_url=gateway.url, api_version=version, timeout=30_000)
    return genai.Client(api_key=key, http_options=options)


@pytest.mark.parametrize("version", [None, "v1"])
def test_sdk_generates_content(gateway: GatewayProcess, fake: FakeUpstream, version: str | None):
    client = sdk(gateway, version=version)  # held: the SDK closes its HTTP client when this is collected
    response = client.models.generate_content(model="gemini-2.5-flash", contents="Say hi")
    assert response.text == "".join(answers.text_pieces(fake.behaviour.deltas))
    [exchange] = fake.exchanges
    assert exchange.path == "/v1beta/models/gemini-2.5-flash:generateContent"
    assert exchange.header("x-goog-api-key") is None  # the client key never goes upstream
    assert exchange.header("authorization") == f"Bearer {fake.token}"
    assert response.usage_metadata is not None
    assert response.usage_metadata.candidates_token_count == fake.behaviour.deltas


def test_sdk_streams_content(gateway: GatewayProcess, fake: FakeUpstream):
    fake.behaviour.deltas = 4
    client = sdk(gateway)
    chunks = list(client.models.generate_content_stream(model="gemini-2.5-pro", contents="Say hi"))
    assert [chunk.text for chunk in chunks] == answers.text_pieces(4)
    [exchange] = fake.exchanges
    assert (exchange.path, exchange.query) == ("/v1beta/models/gemini-2.5-pro:streamGenerateContent", b"alt=sse")


def test_the_body_is_forwarded_byte_for_byte(client: httpx.Client, fake: FakeUpstream):
    body = orjson.dumps({**BODY, "generationConfig": {"temperature": 0.2}})
    response = client.post(
        "/v1beta/models/gemini-2.0-flash:generateContent", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 200
    assert response.content == bytes(fake.exchanges[0].sent)
    assert fake.exchanges[0].body == body


@pytest.mark.parametrize(
    ("path", "body", "param"),
    [
        ("/v1beta/models/gpt-4o:generateContent", BODY, "model"),
        ("/v1beta/models/gemini..x:generateContent", BODY, "model"),
        ("/v1beta/models/gemini-2.5-flash:generateContent", {"contents": []}, "contents"),
        ("/v1beta/models/gemini-2.5-flash:generateContent", {}, "contents"),
    ],
)
def test_bad_requests_are_refused(
    client: httpx.Client, fake: FakeUpstream, path: str, body: dict[str, object], param: str
):
    response = client.post(path, json=body)
    assert response.status_code == 400, response.text
    error = response.json()["error"]  # the Gemini API's envelope: code, message, status
    assert (error["code"], error["status"]) == (400, "INVALID_ARGUMENT")
    assert param in error["message"]
    assert fake.exchanges == []


def test_unknown_actions_and_query_parameters(client: httpx.Client, fake: FakeUpstream):
    unknown = client.post("/v1beta/models/gemini-2.5-flash:countTokens", json=BODY)
    assert unknown.status_code == 404
    assert unknown.json()["error"]["status"] == "NOT_FOUND"
    stream = "/v1beta/models/gemini-2.5-flash:streamGenerateContent"
    assert client.post(stream + "?key=sk-leak", json=BODY).status_code == 400
    assert client.get("/v1/models/gpt-4o").status_code == 200  # the models route still answers beside Gemini's
    assert fake.exchanges == []


def test_keys_allowlists_and_the_ledger(make_gateway: GatewayFactory, tmp_path: Path, fake: FakeUpstream):
    from google import genai  # as in sdk()

    path = tmp_path / "keys.toml"
    admin = keys.create(path, "admin", admin=True)
    flash = keys.create(path, "flash", models=["gemini-2.5-flash"])
    gateway = make_gateway(PROXY_KEYS_FILE=str(path))
    wrong, allowed = sdk(gateway, "sk-wrong"), sdk(gateway, flash)
    with pytest.raises(genai.errors.ClientError) as caught:
        wrong.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert (caught.value.code, caught.value.status) == (401, "UNAUTHENTICATED")
    with pytest.raises(genai.errors.ClientError) as caught:
        allowed.models.generate_content(model="gemini-2.5-pro", contents="hi")
    assert (caught.value.code, caught.value.status) == (403, "PERMISSION_DENIED")
    fake.behaviour.deltas = 3
    chunks = list(allowed.models.generate_content_stream(model="gemini-2.5-flash", contents="hi"))
    assert chunks[-1].usage_metadata is not None
    [row] = wait_for_report(gateway, admin, 1, by="route")["rows"]
    assert row["route"] == "gemini.stream_generate_content"
    expected = chunks[-1].usage_metadata
    assert (row["input_tokens"], row["output_tokens"]) == (expected.prompt_token_count, 3)
