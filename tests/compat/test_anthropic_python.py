"""The `anthropic` Python SDK, sync and async, against a real gateway and the fake upstream: messages (plain,
streamed, the `messages.stream()` helper, tool use), `beta.messages`, count_tokens and models, and the typed
exception for each error the gateway answers on these routes (no retries: each is the gateway's first answer)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial
from typing import TYPE_CHECKING, Any

import pytest

from app.fakes.upstream import FakeUpstream
from tests.helpers import UPSTREAM_TOKEN, GatewayFactory
from tests.helpers.compat import MAX_REQUEST_BYTES, KeyedGateway, collect, resolve

# anthropic is imported where a test uses it, not at the top: see tests/compat/conftest.py
if TYPE_CHECKING:
    import anthropic
    from anthropic.types import ToolChoiceAnyParam, ToolParam

    Client = anthropic.Anthropic | anthropic.AsyncAnthropic
    ClientFactory = Callable[..., Client]
MODEL = "claude-sonnet-4-5-20250929"
HELLO: list[Any] = [{"role": "user", "content": "Say hello"}]
ANSWER = "Hello! This answer streams from"


@pytest.fixture(params=["sync", "async"])
async def sdk(request: pytest.FixtureRequest, keyed_gateway: KeyedGateway) -> AsyncIterator[ClientFactory]:
    """sdk() is a client of the flavour under test on the shared keyed gateway, with the "app" key."""
    import anthropic

    made: list[Client] = []
    kind = anthropic.Anthropic if request.param == "sync" else anthropic.AsyncAnthropic

    def factory(key: str = "app", url: str | None = None) -> Client:
        """`key` names one of the gateway's keys; anything else is sent as it is."""
        api_key = keyed_gateway.key(key) if key in keyed_gateway.keys else key
        client = kind(base_url=url or keyed_gateway.url, api_key=api_key, max_retries=0, timeout=30)
        made.append(client)
        return client

    yield factory
    for client in made:
        await resolve(client.close())


async def raises(kind: type[anthropic.APIStatusError], call: Callable[[], Any]) -> anthropic.APIStatusError:
    with pytest.raises(kind) as caught:
        await collect(await resolve(call()))
    return caught.value


async def test_create_plain_and_streamed(sdk: ClientFactory, fake: FakeUpstream):
    client = sdk()
    message = await resolve(client.messages.create(model=MODEL, max_tokens=64, messages=HELLO))
    assert (message.type, message.stop_reason, message.content[0].text) == ("message", "end_turn", ANSWER)
    assert (message.usage.input_tokens, message.usage.output_tokens) == (4, 5)
    events = await collect(await resolve(client.messages.create(model=MODEL, max_tokens=64, messages=HELLO,
                                                                stream=True)))  # fmt: skip
    assert [event.type for event in events][:3] == ["message_start", "content_block_start", "content_block_delta"]
    assert "".join(e.delta.text for e in events if e.type == "content_block_delta") == ANSWER
    assert events[-1].type == "message_stop"
    assert [exchange.path for exchange in fake.exchanges] == ["/v1/messages", "/v1/messages"]
    assert fake.exchanges[0].header("authorization") == f"Bearer {UPSTREAM_TOKEN}"
    assert fake.exchanges[0].header("anthropic-version") is not None


async def test_stream_helper_and_tool_use(sdk: ClientFactory, fake: FakeUpstream):
    import anthropic

    async def read(stream: Any) -> tuple[list[str], Any]:
        text = [event.text for event in await collect(stream) if event.type == "text"]
        return text, await resolve(stream.get_final_message())

    manager = sdk().messages.stream(model="claude-opus-5-5", max_tokens=64, messages=HELLO)
    if isinstance(manager, anthropic.AsyncMessageStreamManager):
        async with manager as stream:
            text, final = await read(stream)
    else:
        with manager as sync_stream:
            text, final = await read(sync_stream)
    assert "".join(text) == ANSWER
    assert (final.content[0].text, final.usage.output_tokens) == (ANSWER, 5)

    weather: ToolParam = {"name": "get_weather", "description": "Weather in a city", "input_schema": {
        "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}  # fmt: skip
    choice: ToolChoiceAnyParam = {"type": "any"}
    called = await resolve(sdk().messages.create(model=MODEL, max_tokens=64, messages=HELLO, tools=[weather],
                                                 tool_choice=choice))  # fmt: skip
    assert called.stop_reason == "tool_use"
    assert (called.content[0].name, called.content[0].input) == ("get_weather", {"city": "Paris"})


async def test_beta_messages_and_count_tokens(sdk: ClientFactory, fake: FakeUpstream):
    client = sdk()
    beta = await resolve(client.beta.messages.create(model=MODEL, max_tokens=64, messages=HELLO,
                                                     betas=["interleaved-thinking-2025-05-14"]))  # fmt: skip
    assert beta.content[0].text == ANSWER
    counted = await resolve(client.messages.count_tokens(model=MODEL, messages=HELLO))
    assert counted.input_tokens == 4
    [first, second] = fake.exchanges
    assert (first.path, first.header("anthropic-beta")) == ("/v1/messages", "interleaved-thinking-2025-05-14")
    assert second.path == "/v1/messages/count_tokens"


async def test_models_list_in_anthropic_shape(sdk: ClientFactory):
    page = await resolve(sdk().models.list(limit=1000))
    ids = [model.id for model in page.data]
    assert MODEL in ids
    assert all(model.type == "model" for model in page.data)


async def test_typed_errors_from_the_gateway(sdk: ClientFactory, fake: FakeUpstream):
    import anthropic

    client = sdk()
    bad = await raises(anthropic.BadRequestError, lambda: client.messages.create(model=MODEL, max_tokens=0,
                                                                                messages=HELLO))  # fmt: skip
    assert bad.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    wrong = sdk("sk-not-a-key")
    await raises(anthropic.AuthenticationError, lambda: wrong.messages.create(model=MODEL, max_tokens=9,
                                                                             messages=HELLO))  # fmt: skip
    narrow = sdk("narrow")
    await raises(anthropic.PermissionDeniedError, lambda: narrow.messages.create(model=MODEL, max_tokens=9,
                                                                                messages=HELLO))  # fmt: skip
    await raises(anthropic.NotFoundError, lambda: client.beta.messages.batches.retrieve("msgbatch_nope"))
    huge: list[Any] = [{"role": "user", "content": "x" * (MAX_REQUEST_BYTES + 1)}]
    await raises(anthropic.ContentTooLargeError, lambda: client.messages.create(model=MODEL, max_tokens=9,
                                                                               messages=huge))  # fmt: skip
    assert not fake.exchanges  # none of them was forwarded


async def test_rate_limit_is_rate_limit_error(sdk: ClientFactory, fake: FakeUpstream, request: pytest.FixtureRequest):
    import anthropic

    client = sdk(f"rpm1-anthropic-{request.node.callspec.params['sdk']}")
    await resolve(client.messages.count_tokens(model=MODEL, messages=HELLO))
    error = await raises(anthropic.RateLimitError, lambda: client.messages.count_tokens(model=MODEL, messages=HELLO))
    assert int(error.response.headers["retry-after"]) > 0
    assert len(fake.exchanges) == 1


async def test_mid_stream_failure_raises(sdk: ClientFactory, fake: FakeUpstream):
    import anthropic

    fake.behaviour.cut_after = 3
    call = lambda: sdk().messages.create(model=MODEL, max_tokens=64, messages=HELLO, stream=True)  # noqa: E731
    error = await raises(anthropic.APIStatusError, call)
    assert error.body["error"]["type"] == "api_error"  # type: ignore[index]


def both_clients(url: str) -> Iterator[Client]:
    import anthropic

    for kind in (anthropic.Anthropic, anthropic.AsyncAnthropic):
        yield kind(base_url=url, api_key="unused", max_retries=0, timeout=30)


async def check_status(url: str, kind: type[anthropic.APIStatusError], status: int, error_type: str) -> None:
    for client in both_clients(url):
        error = await raises(kind, partial(client.messages.create, model=MODEL, max_tokens=9, messages=HELLO))
        assert (error.status_code, error.body["error"]["type"]) == (status, error_type)  # type: ignore[index]
        await resolve(client.close())


async def test_unreachable_upstream_is_internal_server_error(make_gateway: GatewayFactory, closed_port: int):
    import anthropic

    gateway = make_gateway(ACEDATACLOUD_API_BASE_URL=f"http://127.0.0.1:{closed_port}")
    await check_status(gateway.url, anthropic.InternalServerError, 502, "api_error")


async def test_no_token_is_service_unavailable(make_gateway: GatewayFactory):
    import anthropic

    gateway = make_gateway(ACEDATACLOUD_API_TOKEN="")
    await check_status(gateway.url, anthropic.ServiceUnavailableError, 503, "overloaded_error")


async def test_slow_upstream_is_gateway_timeout(make_gateway: GatewayFactory, fake: FakeUpstream):
    import anthropic

    gateway = make_gateway(PROXY_FIRST_BYTE_TIMEOUT="0.3")
    fake.behaviour.headers_delay = 30  # far past the timeout: the gateway gives up, the fake is cancelled
    await check_status(gateway.url, anthropic.GatewayTimeoutError, 504, "api_error")
