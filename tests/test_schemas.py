"""Body validation as a unit: messages and params, model lists and their extension."""

from __future__ import annotations

import pytest

from app.errors import InvalidRequest
from app.models import AICHAT_MODELS, RESPONSES_MODELS, ModelCatalog
from app.schemas import AichatConversation, ResponsesCreate, parse_body

CATALOG = ModelCatalog(RESPONSES_MODELS)


def test_model_lists_come_from_the_seed_pages():
    assert len(AICHAT_MODELS) == 78
    assert len(RESPONSES_MODELS) == 64
    assert {"gpt-5.5", "glm-5.2", "deepseek-r1"} <= AICHAT_MODELS
    assert "gpt-35-turbo-16k" in RESPONSES_MODELS
    assert "gpt-5.5" not in RESPONSES_MODELS


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
