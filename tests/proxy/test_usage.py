"""Reading token usage from bytes in passing: any chunking, JSON and streams, never fooled by model text."""

from __future__ import annotations

import orjson
import pytest

from app.fakes.answers import chat_chunks, embeddings, responses_events
from app.fakes.messages import input_tokens, message, message_events
from app.proxy.usage import (
    CHAT_USAGE,
    EMBEDDINGS_USAGE,
    GEMINI_USAGE,
    MESSAGES_USAGE,
    RESPONSES_USAGE,
    TRANSCRIPTION_USAGE,
    TextMeter,
    UsageFields,
    UsageTap,
    _closing_brace,
)
from tests.helpers import sse_events


def feed_all(*chunks: bytes, fields: UsageFields = RESPONSES_USAGE) -> UsageTap:
    tap = UsageTap(fields)
    for chunk in chunks:
        tap.feed(chunk)
    return tap


def sse_stream(deltas: int = 3) -> bytes:
    events = responses_events({"model": "gpt-4.1", "input": "one two three"}, ["a ", "b ", "c"][:deltas])
    return b"".join(b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps(e) + b"\n\n" for e in events)


def test_usage_from_a_whole_stream():
    tap = feed_all(sse_stream())
    assert (tap.input_tokens, tap.output_tokens) == (3, 3)


def test_usage_survives_every_split_point():
    stream = sse_stream()
    start = stream.index(b'"usage":{')
    for cut in range(start - 50, start + 260):
        tap = feed_all(stream[:cut], stream[cut:])
        assert (tap.input_tokens, tap.output_tokens) == (3, 3), cut


def test_usage_split_into_tiny_chunks():
    stream = sse_stream()
    tap = feed_all(*(stream[i : i + 7] for i in range(0, len(stream), 7)))
    assert (tap.input_tokens, tap.output_tokens) == (3, 3)


def test_chat_style_usage():
    chunk = b'data: {"object":"chat.completion.chunk","choices":[],"usage":{"prompt_tokens":11,"completion_tokens":4,"total_tokens":15}}\n\ndata: [DONE]\n\n'  # noqa: E501
    tap = feed_all(chunk, fields=CHAT_USAGE)
    assert (tap.input_tokens, tap.output_tokens) == (11, 4)
    assert feed_all(chunk).input_tokens is None  # a Responses route does not read chat usage


def test_json_body_usage():
    body = orjson.dumps(
        {"id": "r", "output": [], "usage": {"input_tokens": 8, "output_tokens": 10, "total_tokens": 18}}
    )
    assert (feed_all(body).input_tokens, feed_all(body).output_tokens) == (8, 10)


@pytest.mark.parametrize(
    "body",
    [
        b'{"answer": "the \\"usage\\": {\\"output_tokens\\": 99} trick", "id": "1"}',
        b'{"usage": null, "max_output_tokens": 5}',
        b'{"answer": "no usage here"}',
    ],
)
def test_no_usage_is_no_usage(body: bytes):
    tap = feed_all(body)
    assert (tap.input_tokens, tap.output_tokens) == (None, None)


@pytest.mark.parametrize(
    ("data", "start", "expected"),
    [(b'x{"a":{"b":1},"c":{}}y', 1, 20), (b"{{}", 0, -1), (b"{}", 0, 1), (b'{"a":1}}}', 0, 6), (b"{", 0, -1)],
)
def test_closing_brace_skips_nested_objects(data: bytes, start: int, expected: int):
    assert _closing_brace(data, start) == expected


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b'{"a":{"b":{"c":{}}}}', 19),  # nested past the one-call match: walked brace by brace
        (b'{"a":{"b":{"c":1}}', -1),
        (b'{"a":"' + b"x" * 5000 + b'","b":{}}', 5014),  # longer than the match's window
        (b'{"a":"' + b"x" * 5000, -1),
    ],
)
def test_closing_brace_of_deep_or_long_objects(data: bytes, expected: int):
    assert _closing_brace(data, 0) == expected


def test_chat_usage_from_a_stream_with_include_usage_split_anywhere():
    body = {
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "one two"}],
        "stream_options": {"include_usage": True},
    }
    stream = (
        b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chat_chunks(body, ["a ", "b ", "c"]))
        + b"data: [DONE]\n\n"
    )
    expected = orjson.loads(stream.split(b"data: ")[-2])["usage"]
    for cut in range(0, len(stream), 7):
        tap = feed_all(stream[:cut], stream[cut:], fields=CHAT_USAGE)
        assert (tap.input_tokens, tap.output_tokens) == (expected["prompt_tokens"], expected["completion_tokens"])


def test_chat_stream_without_usage_counts_nothing():
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}
    stream = b"".join(b"data: " + orjson.dumps(c) + b"\n\n" for c in chat_chunks(body, ["a ", "b"]))
    tap = feed_all(stream, fields=CHAT_USAGE)
    assert (tap.input_tokens, tap.output_tokens) == (None, None)


def test_embeddings_usage_is_input_only():
    tap = feed_all(
        orjson.dumps(embeddings({"model": "text-embedding-3-small", "input": ["a b c", "d"]})), fields=EMBEDDINGS_USAGE
    )
    assert tap.input_tokens is not None
    assert tap.input_tokens > 0
    assert tap.output_tokens == 0


CHAT_TEXT = ("content", "refusal", "arguments", "reasoning_content")


def metered(*chunks: bytes, keys: tuple[str, ...] = CHAT_TEXT) -> TextMeter:
    meter = TextMeter(keys)
    for chunk in chunks:
        meter.feed(chunk)
    return meter


def chat_stream(pieces: list[str], n: int = 1) -> bytes:
    chunks = chat_chunks({"model": "gpt-4o", "messages": [], "n": n}, pieces)
    return b"".join(b"data: " + orjson.dumps(chunk) + b"\n\n" for chunk in chunks) + b"data: [DONE]\n\n"


def test_the_meter_counts_every_piece_of_every_choice():
    meter = metered(chat_stream(["Hello", " wor", "ld"], n=3))
    assert (meter.pieces, meter.bytes) == (9, 3 * 11)  # the role chunks' empty content counts nothing
    assert meter.tokens == 9  # at least a token a piece


def test_the_meter_survives_every_split_point():
    stream = chat_stream(["Hello there, ", 'a "quoted" word', " and\nmore"], n=2)
    whole = metered(stream)
    for cut in range(len(stream)):
        split = metered(stream[:cut], stream[cut:])
        assert (split.pieces, split.bytes) == (whole.pieces, whole.bytes), cut
    tiny = metered(*(stream[i : i + 3] for i in range(0, len(stream), 3)))
    assert (tiny.pieces, tiny.bytes) == (whole.pieces, whole.bytes)


def test_long_text_counts_by_bytes():
    meter = metered(b'{"choices":[{"message":{"content":"' + b"x" * 4000 + b'"}}]}')
    assert meter.tokens == 1000


def test_the_meter_reads_only_its_keys_and_is_not_fooled_by_text():
    # a key name inside model text is escaped, so it cannot open a value of its own
    body = b'{"answer": "so far", "delta_answer": "say \\"delta_answer\\": \\"xx\\""}'
    meter = metered(body, keys=("delta_answer",))
    assert meter.pieces == 1
    assert meter.bytes == len(b'say \\"delta_answer\\": \\"xx\\"')
    assert metered(b'{"reasoning_content":"abcd"}', keys=("content",)).pieces == 0


def messages_stream(body: dict[str, object]) -> bytes:
    events = message_events(body, ["a ", "b ", "c"])
    return b"".join(b"event: " + name.encode() + b"\ndata: " + orjson.dumps(data) + b"\n\n" for name, data in events)


CACHED = {
    "model": "claude-opus-5-5",
    "max_tokens": 64,
    "system": [{"type": "text", "text": "one two three four five six seven", "cache_control": {"type": "ephemeral"}}],
    "messages": [{"role": "user", "content": "hi there"}],
}


def test_messages_stream_merges_start_input_with_cache_and_last_delta_output():
    stream = messages_stream(CACHED)
    start = orjson.loads(sse_events(stream)[0][1])["message"]["usage"]
    assert start["cache_read_input_tokens"] > 0
    assert start["cache_creation_input_tokens"] > 0
    expected = (input_tokens(CACHED), 3)
    assert (
        start["input_tokens"] + start["cache_read_input_tokens"] + start["cache_creation_input_tokens"] == expected[0]
    )
    assert (
        feed_all(stream, fields=MESSAGES_USAGE).input_tokens,
        feed_all(stream, fields=MESSAGES_USAGE).output_tokens,
    ) == expected
    for cut in range(0, len(stream), 11):  # every kind of split: inside either usage object, between them
        tap = feed_all(stream[:cut], stream[cut:], fields=MESSAGES_USAGE)
        assert (tap.input_tokens, tap.output_tokens) == expected, cut
    tiny = feed_all(*(stream[i : i + 5] for i in range(0, len(stream), 5)), fields=MESSAGES_USAGE)
    assert (tiny.input_tokens, tiny.output_tokens) == expected


def test_messages_json_body_and_later_objects_replace_earlier_counts():
    body = orjson.dumps(message(CACHED, ["a ", "b"]))
    tap = feed_all(body, fields=MESSAGES_USAGE)
    assert (tap.input_tokens, tap.output_tokens) == (input_tokens(CACHED), 2)
    tap.feed(b'event: message_delta\ndata: {"type":"message_delta","usage":{"output_tokens":9}}\n\n')
    assert (tap.input_tokens, tap.output_tokens) == (input_tokens(CACHED), 9)  # output only: input kept


def test_gemini_usage_is_the_last_usage_metadata_with_candidates():
    first = b'data: {"candidates":[{"content":{"parts":[{"text":"Hi"}]}}],"usageMetadata":{"promptTokenCount":7,'
    rest = b'"totalTokenCount":7}}\r\n\r\n'
    last = b'data: {"candidates":[],"usageMetadata":{"promptTokenCount":7,"candidatesTokenCount":12}}\r\n\r\n'
    tap = feed_all(first, rest, last[:50], last[50:], fields=GEMINI_USAGE)
    assert (tap.input_tokens, tap.output_tokens) == (7, 12)


def test_a_transcription_reports_seconds_or_tokens():
    whisper = feed_all(b'{"text":"a \\"type\\"","usage":{"type":"duration","seconds":2.2}}', fields=TRANSCRIPTION_USAGE)
    assert (whisper.units, whisper.input_tokens) == (3, None)  # a started second counts whole
    delta = b'data: {"type":"transcript.text.delta","delta":"Hi"}\n\n'
    usage = b'"usage":{"type":"tokens","input_tokens":14,"output_tokens":3}'
    done = b'data: {"type":"transcript.text.done","text":"Hi",' + usage + b"}"
    streamed = feed_all(delta, done + b"\n\n", fields=TRANSCRIPTION_USAGE)
    assert (streamed.input_tokens, streamed.output_tokens, streamed.units) == (14, 3, None)
