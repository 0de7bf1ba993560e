"""Answer formats and stream framing, in one place: the formats a route can answer and their media types, which
answers are streams (SSE or NDJSON), what closes a half-sent event, and the error event that ends a stream whose
status line is already sent (docs/contract.md: a failure after streaming has begun ends the stream with a final error
event in the stream's own format)."""

from __future__ import annotations

from typing import Literal

from app.errors import Envelope, ProxyError

Stream = Literal["sse", "ndjson"]  # the answer formats that are streams
Format = Literal[Stream, "json", "audio"]  # every answer format a route can give
StreamFormat = Stream | None  # an answer's stream format; None: a plain body

# the media type each format is documented and asked for with (audio: as the request's `response_format` asks)
MEDIA_TYPES: dict[Format, str] = {
    "json": "application/json",
    "sse": "text/event-stream",
    "ndjson": "application/x-ndjson",
    "audio": "audio/*",
}
SSE_TYPE = MEDIA_TYPES["sse"].encode()
NDJSON_TYPES = (  # the names NDJSON goes by; an upstream may answer with any of them
    MEDIA_TYPES["ndjson"].encode(),
    b"application/ndjson",
    b"application/jsonl",
    b"application/x-jsonlines",
)

TAIL = 4  # bytes of a stream's end that tell whether its last event is complete ("\r\n\r\n" at the most)


def media_type(content_type: bytes) -> bytes:
    """A content-type value's media type, lowercased, without its parameters."""
    return content_type.partition(b";")[0].strip().lower()


def is_json(media: bytes) -> bool:
    """Whether a media type (from `media_type`) is JSON: application/json or a +json suffix."""
    return media == b"application/json" or media.endswith(b"+json")


def stream_format(content_type: bytes) -> StreamFormat:
    """The stream format of an answer with this content type, or None for a plain (JSON) body."""
    media = media_type(content_type)
    if media == SSE_TYPE:
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
