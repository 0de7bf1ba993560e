"""The answer-format vocabulary: media types parsed one way for requests and answers alike."""

from typing import get_args

import pytest

from app.proxy.streams import MEDIA_TYPES, Format, is_json, media_type, stream_format
from app.proxy.table import ROUTES


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        (b"text/event-stream", "sse"),
        (b"Text/Event-Stream; charset=utf-8", "sse"),
        (b"application/x-ndjson", "ndjson"),
        (b" application/jsonl ;q=1", "ndjson"),
        (b"application/json", None),
        (b"", None),
    ],
)
def test_stream_format_reads_the_media_type_only(content_type: bytes, expected: str | None) -> None:
    assert stream_format(content_type) == expected


def test_media_type_drops_parameters_and_case() -> None:
    assert media_type(b" Application/JSON ; charset=UTF-8") == b"application/json"
    assert is_json(media_type(b"application/problem+json"))
    assert not is_json(media_type(b"text/plain; x=application/json"))


def test_every_format_a_route_gives_has_one_media_type() -> None:
    assert set(MEDIA_TYPES) == set(get_args(Format)) == {"json", "sse", "ndjson", "audio"}
    assert {kind for spec in ROUTES for kind in spec.formats} <= set(MEDIA_TYPES)
    assert stream_format(MEDIA_TYPES["sse"].encode()) == "sse"
    assert stream_format(MEDIA_TYPES["ndjson"].encode()) == "ndjson"
