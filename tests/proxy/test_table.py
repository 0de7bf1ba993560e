"""The route table as data: what every entry must hold for the endpoint, the document and the fake to agree."""

from __future__ import annotations

import orjson
import pytest

from app.fakes.upstream import FakeUpstream
from app.proxy.catalog import ModelCatalog
from app.proxy.schemas import parse_body
from app.proxy.table import (
    CHAT_COMPLETIONS,
    EMBEDDINGS,
    PATH_PARAMETER,
    RESPONSE_RETRIEVE,
    ROUTES,
    RouteSpec,
)


@pytest.mark.parametrize("spec", [spec for spec in ROUTES if spec.schema is not None], ids=lambda spec: spec.name)
def test_each_example_passes_its_own_route(spec: RouteSpec):
    assert spec.example is not None, "every route with a body shows one that works (/docs, the fuzzer)"
    assert spec.schema is not None
    parsed = parse_body(spec.schema, orjson.dumps(spec.example), ModelCatalog(spec.models))
    assert parsed.model in spec.models


def test_routes_do_not_overlap_and_keep_to_their_bases():
    served = [(spec.method, path) for spec in ROUTES for path in spec.paths]
    assert len(served) == len(set(served))
    assert all(path.startswith(("/v1/", "/openai/", "/aichat/")) for _, path in served)
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
    assert chat.estimate(body, parsed, 1024) == (len(body) // 4, 50)
    assert embeddings.estimate(body, parsed, 1024) == (len(body) // 4, 0)  # embeddings produce no output tokens
    assert retrieve.estimate(b"", None, 1024) == (0, 0)  # a retrieval spends nothing of its own
