"""Bounds on the work a request body may cause before and while it is parsed, and the check for duplicate
top-level keys (parsers keep either the first or the last: the gateway must not validate one and forward both).

A body within PROXY_MAX_REQUEST_BYTES may still hold millions of tiny JSON values, each a Python object once
parsed: many times the body's size in memory, and the event loop stopped meanwhile (docs/performance-facts.md).
A structural count first (bytes.count runs at memory speed, and counts separators inside strings too, so it only
over-estimates) refuses bodies past ceilings that no legitimate request reaches: the largest, an embeddings
request of pre-tokenized inputs, holds at most 300,000 tokens (the upstream's per-request limit), one comma each.
"""

from __future__ import annotations

import re

from app.errors import InvalidRequest
from app.types import Body

MAX_SEPARATORS = 1_000_000  # commas: about one per value
MAX_CONTAINERS = 200_000  # objects and arrays: the costly values
MAX_FIELDS = 512  # top-level keys: the widest request schema has under a hundred
WALK_FROM = 1024 * 1024  # bodies this large skip the per-key scans and walk their top level at once


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
    if len(document) > MAX_FIELDS:
        raise InvalidRequest(f"Request body has {len(document)} top-level fields; no request needs over {MAX_FIELDS}.")
    if len(body) < WALK_FROM and b"\\u" not in body:
        for key in document:  # a plain loop: all() over a generator cost as much again as the counts
            literal = _literals.get(key, b"")
            if literal == b"":
                literal = _literal(key)
            if literal is None or body.count(literal) != 1:
                break
        else:
            return
    if _top_level_key_count(body) != len(document):
        raise InvalidRequest("Request body has duplicate top-level keys.")


_literals: dict[str, bytes | None] = {}  # a key's literal as written, None when it could be written otherwise
LITERALS_KEPT = 1024


def _literal(key: str) -> bytes | None:
    unsafe = "/" in key or '"' in key or "\\" in key or not key.isprintable()
    literal = None if unsafe else b'"' + key.encode() + b'"'
    if len(_literals) < LITERALS_KEPT:  # the fields clients send; keys a client makes up are not kept
        _literals[key] = literal
    return literal


# The walk's tokens. At depth 1: a string (escapes included) or a bracket. Elsewhere: the run up to the next bracket
# outside a string, consumed in one match. Possessive, so that the engine keeps no backtracking state.
STRING = rb'"[^"\\]*+(?:\\.[^"\\]*+)*+"'  # a JSON string, escapes included
TOKEN = re.compile(STRING + rb"|[{}\[\]]")
RUN = re.compile(rb'(?:[^"{}\[\]]++|' + STRING + rb")*+")
COLON_NEXT = re.compile(rb"[ \t\r\n]*+:")
QUOTE, OPENING = ord('"'), b"{["


def _top_level_key_count(body: Body) -> int:
    """How many keys a valid JSON object (the body already parsed whole) has at its top level, duplicates
    included: the strings at depth 1 that a colon follows. Byte offsets throughout (non-ASCII text cannot shift
    them), in linear time: nested values are skipped bracket to bracket in the regex engine."""
    keys = at = depth = 0
    while True:
        if depth == 1:
            token = TOKEN.search(body, at)
            assert token is not None  # a valid object closes its brace
            at, char = token.end(), body[token.start()]
            if char == QUOTE:
                keys += COLON_NEXT.match(body, at) is not None
                continue
        else:
            at = RUN.match(body, at).end()  # type: ignore[union-attr]  # matches the empty string at least
            char, at = body[at], at + 1
        depth += 1 if char in OPENING else -1
        if depth == 0:
            return keys
