"""openai-python, sync and async, against a real gateway and the fake upstream: every call a program makes through
the two base URLs, and the typed exception for each error the gateway can answer (no retries, so each error is
the gateway's own first answer)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial
from typing import Any

import openai
import orjson
import pytest
from openai.types.chat import ChatCompletionMessageParam, ChatCompletionStreamOptionsParam

from app.fakes.upstream import FakeUpstream
from tests.helpers import GatewayFactory, png, wav
from tests.helpers.compat import MAX_REQUEST_BYTES, KeyedGateway, collect, resolve

Client = openai.OpenAI | openai.AsyncOpenAI
ClientFactory = Callable[..., Client]
PREFIXES = ["/v1", "/openai"]


@pytest.fixture(params=["sync", "async"])
async def sdk(request: pytest.FixtureRequest, keyed_gateway: KeyedGateway) -> AsyncIterator[ClientFactory]:
    """sdk("/v1") is a client of the flavour under test on the shared keyed gateway, with the "app" key."""
    made: list[Client] = []
    kind = openai.OpenAI if request.param == "sync" else openai.AsyncOpenAI

    def factory(prefix: str, key: str = "app") -> Client:
        """`key` names one of the gateway's keys; anything else is sent as it is."""
        api_key = keyed_gateway.key(key) if key in keyed_gateway.keys else key
        client = kind(base_url=keyed_gateway.url + prefix, api_key=api_key, max_retries=0, timeout=30)
        made.append(client)
        return client

    yield factory
    for client in made:
        await resolve(client.close())


async def through_helper(manager: Any, delta_type: str, final: str) -> tuple[list[str], Any]:
    """Runs a stream helper (`responses.stream()`, `chat.completions.stream()`) of either client to its end: the
    deltas of `delta_type` it yielded and what its `final` method returns."""
    is_async = hasattr(manager, "__aenter__")
    stream = await manager.__aenter__() if is_async else manager.__enter__()
    try:
        deltas = [event.delta for event in await collect(stream) if event.type == delta_type]
        return deltas, await resolve(getattr(stream, final)())
    finally:
        await resolve(manager.__aexit__(None, None, None) if is_async else manager.__exit__(None, None, None))


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_responses_create_and_stream(sdk: ClientFactory, fake: FakeUpstream, prefix: str):
    client = sdk(prefix)
    response = await resolve(client.responses.create(model="gpt-4.1", input="Say hello"))
    assert response.status == "completed"
    assert response.output_text.startswith("Hello! This answer streams")

    events = await collect(await resolve(client.responses.create(model="gpt-4.1", input="hi", stream=True)))
    types = [event.type for event in events]
    assert types[:2] == ["response.created", "response.in_progress"]
    assert types[-1] == "response.completed"
    deltas = "".join(event.delta for event in events if event.type == "response.output_text.delta")
    assert deltas == events[-1].response.output_text == response.output_text


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_responses_stream_helper(sdk: ClientFactory, fake: FakeUpstream, prefix: str):
    manager = sdk(prefix).responses.stream(model="gpt-4.1", input="hi")
    texts, final = await through_helper(manager, "response.output_text.delta", "get_final_response")
    assert final.status == "completed"
    assert final.output_text == "".join(texts) != ""


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_background_response_is_retrieved(sdk: ClientFactory, fake: FakeUpstream, prefix: str):
    client = sdk(prefix)
    queued = await resolve(client.responses.create(model="gpt-4.1", input="hi", background=True))
    assert queued.status == "queued"

    done = await resolve(client.responses.retrieve(queued.id))
    assert (done.id, done.status) == (queued.id, "completed")
    assert done.output_text.startswith("Hello!")
    events = await collect(await resolve(client.responses.retrieve(queued.id, stream=True)))
    assert [events[0].type, events[-1].type] == ["response.created", "response.completed"]
    assert events[-1].response.output_text == done.output_text
    assert [exchange.path for exchange in fake.exchanges[1:]] == [f"/openai/responses/{queued.id}"] * 2
    assert fake.exchanges[-1].query == b"stream=true"


@pytest.mark.parametrize(("prefix", "model"), [("/v1", "claude-sonnet-4-5-20250929"), ("/openai", "gpt-4o-mini")])
async def test_chat_completions_plain_and_streamed(sdk: ClientFactory, fake: FakeUpstream, prefix: str, model: str):
    client = sdk(prefix)
    messages: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
    completion = await resolve(client.chat.completions.create(model=model, messages=messages))
    text = completion.choices[0].message.content
    assert text.startswith("Hello!")
    assert completion.usage.completion_tokens == 5

    plain = await collect(await resolve(client.chat.completions.create(model=model, messages=messages, stream=True)))
    assert "".join(chunk.choices[0].delta.content or "" for chunk in plain) == text
    assert all(chunk.usage is None for chunk in plain)

    usage: ChatCompletionStreamOptionsParam = {"include_usage": True}
    chunks = await collect(
        await resolve(client.chat.completions.create(model=model, messages=messages, stream=True, stream_options=usage))
    )
    assert chunks[-1].choices == []
    assert chunks[-1].usage.completion_tokens == 5
    assert "".join(chunk.choices[0].delta.content or "" for chunk in chunks[:-1]) == text
    assert {exchange.path for exchange in fake.exchanges} == {f"{prefix}/chat/completions"}


async def test_chat_stream_helper(sdk: ClientFactory, fake: FakeUpstream):
    manager = sdk("/v1").chat.completions.stream(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    pieces, final = await through_helper(manager, "content.delta", "get_final_completion")
    assert final.choices[0].message.content == "".join(pieces) != ""
    assert final.choices[0].finish_reason == "stop"


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_embeddings_decode_the_default_base64(sdk: ClientFactory, fake: FakeUpstream, prefix: str):
    result = await resolve(sdk(prefix).embeddings.create(model="text-embedding-3-small", input=["a", "b"]))

    assert [item.index for item in result.data] == [0, 1]
    assert all(isinstance(value, float) for value in result.data[0].embedding)
    assert result.data[1].embedding[0] == pytest.approx(2 / 2, rel=1e-6)
    assert result.usage.prompt_tokens >= 1
    [exchange] = fake.exchanges
    assert orjson.loads(exchange.body)["encoding_format"] == "base64"  # what the SDK asks for unless told


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_images_generate(sdk: ClientFactory, fake: FakeUpstream, prefix: str):
    result = await resolve(sdk(prefix).images.generate(model="gpt-image-1", prompt="a red circle", n=2))
    assert len(result.data) == 2
    assert result.data[0].b64_json.startswith("iVBOR")  # a PNG


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_speech_streams_audio(sdk: ClientFactory, fake: FakeUpstream, prefix: str):
    speech = sdk(prefix).audio.speech.with_streaming_response
    manager: Any = speech.create(model="tts-1", voice="alloy", input="Hello")  # a sync or an async context manager
    is_async = hasattr(manager, "__aenter__")
    response = await manager.__aenter__() if is_async else manager.__enter__()
    try:
        assert response.headers["content-type"] == "audio/mpeg"
        audio = b"".join(await collect(response.iter_bytes()))
    finally:
        await resolve(manager.__aexit__(None, None, None) if is_async else manager.__exit__(None, None, None))
    assert audio == bytes(fake.exchanges[0].sent)


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_transcription_of_a_wav(sdk: ClientFactory, fake: FakeUpstream, prefix: str):
    audio = wav(1.5)
    result = await resolve(sdk(prefix).audio.transcriptions.create(model="whisper-1", file=("a.wav", audio)))
    assert result.text.startswith("Hello")
    [exchange] = fake.exchanges
    assert (exchange.path, audio in exchange.body) == ("/openai/audio/transcriptions", True)


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_image_edit_of_a_png(sdk: ClientFactory, fake: FakeUpstream, prefix: str):
    image = ("a.png", png(), "image/png")
    result = await resolve(sdk(prefix).images.edit(model="gpt-image-1", image=[image], prompt="add a hat"))
    assert result.data[0].b64_json.startswith("iVBOR")
    assert fake.exchanges[0].path == "/openai/images/edits"


@pytest.mark.parametrize("prefix", PREFIXES)
async def test_models_list_and_retrieve(sdk: ClientFactory, prefix: str):
    client = sdk(prefix)
    listed = await resolve(client.models.list())
    ids = [model.id for model in listed.data]
    assert "gpt-4.1" in ids
    assert ("claude-sonnet-4-5-20250929" in ids) == (prefix == "/v1")  # Claude is served on /v1 only
    model = await resolve(client.models.retrieve("gpt-4.1"))
    assert (model.id, model.object) == ("gpt-4.1", "model")

    narrow = await resolve(sdk(prefix, key="narrow").models.list())
    assert [model.id for model in narrow.data] == ["gpt-4o-mini"]


async def test_raw_response_headers(sdk: ClientFactory, fake: FakeUpstream):
    raw = await resolve(sdk("/v1").with_raw_response.responses.create(model="gpt-4.1", input="hi"))
    assert raw.headers["x-request-id"]
    assert raw.headers["x-ratelimit-limit-requests"] == "100000"
    assert int(raw.headers["x-ratelimit-remaining-requests"]) < 100_000
    assert raw.parse().output_text.startswith("Hello!")

    raw_chat = await resolve(
        sdk("/openai").chat.completions.with_raw_response.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}]
        )
    )
    assert raw_chat.headers["x-request-id"]
    assert raw_chat.parse().choices[0].message.content.startswith("Hello!")


async def raises(error: type[openai.APIStatusError], call: Callable[[], Any]) -> openai.APIStatusError:
    with pytest.raises(error) as caught:
        await resolve(call())
    return caught.value


async def test_typed_errors_from_the_gateway(sdk: ClientFactory, fake: FakeUpstream):
    client = sdk("/v1")
    hi: list[ChatCompletionMessageParam] = [{"role": "user", "content": "hi"}]
    bad = await raises(openai.BadRequestError, lambda: client.chat.completions.create(model="gpt-4o", messages=[]))
    assert (bad.status_code, bad.code, bad.param) == (400, "invalid_request", "messages")

    wrong = sdk("/v1", key="sk-not-a-key")
    denied = await raises(openai.AuthenticationError, lambda: wrong.responses.create(model="gpt-4.1", input="hi"))
    assert denied.code == "invalid_api_key"

    narrow = sdk("/v1", key="narrow")
    forbidden = await raises(
        openai.PermissionDeniedError, lambda: narrow.chat.completions.create(model="gpt-4.1", messages=hi)
    )
    assert forbidden.code == "model_not_allowed"

    missing = await raises(openai.NotFoundError, lambda: client.models.retrieve("no-such-model"))
    assert missing.status_code == 404

    huge = "x" * (MAX_REQUEST_BYTES + 1)
    # openai-python has no class of its own for 413: it raises the base APIStatusError, nothing more specific
    too_large = await raises(openai.APIStatusError, lambda: client.responses.create(model="gpt-4.1", input=huge))
    assert type(too_large) is openai.APIStatusError
    assert (too_large.status_code, too_large.code) == (413, "request_too_large")
    assert not fake.exchanges  # none of them was forwarded


async def test_upstream_404_is_not_found(sdk: ClientFactory, fake: FakeUpstream):
    fake.behaviour.status = 404
    error = await raises(openai.NotFoundError, lambda: sdk("/openai").responses.create(model="gpt-4.1", input="hi"))
    assert error.status_code == 404


async def test_rate_limit_is_rate_limit_error(sdk: ClientFactory, fake: FakeUpstream, request: pytest.FixtureRequest):
    flavour = request.node.callspec.params["sdk"]
    client = sdk("/v1", key=f"rpm1-{flavour}")
    await resolve(client.responses.create(model="gpt-4.1", input="hi"))

    error = await raises(openai.RateLimitError, lambda: client.responses.create(model="gpt-4.1", input="hi"))
    assert error.code == "rate_limit_exceeded"
    assert int(error.response.headers["retry-after"]) > 0
    assert len(fake.exchanges) == 1


def both_clients(url: str) -> Iterator[Client]:
    for kind in (openai.OpenAI, openai.AsyncOpenAI):
        yield kind(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=30)


async def test_unreachable_upstream_is_internal_server_error(make_gateway: GatewayFactory, closed_port: int):
    gateway = make_gateway(ACEDATACLOUD_API_BASE_URL=f"http://127.0.0.1:{closed_port}")
    for client in both_clients(gateway.url):
        error = await raises(openai.InternalServerError, partial(client.responses.create, model="gpt-4.1", input="hi"))
        assert (error.status_code, error.code) == (502, "upstream_unavailable")
        listed = await resolve(client.models.list())  # the gateway answers models itself, upstream or not
        assert "gpt-4.1" in [model.id for model in listed.data]
        await resolve(client.close())


async def test_slow_upstream_is_internal_server_error(make_gateway: GatewayFactory, fake: FakeUpstream):
    gateway = make_gateway(PROXY_FIRST_BYTE_TIMEOUT="0.3")
    fake.behaviour.headers_delay = 30  # far past the timeout: the gateway gives up, the fake is cancelled
    for client in both_clients(gateway.url):
        call = lambda c=client: c.chat.completions.create(model="gpt-4o", messages=[{"role": "user", "content": "hi"}])  # noqa: E731
        error = await raises(openai.InternalServerError, call)
        assert (error.status_code, error.code) == (504, "upstream_timeout")
        await resolve(client.close())
