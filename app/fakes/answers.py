"""What the fake upstream answers, shaped as the real wire formats are (docs/wire-formats.md, OpenAI's API
reference, AceData's API pages; docs/upstream-api.md): Responses objects and their stream events (tool calls
included), chat completions and their chunks, embeddings, images. Pure functions of the request body."""

from __future__ import annotations

import base64
import struct
import time
import uuid
from typing import Any

import orjson

TEXT = "Hello! This answer streams from the acedata-proxy fake upstream, one piece at a time."  # its pieces wrap
WORDS = TEXT.split()
# a 1x1 transparent PNG: what an image request gets as b64_json
PNG = base64.b64encode(
    bytes.fromhex(
        "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
        "1f15c4890000000d49444154789c6360000002000001e221bc330000000049454e44ae426082"
    )
).decode()


def text_pieces(count: int, pad: int = 0) -> list[str]:
    """An answer's text in `count` pieces (a stream's deltas), each padded with `pad` filler characters."""
    filler = "~" * pad
    return [WORDS[i % len(WORDS)] + filler + (" " if i < count - 1 else "") for i in range(count)]


def word_count(value: Any) -> int:
    return len(orjson.dumps(value).split()) if value is not None else 0


def _responses_usage(body: dict[str, Any], output_tokens: int) -> dict[str, Any]:
    input_tokens = max(1, word_count(body.get("input")))
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


def tool_call(body: dict[str, Any]) -> dict[str, Any] | None:
    """The function call a request with tools gets first (its required string arguments filled in), or None once
    the input already carries a call's output, or when it has no function tools."""
    given = body.get("input")
    items: list[Any] = given if isinstance(given, list) else []
    if any(isinstance(item, dict) and item.get("type") == "function_call_output" for item in items):
        return None
    tools = [tool for tool in body.get("tools") or [] if isinstance(tool, dict) and tool.get("type") == "function"]
    if not tools:
        return None
    schema = tools[0].get("parameters") or {}
    arguments = {name: "Paris" for name in schema.get("required", [])}
    return {
        "id": "fc_fake",
        "type": "function_call",
        "status": "completed",
        "call_id": "call_" + uuid.uuid4().hex[:12],
        "name": tools[0]["name"],
        "arguments": orjson.dumps(arguments).decode(),
    }


def _message(text: str, status: str) -> dict[str, Any]:
    content = [{"type": "output_text", "text": text, "annotations": []}] if status == "completed" else []
    return {"id": "msg_fake", "type": "message", "status": status, "role": "assistant", "content": content}


def response(body: dict[str, Any], pieces: list[str], status: str = "completed") -> dict[str, Any]:
    """A Responses object. Not yet completed (queued, in progress), it has no output and no usage yet."""
    done = status == "completed"
    call = tool_call(body) if done else None
    output = [call] if call is not None else [_message("".join(pieces), status)] if done else []
    return {
        "id": "resp_" + uuid.uuid4().hex,
        "object": "response",
        "created_at": int(time.time()),
        "status": status,
        "background": bool(body.get("background")),
        "error": None,
        "incomplete_details": None,
        "model": body.get("model"),
        "output": output,
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": body.get("tools") or [],
        "usage": _responses_usage(body, len(pieces)) if done else None,
    }


def _item_events(item: dict[str, Any], pieces: list[str]) -> list[dict[str, Any]]:
    """The events between `output_item.added` and `output_item.done` of one output item."""
    if item["type"] == "function_call":
        ids = {"item_id": item["id"], "output_index": 0}
        return [
            {"type": "response.function_call_arguments.delta", **ids, "delta": item["arguments"]},
            {"type": "response.function_call_arguments.done", **ids, "arguments": item["arguments"]},
        ]
    text = "".join(pieces)
    part = {"type": "output_text", "text": "", "annotations": []}
    ids = {"item_id": item["id"], "output_index": 0, "content_index": 0}
    return [
        {"type": "response.content_part.added", **ids, "part": part},
        *({"type": "response.output_text.delta", **ids, "delta": p, "logprobs": []} for p in pieces),
        {"type": "response.output_text.done", **ids, "text": text, "logprobs": []},
        {"type": "response.content_part.done", **ids, "part": {**part, "text": text}},
    ]


def responses_events(body: dict[str, Any], pieces: list[str]) -> list[dict[str, Any]]:
    """The Responses stream's event objects, in the documented order: `output` is empty until items are added."""
    final = response(body, pieces)
    base = {**response(body, pieces, status="in_progress"), "id": final["id"]}
    item = final["output"][0]
    emptied: dict[str, Any] = {"arguments": ""} if item["type"] == "function_call" else {"content": []}
    added = {**item, "status": "in_progress", **emptied}
    events: list[dict[str, Any]] = [
        {"type": "response.created", "response": base},
        {"type": "response.in_progress", "response": base},
        {"type": "response.output_item.added", "output_index": 0, "item": added},
        *_item_events(item, pieces),
        {"type": "response.output_item.done", "output_index": 0, "item": item},
        {"type": "response.completed", "response": final},
    ]
    for number, event in enumerate(events):
        event["sequence_number"] = number
    return events


def _chat_usage(body: dict[str, Any], completion_tokens: int) -> dict[str, Any]:
    prompt_tokens = max(1, word_count(body.get("messages")))
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def choice_count(body: dict[str, Any]) -> int:
    """How many answers the body asks for (`n`, 1 to 128 as the schemas allow)."""
    n = body.get("n")
    return n if isinstance(n, int) and 0 < n <= 128 else 1


def chat_completion(body: dict[str, Any], pieces: list[str]) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": "".join(pieces), "refusal": None, "annotations": []}
    choices = [
        {"index": i, "message": message, "logprobs": None, "finish_reason": "stop"} for i in range(choice_count(body))
    ]
    return {
        "id": "chatcmpl-" + uuid.uuid4().hex[:24],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": body.get("model"),
        "choices": choices,
        "usage": _chat_usage(body, len(pieces) * len(choices)),
        "system_fingerprint": "fp_fake",
    }


def chat_chunks(body: dict[str, Any], pieces: list[str]) -> list[dict[str, Any]]:
    """The chat stream's chunks: the role, each piece, the finish reason, for each of the `n` choices in turn (as
    OpenAI interleaves them, one choice per chunk); with `stream_options.include_usage`, every chunk carries
    `"usage": null` and one last chunk with no choices carries the usage."""
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    base = {
        "id": "chatcmpl-" + uuid.uuid4().hex[:24],
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": body.get("model"),
        "system_fingerprint": "fp_fake",
    } | ({"usage": None} if include_usage else {})

    def chunk(index: int, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        return {**base, "choices": [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}]}

    count = choice_count(body)
    chunks = [chunk(i, {"role": "assistant", "content": "", "refusal": None}) for i in range(count)]
    chunks += [chunk(i, {"content": piece}) for piece in pieces for i in range(count)]
    chunks += [chunk(i, {}, "stop") for i in range(count)]
    if include_usage:
        chunks.append({**base, "choices": [], "usage": _chat_usage(body, len(pieces) * count)})
    return chunks


def embeddings(body: dict[str, Any]) -> dict[str, Any]:
    inputs = body.get("input")
    texts = inputs if isinstance(inputs, list) else [inputs]
    dimensions = body.get("dimensions")
    size = dimensions if isinstance(dimensions, int) and 0 < dimensions <= 3072 else 8  # 3072: OpenAI's largest
    vectors = [[round((index + 1) / (dimension + 2), 6) for dimension in range(size)] for index in range(len(texts))]
    data: list[dict[str, Any]] = [
        {"object": "embedding", "index": index, "embedding": vector} for index, vector in enumerate(vectors)
    ]
    if body.get("encoding_format") == "base64":
        for item in data:
            vector = item["embedding"]  # as OpenAI sends it: little-endian float32s, base64-encoded
            item["embedding"] = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode()
    tokens = max(1, word_count(inputs))
    return {
        "object": "list",
        "data": data,
        "model": body.get("model"),
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }


def images(body: dict[str, Any]) -> dict[str, Any]:
    n = body.get("n")
    count = n if isinstance(n, int) and 0 < n <= 10 else 1
    as_b64 = body.get("response_format") == "b64_json" or str(body.get("model", "")).startswith("gpt-image")
    item = {"b64_json": PNG} if as_b64 else {"url": "https://platform.acedata.cloud/fake/image.png"}
    data = [{**item, "revised_prompt": body.get("prompt")} for _ in range(count)]
    tokens = max(1, word_count(body.get("prompt")))
    usage = {"input_tokens": tokens, "output_tokens": 1056 * count, "total_tokens": tokens + 1056 * count}
    return {"created": int(time.time()), "data": data, "usage": usage}
