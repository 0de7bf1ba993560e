"""Stream framing, in one place: which answers are streams (SSE or NDJSON), what closes a half-sent event, and
the error event that ends a stream whose status line is already sent (docs/contract.md: a failure after streaming has
begun ends the stream with a final error event in the stream's own format)."""

from __future__ import annotations

from typing import Literal

from app.errors import Envelope, ProxyError

StreamFormat = Literal["sse", "ndjson"] | None

NDJSON_TYPES = (
    b"application/x-ndjson",
    b"application/ndjson",
    b"application/jsonl",
    b"application/x-jsonlines",
)

TAIL = 4  # bytes of a stream's end that tell whether its last event is complete ("\r\n\r\n" at the most)


def stream_format(content_type: bytes) -> StreamFormat:
    """The stream format of an answer with this content type, or None for a plain (JSON) body."""
    media = content_type.split(b";", 1)[0].strip().lower()
    if media == b"text/event-stream":
        return "sse"
    if media in NDJSON_TYPES:
        return "ndjson"
    return None


def separator(tail: bytes, fmt: StreamFormat) -> bytes:
    """What closes a half-sent event, given the stream's last bytes, so that what follows is an event of its own."""
    if fmt == "sse":
        return b"" if tail.endswith((b"\n\n", b"\r\n\r\n", b"\r\r")) or not tail else b"\n\n"
    return b"" if tail.endswith(b"\n") or not tail else b"\n"


def error_event(error: ProxyError, fmt: StreamFormat, envelope: Envelope = "openai") -> bytes:
    """The error as one event: SSE `event: error` with the envelope as data (Anthropic's own mid-stream error
    event when the envelope is Anthropic's), or one NDJSON line."""
    if fmt == "sse":
        return b"event: error\ndata: " + error.body(envelope) + b"\n\n"
    return error.body(envelope) + b"\n"


def closing_event(tail: bytes, fmt: StreamFormat, error: ProxyError, envelope: Envelope = "openai") -> bytes:
    """What ends a stream cut by `error`: the separator its last bytes need, then the error event."""
    return separator(tail[-TAIL:], fmt) + error_event(error, fmt, envelope)
