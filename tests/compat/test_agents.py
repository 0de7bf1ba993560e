"""The OpenAI Agents SDK against the shared keyed gateway, set up as its docs say for another OpenAI-compatible
endpoint: its own AsyncOpenAI as the default client, tracing off. It uses the Responses API by default; an agent
without tools (the SDK sends `"tools": []`) and one whose function tool must really be called, with Runner.run
and Runner.run_streamed, and nothing but loopback reached."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import openai
import orjson
import pytest

from app.fakes.upstream import FakeUpstream
from tests.helpers.compat import ConnectionAudit, KeyedGateway

if TYPE_CHECKING:
    from agents import Agent

EXPECTED = "Hello! This answer streams from"


@pytest.fixture
async def client(keyed_gateway: KeyedGateway, connection_audit: ConnectionAudit) -> AsyncIterator[openai.AsyncOpenAI]:
    """The gateway as the SDK's default client for one test (the previous one comes back afterwards; tracing
    stays off, so that nothing later in the session exports traces); the suite's audit checks that nothing but
    loopback was reached meanwhile."""
    from agents import set_default_openai_client, set_tracing_disabled  # here, not at the top: see conftest.py
    from agents.models import _openai_shared

    previous = _openai_shared.get_default_openai_client()
    since = len(connection_audit.hosts)
    gateway_client = openai.AsyncOpenAI(
        base_url=keyed_gateway.url + "/v1", api_key=keyed_gateway.key("app"), max_retries=0, timeout=30
    )
    set_default_openai_client(gateway_client, use_for_tracing=False)
    set_tracing_disabled(True)
    yield gateway_client
    await gateway_client.close()
    _openai_shared.set_default_openai_client(previous)  # type: ignore[arg-type]
    assert "127.0.0.1" in connection_audit.hosts[since:]  # the audit saw the SDK's own connections


def weather_agent(calls: list[str]) -> Agent:
    from agents import Agent, function_tool

    @function_tool
    def get_weather(city: str) -> str:
        """The weather in a city."""
        calls.append(city)
        return f"Sunny in {city}"

    return Agent(name="forecaster", instructions="Use the tool.", model="gpt-4.1", tools=[get_weather])


def requests_to(fake: FakeUpstream, path: str) -> list[dict[str, Any]]:
    return [orjson.loads(exchange.body) for exchange in fake.exchanges if exchange.path == path]


async def test_agent_without_tools(client: openai.AsyncOpenAI, fake: FakeUpstream):
    from agents import Agent, Runner

    agent = Agent(name="plain", instructions="Be brief.", model="gpt-4.1")

    result = await Runner.run(agent, "Say hello")

    assert result.final_output.startswith(EXPECTED)
    [sent] = requests_to(fake, "/openai/responses")
    assert sent.get("tools") == []  # what the SDK sends for an agent without tools, and the gateway accepts


async def test_agent_calls_its_function_tool(client: openai.AsyncOpenAI, fake: FakeUpstream):
    from agents import Runner

    calls: list[str] = []

    result = await Runner.run(weather_agent(calls), "What is the weather in Paris?")

    assert calls == ["Paris"]  # the tool ran, with the arguments the model's function call gave
    assert result.final_output.startswith(EXPECTED)
    first, second = requests_to(fake, "/openai/responses")
    assert first["tools"][0]["name"] == "get_weather"
    outputs = [item for item in second["input"] if item.get("type") == "function_call_output"]
    assert [item["output"] for item in outputs] == ["Sunny in Paris"]


@pytest.mark.parametrize("with_tool", [False, True], ids=["no-tools", "tool"])
async def test_agent_run_streamed(client: openai.AsyncOpenAI, fake: FakeUpstream, with_tool: bool):
    from agents import Agent, Runner

    calls: list[str] = []
    agent = weather_agent(calls) if with_tool else Agent(name="plain", instructions="Be brief.", model="gpt-4.1")

    result = Runner.run_streamed(agent, "What is the weather in Paris?")
    deltas = [
        event.data.delta
        async for event in result.stream_events()
        if event.type == "raw_response_event" and event.data.type == "response.output_text.delta"
    ]

    assert "".join(deltas) == result.final_output
    assert result.final_output.startswith(EXPECTED)
    assert calls == (["Paris"] if with_tool else [])
    assert all(sent["stream"] for sent in requests_to(fake, "/openai/responses"))


async def test_agent_on_chat_completions_model(client: openai.AsyncOpenAI, fake: FakeUpstream):
    from agents import Agent, OpenAIChatCompletionsModel, Runner

    model = OpenAIChatCompletionsModel(model="claude-sonnet-4-5-20250929", openai_client=client)
    agent = Agent(name="plain", instructions="Be brief.", model=model)

    result = await Runner.run(agent, "Say hello")
    streamed = Runner.run_streamed(agent, "Say hello")
    events = [event async for event in streamed.stream_events()]

    assert result.final_output.startswith(EXPECTED)
    assert streamed.final_output == result.final_output
    assert events
    assert [exchange.path for exchange in fake.exchanges] == ["/v1/chat/completions"] * 2


def test_the_audit_sees_what_leaves_loopback(connection_audit: ConnectionAudit):
    """The audit the suite relies on catches a lookup of another host (a numeric one: no network is touched)."""
    since = len(connection_audit.hosts)
    socket.getaddrinfo("203.0.113.7", 443, flags=socket.AI_NUMERICHOST)
    assert connection_audit.outside_loopback(since) == ["203.0.113.7"]
    del connection_audit.hosts[since:]  # seen on purpose: not a finding for this test's own audit
