"""What the fake upstream answers on Anthropic's Messages API, shaped as shared/api/MESSAGES.md says AceData sends
it: the message object, the stream's events in their documented order (usage in `message_start`, the final output
count in `message_delta`), tool use with `input_json_delta`, cache counts when the request uses `cache_control`,
and count_tokens. Pure functions of the request body."""

from __future__ import annotations

import uuid
from typing import Any

import orjson

from app.fakes.answers import word_count

Event = tuple[str, dict[str, Any]]  # (the SSE `event:` name, its data)


def input_tokens(body: dict[str, Any]) -> int:
    """What the request's input counts as: its messages, system prompt and tools, in words (four at the least)."""
    return max(4, word_count(body.get("messages")) + word_count(body.get("system")) + word_count(body.get("tools")))


def _usage(body: dict[str, Any], output_tokens: int) -> dict[str, Any]:
    """Input split as Anthropic reports it: with `cache_control` in the request, part read from the cache, part
    written to it, and the uncached rest in `input_tokens` (their sum is the request's input)."""
    total = input_tokens(body)
    if b'"cache_control"' not in orjson.dumps(body):
        return {"input_tokens": total, "output_tokens": output_tokens}
    read, created = total // 2, total // 4
    return {
        "input_tokens": total - read - created,
        "cache_creation_input_tokens": created,
        "cache_read_input_tokens": read,
        "cache_creation": {"ephemeral_5m_input_tokens": created, "ephemeral_1h_input_tokens": 0},
        "output_tokens": output_tokens,
    }


def tool_use(body: dict[str, Any]) -> dict[str, Any] | None:
    """The tool call a request gets when its `tool_choice` requires one (`any`, or a named `tool`) and its last
    turn is not a tool's result; its required arguments filled in. With `auto` (Claude Code's) it answers text."""
    given = body.get("tool_choice")
    choice: dict[str, Any] = given if isinstance(given, dict) else {}
    tools = [tool for tool in body.get("tools") or [] if isinstance(tool, dict) and "name" in tool]
    if choice.get("type") not in ("any", "tool") or not tools:
        return None
    last = (body.get("messages") or [{}])[-1]
    content = last.get("content") if isinstance(last, dict) else None
    if isinstance(content, list) and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in content):
        return None
    tool = next((tool for tool in tools if tool["name"] == choice.get("name")), tools[0])
    required = (tool.get("input_schema") or {}).get("required", [])
    arguments = {name: "Paris" for name in required}
    return {"type": "tool_use", "id": "toolu_" + uuid.uuid4().hex[:24], "name": tool["name"], "input": arguments}


def _capped(body: dict[str, Any], pieces: list[str]) -> tuple[list[str], str]:
    """The pieces within `max_tokens` (one token each), and why the answer stops."""
    cap = body.get("max_tokens")
    if isinstance(cap, int) and 0 < cap < len(pieces):
        return pieces[:cap], "max_tokens"
    return pieces, "end_turn"


def message(body: dict[str, Any], pieces: list[str]) -> dict[str, Any]:
    call = tool_use(body)
    pieces, stop = _capped(body, pieces)
    content = [call] if call is not None else [{"type": "text", "text": "".join(pieces)}]
    return {
        "id": "msg_" + uuid.uuid4().hex[:24],
        "type": "message",
        "role": "assistant",
        "model": body.get("model"),
        "content": content,
        "stop_reason": "tool_use" if call is not None else stop,
        "stop_sequence": None,
        "usage": _usage(body, len(pieces)),
    }


def _block_events(block: dict[str, Any]) -> list[Event]:
    """The events of one content block: its start (empty), its deltas, its stop."""
    if block["type"] == "tool_use":
        arguments = orjson.dumps(block["input"]).decode()
        halves = [arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :]]
        start = {**block, "input": {}}
        deltas = [{"type": "input_json_delta", "partial_json": half} for half in halves]
    else:
        start = {"type": "text", "text": ""}
        deltas = [{"type": "text_delta", "text": piece} for piece in block["pieces"]]
    return [
        ("content_block_start", {"type": "content_block_start", "index": 0, "content_block": start}),
        ("ping", {"type": "ping"}),
        *(("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": d}) for d in deltas),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
    ]


def message_events(body: dict[str, Any], pieces: list[str]) -> list[Event]:
    """The stream's events in MESSAGES.md's order: message_start (empty content, the input usage and one output
    token), content_block_start, ping, content_block_delta..., content_block_stop, message_delta (the stop reason
    and the final output count), message_stop."""
    final = message(body, pieces)
    block = final["content"][0]
    if block["type"] == "text":
        block = {"type": "text", "pieces": _capped(body, pieces)[0]}
    start_usage = {**final["usage"], "output_tokens": 1}
    started = {**final, "content": [], "stop_reason": None, "usage": start_usage}
    delta = {"stop_reason": final["stop_reason"], "stop_sequence": None}
    output = {"output_tokens": final["usage"]["output_tokens"]}
    return [
        ("message_start", {"type": "message_start", "message": started}),
        *_block_events(block),
        ("message_delta", {"type": "message_delta", "delta": delta, "usage": output}),
        ("message_stop", {"type": "message_stop"}),
    ]


def count_tokens(body: dict[str, Any]) -> dict[str, Any]:
    return {"input_tokens": input_tokens(body)}
