"""Bounds on the work a request body may cause before and while it is parsed, and the check for duplicate
top-level keys (parsers keep either the first or the last: the gateway must not validate one and forward both).

A body within PROXY_MAX_REQUEST_BYTES may still hold millions of tiny JSON values, each a Python object once
parsed: 10 MB of `{}` cost 500 MB and a second of the event loop. A structural count first (bytes.count runs at
memory speed, and counts separators inside strings too, so it only over-estimates) refuses bodies past ceilings
that no legitimate request reaches: the largest, an embeddings request of pre-tokenized inputs, holds at most
300,000 tokens (the upstream's per-request limit), one comma each.
"""

from __future__ import annotations

import orjson

from app.errors import InvalidRequest
from app.types import Body

MAX_SEPARATORS = 1_000_000  # commas: about one per value (ints cost ~36 bytes each once parsed)
MAX_CONTAINERS = 200_000  # objects and arrays: the costly values (~60 ms of parsing at the ceiling)
WALK_FROM = 1024 * 1024  # bodies this large skip the per-key scans and walk their top level at once
WHITESPACE = b" \t\r\n"


def check_structure(body: Body) -> None:
    """InvalidRequest when the body holds more JSON values than any request needs."""
    if body.count(b",") > MAX_SEPARATORS or body.count(b"{") + body.count(b"[") > MAX_CONTAINERS:
        raise InvalidRequest(
            f"Request body has too many JSON values (over {MAX_SEPARATORS} commas or {MAX_CONTAINERS} objects "
            "and arrays); no request to this gateway needs that many."
        )


def check_unique_keys(body: Body, document: dict[str, object]) -> None:
    """InvalidRequest when a top-level key appears twice. Cheap when it cannot: every key's literal appears
    exactly once in the body and nothing could spell a key another way (a \\u escape, or a key with characters
    that have escapes of their own). Otherwise, or for large bodies, the top level is walked."""
    if (len(body) < WALK_FROM and b"\\u" not in body) and all(_once(body, key) for key in document):
        return
    if len(_top_level_keys(body)) != len(document):
        raise InvalidRequest("Request body has duplicate top-level keys.")


_literals: dict[str, bytes | None] = {}  # a key's literal as written, None when it could be written otherwise
LITERALS_KEPT = 1024


def _once(body: Body, key: str) -> bool:
    literal = _literals.get(key, b"")
    if literal == b"":
        unsafe = "/" in key or '"' in key or "\\" in key or not key.isprintable()
        literal = None if unsafe else b'"' + key.encode() + b'"'
        if len(_literals) < LITERALS_KEPT:  # the fields clients send; keys a client makes up are not kept
            _literals[key] = literal
    return literal is not None and body.count(literal) == 1


def _skip(body: Body, at: int) -> int:
    while body[at] in WHITESPACE:
        at += 1
    return at


def _end_of_value(view: memoryview, at: int) -> int:
    """Where the JSON value starting at `at` ends, found by orjson itself (the body already parsed whole)."""
    try:
        orjson.loads(view[at:])
    except orjson.JSONDecodeError as exc:  # "unexpected content after document": where the value ended
        return at + exc.pos
    return len(view)


def _top_level_keys(body: Body) -> list[object]:
    """Every top-level key of a valid JSON object, in order, duplicates included."""
    view, keys = memoryview(body), []
    at = _skip(body, _skip(body, 0) + 1)  # past the opening brace
    while body[at] != ord("}"):
        end = _end_of_value(view, at)
        keys.append(orjson.loads(view[at:end]))
        at = _skip(body, _end_of_value(view, _skip(body, _skip(body, end) + 1)))  # past ':' and the value
        if body[at] == ord(","):
            at = _skip(body, at + 1)
    return keys
