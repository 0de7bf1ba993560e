"""The fake upstream's Messages answers follow shared/api/MESSAGES.md: event order, usage placement, tool use."""

from __future__ import annotations

from typing import Any

import orjson

from app.fakes.messages import count_tokens, message, message_events

BODY: dict[str, Any] = {"model": "claude-opus-5-5", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]}
WEATHER = {"name": "get_weather", "input_schema": {"type": "object", "required": ["city"]}}


def test_stream_event_order_and_usage_placement():
    events = message_events(BODY, ["a ", "b ", "c"])
    assert [name for name, _ in events] == [
        "message_start", "content_block_start", "ping", "content_block_delta", "content_block_delta",
        "content_block_delta", "content_block_stop", "message_delta", "message_stop",
    ]  # fmt: skip
    start = events[0][1]["message"]
    assert (start["content"], start["usage"]) == ([], {"input_tokens": 4, "output_tokens": 1})
    assert events[-2][1]["delta"]["stop_reason"] == "end_turn"
    assert events[-2][1]["usage"] == {"output_tokens": 3}
    assert all(data["type"] == name for name, data in events)


def test_tool_use_when_tool_choice_requires_it_with_input_json_deltas():
    forced = {**BODY, "tools": [WEATHER], "tool_choice": {"type": "any"}}
    assert message({**BODY, "tools": [WEATHER]}, ["a"])["content"][0]["type"] == "text"  # auto: Claude Code's
    called = message(forced, ["a"])
    assert (called["stop_reason"], called["content"][0]["input"]) == ("tool_use", {"city": "Paris"})
    events = message_events(forced, ["a"])
    deltas = [data["delta"] for name, data in events if name == "content_block_delta"]
    assert {delta["type"] for delta in deltas} == {"input_json_delta"}
    assert orjson.loads("".join(delta["partial_json"] for delta in deltas)) == {"city": "Paris"}
    assert events[1][1]["content_block"]["input"] == {}
    answered = {**forced, "messages": [*BODY["messages"], {"role": "user", "content": [{"type": "tool_result"}]}]}
    assert message(answered, ["a"])["stop_reason"] == "end_turn"


def test_max_tokens_caps_the_answer_and_count_tokens_counts_input():
    capped = message({**BODY, "max_tokens": 2}, ["a ", "b ", "c"])
    assert (capped["stop_reason"], capped["content"][0]["text"], capped["usage"]["output_tokens"]) == (
        "max_tokens", "a b ", 2,
    )  # fmt: skip
    assert count_tokens(BODY) == {"input_tokens": 4}
