"""The fake upstream's Gemini routes, in the shapes AceData documents (AceDataCloud/GeminiAPI docs): a
GenerateContentResponse, or with `?alt=sse` one per event, each chunk's `usageMetadata` growing to the last."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import orjson

from app.fakes import answers

if TYPE_CHECKING:
    from app.fakes.exchange import Exchange, Sender


def _prompt_tokens(body: dict[str, Any]) -> int:
    return max(1, answers.word_count(body.get("contents")))


def _chunk(model: str, text: str, usage: dict[str, int], finished: bool) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"parts": [{"text": text}], "role": "model"}, "index": 0}
    if finished:
        candidate["finishReason"] = "STOP"
    return {"candidates": [candidate], "usageMetadata": usage, "modelVersion": model}


def _usage(prompt: int, output: int | None) -> dict[str, int]:
    if output is None:  # a chunk before the last: the prompt is counted, the candidates not yet
        return {"promptTokenCount": prompt, "totalTokenCount": prompt}
    return {"promptTokenCount": prompt, "candidatesTokenCount": output, "totalTokenCount": prompt + output}


async def generate(body: dict[str, Any], exchange: Exchange, out: Sender) -> None:
    pieces = answers.text_pieces(out.behaviour.deltas)
    usage = _usage(_prompt_tokens(body), len(pieces))
    await out.json(200, _chunk(exchange.parameter, "".join(pieces), usage, finished=True))


async def stream(body: dict[str, Any], exchange: Exchange, out: Sender) -> None:
    pieces = answers.text_pieces(out.behaviour.deltas)
    prompt, last = _prompt_tokens(body), len(pieces) - 1
    chunks = [
        _chunk(exchange.parameter, piece, _usage(prompt, len(pieces) if i == last else None), finished=i == last)
        for i, piece in enumerate(pieces)
    ]
    if b"alt=sse" not in exchange.query:  # without it, Gemini answers one JSON array of the chunks
        await out.start(200, b"application/json")
        await out.chunk(orjson.dumps(chunks))
        await out.end()
        return
    await out.start(200, b"text/event-stream")
    for chunk in chunks:
        await out.chunk(b"data: " + orjson.dumps(chunk) + b"\r\n\r\n")
    await out.end()
