"""Body validation as a unit: messages and params, model lists and their extension."""

from __future__ import annotations

import pytest

from app.errors import InvalidRequest
from app.proxy.catalog import (
    AICHAT_MODELS,
    CHAT_MODELS,
    CLAUDE_MODELS,
    EMBEDDING_MODELS,
    IMAGE_MODELS,
    RESPONSES_MODELS,
    V1_CHAT_MODELS,
    ModelCatalog,
)
from app.proxy.schemas import (
    AichatConversation,
    ChatCompletionCreate,
    EmbeddingCreate,
    ImageGenerate,
    RequestBody,
    ResponsesCreate,
    parse_body,
)

CATALOG = ModelCatalog(RESPONSES_MODELS)


def test_model_lists_come_from_the_upstream_api_pages():
    """The counts docs/upstream-api.md gives, from AceData's API reference."""
    assert len(AICHAT_MODELS) == 78
    assert len(RESPONSES_MODELS) == 71  # the seed page's 64 and the 7 the current spec adds
    assert {"gpt-5.5", "glm-5.2", "deepseek-r1"} <= AICHAT_MODELS
    assert {"gpt-35-turbo-16k", "gpt-5.6-sol"} <= RESPONSES_MODELS
    assert (len(CHAT_MODELS), len(CLAUDE_MODELS), len(V1_CHAT_MODELS)) == (38, 20, 92)
    assert "claude-sonnet-4-20250514" in V1_CHAT_MODELS - CHAT_MODELS
    assert {"text-embedding-3-small", "text-embedding-3-large", "text-embedding-ada-002"} == EMBEDDING_MODELS
    assert len(IMAGE_MODELS) == 11


def test_parse_keeps_unknown_fields():
    parsed = parse_body(ResponsesCreate, b'{"model":"gpt-4.1","input":"x","store":false}', CATALOG)
    assert parsed.model == "gpt-4.1"
    assert parsed.model_extra == {"store": False}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{", "Request body is not valid JSON"),
        (b"[]", "Request body must be a JSON object."),
        (b'{"input":"x"}', "Missing required field 'model'."),
        (
            b'{"model":"gpt-4.1","input":[]}',
            "Invalid 'input': must be a string or a list of at least one item.",
        ),
        (b'{"model":"gpt-4.1","input":"x","temperature":3}', "Invalid 'temperature': input should be less"),
        (b'{"model":"nope","input":"x"}', "Unknown model 'nope'"),
    ],
)
def test_messages_say_what_is_wrong(body: bytes, message: str):
    with pytest.raises(InvalidRequest) as caught:
        parse_body(ResponsesCreate, body, CATALOG)
    assert caught.value.message.startswith(message)


def test_extra_models_and_allow_any():
    body = b'{"model":"gpt-9","question":"x"}'
    with pytest.raises(InvalidRequest):
        parse_body(AichatConversation, body, ModelCatalog(AICHAT_MODELS))
    assert parse_body(AichatConversation, body, ModelCatalog(AICHAT_MODELS, extra=["gpt-9"])).model == "gpt-9"
    assert parse_body(AichatConversation, body, ModelCatalog(AICHAT_MODELS, allow_any=True)).model == "gpt-9"


def test_metric_labels_are_bounded():
    catalog = ModelCatalog(AICHAT_MODELS, allow_any=True)
    assert catalog.label("gpt-4o") == "gpt-4o"
    assert catalog.label("anything-a-client-invents") == "other"
    assert catalog.label(None) == "other"


def test_responses_accept_an_empty_tools_list():
    """The OpenAI Agents SDK sends `"tools": []` for every agent without tools; OpenAI accepts it."""
    parsed = parse_body(ResponsesCreate, b'{"model":"gpt-4.1","input":"x","tools":[]}', CATALOG)
    assert parsed.model_extra == {}


CHAT = b'{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]'


@pytest.mark.parametrize(
    ("schema", "body", "message"),
    [
        (ChatCompletionCreate, b'{"model":"gpt-4o","messages":[]}', "Invalid 'messages': list should have at least 1"),
        (ChatCompletionCreate, b'{"model":"gpt-4o"}', "Missing required field 'messages'."),
        (ChatCompletionCreate, CHAT + b',"n":0}', "Invalid 'n': input should be greater than or equal to 1"),
        (ChatCompletionCreate, CHAT + b',"temperature":2.5}', "Invalid 'temperature'"),
        (ChatCompletionCreate, CHAT + b',"top_p":1.5}', "Invalid 'top_p'"),
        (ChatCompletionCreate, CHAT + b',"presence_penalty":-3}', "Invalid 'presence_penalty'"),
        (ChatCompletionCreate, CHAT + b',"top_logprobs":21}', "Invalid 'top_logprobs'"),
        (ChatCompletionCreate, CHAT + b',"stop":["a","b","c","d","e"]}', "Invalid 'stop': must be a string or a list"),
        (ChatCompletionCreate, CHAT + b',"max_completion_tokens":0}', "Invalid 'max_completion_tokens'"),
        (ChatCompletionCreate, CHAT + b',"stream":"yes"}', "Invalid 'stream'"),
        (EmbeddingCreate, b'{"model":"text-embedding-3-small","input":[]}', "Invalid 'input'"),
        (EmbeddingCreate, b'{"model":"text-embedding-3-small","input":"x","dimensions":0}', "Invalid 'dimensions'"),
        (
            EmbeddingCreate,
            b'{"model":"text-embedding-3-small","input":"x","encoding_format":"int8"}',
            "Invalid 'encoding_format'",
        ),
        (ImageGenerate, b'{"model":"dall-e-3"}', "Missing required field 'prompt'."),
        (ImageGenerate, b'{"model":"dall-e-3","prompt":"cat","n":11}', "Invalid 'n'"),
        (ImageGenerate, b'{"model":"dall-e-3","prompt":"cat","size":"big"}', "Invalid 'size'"),
        (ImageGenerate, b'{"model":"dall-e-3","prompt":"cat","response_format":"png"}', "Invalid 'response_format'"),
    ],
)
def test_each_route_checks_its_documented_ranges(schema: type[RequestBody], body: bytes, message: str):
    with pytest.raises(InvalidRequest) as caught:
        parse_body(schema, body, ModelCatalog((), allow_any=True))
    assert caught.value.message.startswith(message)


@pytest.mark.parametrize(
    ("schema", "body"),
    [
        (
            ChatCompletionCreate,
            CHAT + b',"n":2,"temperature":0,"stream":true,"stream_options":{"include_usage":true},"tools":[]}',
        ),
        (ChatCompletionCreate, CHAT + b',"stop":"END","logit_bias":{"50256":-100},"seed":7}'),
        (EmbeddingCreate, b'{"model":"text-embedding-3-small","input":[[1,2],[3]],"encoding_format":"base64"}'),
        (ImageGenerate, b'{"model":"gpt-image-1","prompt":"cat","size":"1024x1024","quality":"high","n":2}'),
    ],
)
def test_valid_bodies_pass(schema: type[RequestBody], body: bytes):
    assert parse_body(schema, body, ModelCatalog((), allow_any=True)).model


def test_model_patterns_are_accepted_and_labelled_by_pattern():
    catalog = ModelCatalog({"claude-sonnet-4-5"}, patterns=("claude-*",))
    assert catalog.accepts("claude-opus-5-5")
    assert not catalog.accepts("gpt-4o")
    assert [catalog.label(m) for m in ("claude-sonnet-4-5", "claude-opus-5-5", "gpt-4o")] == [
        "claude-sonnet-4-5", "claude-*", "other",
    ]  # fmt: skip
