"""The route table as data: what every entry must hold for the endpoint, the document and the fake to agree."""

from __future__ import annotations

import orjson
import pytest

from app.fakes.upstream import FakeUpstream
from app.proxy.catalog import ModelCatalog
from app.proxy.schemas import TranscriptionCreate, parse_body
from app.proxy.table import (
    CHAT_COMPLETIONS,
    EMBEDDINGS,
    IMAGE_OUTPUT_TOKENS,
    IMAGES,
    MAX_OUTPUT_TOKENS,
    PATH_PARAMETER,
    RESPONSE_RETRIEVE,
    RESPONSES,
    ROUTES,
    SPEECH,
    TRANSCRIPTIONS,
    RouteSpec,
)
from app.proxy.usage import Tokens

JSON_ROUTES = [spec for spec in ROUTES if spec.schema is not None and spec.body_kind == "json"]


@pytest.mark.parametrize("spec", JSON_ROUTES, ids=lambda spec: spec.name)
def test_each_example_passes_its_own_route(spec: RouteSpec):
    assert spec.example is not None, "every route with a JSON body shows one that works (/docs, the fuzzer)"
    assert spec.schema is not None
    model = min(spec.models) if spec.path_model else None  # Gemini's model is in the path
    parsed = parse_body(spec.schema, orjson.dumps(spec.example), ModelCatalog(spec.models), model)
    assert parsed.model in spec.models


def test_routes_do_not_overlap_and_keep_to_their_bases():
    served = [(spec.method, path) for spec in ROUTES for path in spec.paths]
    assert len(served) == len(set(served))
    assert all(path.startswith(("/v1/", "/v1beta/", "/openai/", "/aichat/")) for _, path in served)
    assert len({spec.name for spec in ROUTES}) == len(ROUTES)


def test_a_path_parameter_is_one_safe_segment():
    for spec in ROUTES:
        assert spec.parameterized == spec.upstream_path.endswith("{id}")
        assert all(path.endswith("{id}") == spec.parameterized for path in spec.paths)
    assert PATH_PARAMETER.fullmatch("resp_68a1b2c3-d4")
    for hostile in ("..", ".", "a/b", "a%2Fb", "a b", "a?b", "", "x" * 201):
        assert not PATH_PARAMETER.fullmatch(hostile), hostile


def test_the_fake_upstream_serves_every_upstream_route():
    routes = FakeUpstream().routes
    assert {(spec.method, spec.upstream_path) for spec in ROUTES} <= set(routes)


def test_the_estimate_follows_the_route():
    chat, embeddings, retrieve = CHAT_COMPLETIONS, EMBEDDINGS, RESPONSE_RETRIEVE
    body = b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}],"max_completion_tokens":50}'
    assert chat.schema is not None
    parsed = parse_body(chat.schema, body, ModelCatalog(chat.models))
    assert chat.estimate(len(body), parsed, 1024) == Tokens(len(body) // 4, 50)
    assert embeddings.estimate(len(body), parsed, 1024) == Tokens(len(body) // 4, 0)  # no output
    assert retrieve.estimate(0, None, 1024) == Tokens()  # a retrieval spends nothing of its own


def estimate(spec: RouteSpec, document: dict[str, object]) -> Tokens:
    body = orjson.dumps(document)
    assert spec.schema is not None
    return spec.estimate(len(body), parse_body(spec.schema, body, ModelCatalog(spec.models)), 1024)


@pytest.mark.parametrize(
    ("spec", "document", "output"),
    [
        (CHAT_COMPLETIONS, {"model": "gpt-4o", "messages": [{"role": "user"}], "n": 128, "max_tokens": 100}, 12_800),
        (CHAT_COMPLETIONS, {"model": "gpt-4o", "messages": [{"role": "user"}], "n": 3}, 3 * 1024),
        (RESPONSES, {"model": "gpt-4.1", "input": "hi", "n": 4, "max_output_tokens": 10}, 40),
        (IMAGES, {"model": "gpt-image-1", "prompt": "a cat", "n": 10}, 10 * IMAGE_OUTPUT_TOKENS),
        (IMAGES, {"model": "gpt-image-1", "prompt": "a cat"}, IMAGE_OUTPUT_TOKENS),
    ],
)
def test_a_reservation_counts_every_choice(spec: RouteSpec, document: dict[str, object], output: int):
    """`n` answers may each produce the output cap: a burst of them must not slip past a budget."""
    assert estimate(spec, document).output == output


def test_an_absurd_output_cap_reserves_a_bounded_amount():
    """2**63 - 1 is a valid integer to the schema, but no model writes that much: the reservation is clamped, so
    no counter it is added to (Redis' INCRBY is 64-bit) can overflow, even times n."""
    document = {"model": "gpt-4o", "messages": [{"role": "user"}], "n": 128, "max_tokens": 2**63 - 1}
    assert estimate(CHAT_COMPLETIONS, document).output == 128 * MAX_OUTPUT_TOKENS < 2**63 // 1000


def test_routes_without_tokens_count_their_units():
    """Speech by the characters of `input`, images by the image, transcriptions by the audio's seconds (the
    upload's bytes at 128 kbit/s until the upstream reports the duration), each second ten tokens of input."""
    assert estimate(SPEECH, {"input": "héllo"}).units == 5
    assert estimate(IMAGES, {"model": "dall-e-3", "prompt": "a cat", "n": 3}).units == 3
    form = TranscriptionCreate.model_validate({"file": [160_001], "model": "whisper-1"})
    assert TRANSCRIPTIONS.estimate(20, form, 1024) == Tokens(5 + 11 * 10, 0, 11)
