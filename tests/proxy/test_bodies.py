"""The structural ceilings and the duplicate-key check, case by case (over real sockets: tests/test_hostile.py)."""

from __future__ import annotations

import orjson
import pytest

from app.errors import InvalidRequest
from app.proxy.bodies import MAX_FIELDS, WALK_FROM, check_structure, check_unique_keys


def test_the_largest_legitimate_body_passes_the_ceilings():
    """An embeddings request of pre-tokenized inputs at the upstream's 300,000 tokens, and 4 MB of prose."""
    check_structure(orjson.dumps({"model": "m", "input": [[50_000] * 8_000] * 37}))
    check_structure(orjson.dumps({"model": "m", "messages": [{"role": "user", "content": "Word, word. " * 350_000}]}))


@pytest.mark.parametrize("values", [b"1,", b"{},", b"[],"])
def test_bodies_past_the_ceilings_are_refused(values: bytes):
    with pytest.raises(InvalidRequest, match="too many JSON values"):
        check_structure(b'{"input":[' + values * 1_000_001 + b"1]}")


# What Claude Code sends: non-ASCII prose, keys repeated inside tools' schemas and as text, brackets and colons
# inside strings; one key spelled with a \u escape, so the literal check cannot answer and the top level is walked.
CLAUDE_CODE_LIKE = orjson.dumps(
    {
        "model": "claude-sonnet-4-5", "max_tokens": 32000, "stream": True,
        "system": [{"type": "text", "text": "\u23fa Claude Code \u2014 \"model\": {x: [1]}, \u00e9t\u00e9 \U0001f600"}],
        "messages": [{"role": "user", "content": [{"type": "text", "text": 'say "model": {"stream": true}'}]}],
        "tools": [{"name": "Bash", "input_schema": {"type": "object", "properties": {"model": {"type": "string"}}}}],
        "metadata": {"user_id": "user_\u00e9"},
    }
).replace(b'"metadata"', b'"meta\\u0064ata"')  # fmt: skip


@pytest.mark.parametrize(
    "body",
    [b'{"a":1,"a":2}', b'{\n  "a": 1,\n  "b": {"a": 3},\n  "a": 2\n}', b'{"a/b":1,"a\\/b":2}', b'{"\\u0061":1,"a":2}',
     b'{"a":"' + b"x" * WALK_FROM + b'","a":2}', '{"a":"h\u00e9llo \u2713 \\u00e9 \U0001f600","b":1,"a":2}'.encode()],
    ids=["plain", "pretty", "escaped-slash", "unicode-escape", "large", "after-non-ascii"],
)  # fmt: skip
def test_duplicate_top_level_keys_are_found(body: bytes):
    with pytest.raises(InvalidRequest, match="duplicate"):
        check_unique_keys(body, orjson.loads(body))


@pytest.mark.parametrize(
    "body",
    [b"{}", b' { "a" : [ {"a":1} , "\\"a\\"" ] , "b" : "a" } ', b'{"\\u0061":{"a":1},"b":"\\u0061"}',
     b'{"a":"' + b"x" * WALK_FROM + b'","b":{"a":2}}', CLAUDE_CODE_LIKE],
    ids=["empty", "nested-and-values", "escaped", "large", "claude-code-like"],
)  # fmt: skip
def test_keys_repeated_only_below_or_as_values_pass(body: bytes):
    check_unique_keys(body, orjson.loads(body))


def test_a_body_wider_than_any_schema_is_refused_before_the_walk():
    """A million top-level keys would hold the loop for seconds in the walk; no request has more than a few dozen."""
    body = b"{" + b",".join(b'"k%d":1' % i for i in range(MAX_FIELDS + 1)) + b"}"
    with pytest.raises(InvalidRequest, match="top-level fields"):
        check_unique_keys(body, orjson.loads(body))
