"""langchain-openai's ChatOpenAI against the shared keyed gateway: its default mode (chat completions) and
`use_responses_api=True`, invoke and stream, on both base URLs."""

from __future__ import annotations

import pytest
from langchain_openai import ChatOpenAI

from app.fakes.upstream import FakeUpstream
from tests.helpers.compat import KeyedGateway

EXPECTED = "Hello! This answer streams from "  # the fake's five-piece answer


def chat_model(gateway: KeyedGateway, prefix: str, responses: bool) -> ChatOpenAI:
    return ChatOpenAI(
        model="gpt-4.1",
        base_url=gateway.url + prefix,
        api_key=gateway.key("app"),
        max_retries=0,
        use_responses_api=responses,
    )


@pytest.mark.parametrize("prefix", ["/v1", "/openai"])
@pytest.mark.parametrize("responses", [False, True], ids=["chat", "responses"])
def test_chat_openai_invoke_and_stream(keyed_gateway: KeyedGateway, fake: FakeUpstream, prefix: str, responses: bool):
    model = chat_model(keyed_gateway, prefix, responses)

    message = model.invoke("Say hello")
    assert message.text.rstrip() == EXPECTED.rstrip()
    assert message.usage_metadata is not None
    assert message.usage_metadata["output_tokens"] == 5

    chunks = list(model.stream("Say hello"))
    assert len([chunk for chunk in chunks if chunk.text]) == 5  # one chunk per piece: streamed, not buffered
    assert "".join(chunk.text for chunk in chunks).rstrip() == EXPECTED.rstrip()

    upstream = "/openai/responses" if responses else f"{prefix}/chat/completions"
    assert [exchange.path for exchange in fake.exchanges] == [upstream] * 2


async def test_chat_openai_async_stream(keyed_gateway: KeyedGateway, fake: FakeUpstream):
    model = chat_model(keyed_gateway, "/v1", responses=False)
    text = "".join([chunk.text async for chunk in model.astream("Say hello")])
    assert text.rstrip() == EXPECTED.rstrip()
