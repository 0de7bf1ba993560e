"""GET /v1/models, /openai/models and /{prefix}/models/{id}: answered by the gateway, so `models.list()` shows what
will work, for the calling key, with no upstream at all."""

from __future__ import annotations

from pathlib import Path

import openai
import pytest

from app.access.keys import create
from app.proxy.catalog import CHAT_MODELS, CLAUDE_MODELS, EMBEDDING_MODELS, RESPONSES_MODELS, V1_CHAT_MODELS
from tests.helpers import GatewayFactory, GatewayProcess, SdkFactory


def test_sdk_lists_every_model_of_each_base_url(gateway: GatewayProcess, make_sdk: SdkFactory):
    v1 = {model.id for model in make_sdk(gateway.url + "/v1").models.list()}
    openai_models = {model.id for model in make_sdk(gateway.url + "/openai").models.list()}

    assert v1 >= V1_CHAT_MODELS | RESPONSES_MODELS | EMBEDDING_MODELS
    assert v1 >= CLAUDE_MODELS
    assert not CLAUDE_MODELS & openai_models  # Claude is served on /v1/chat/completions only
    assert openai_models >= CHAT_MODELS | RESPONSES_MODELS
    model = make_sdk(gateway.url + "/v1").models.retrieve("claude-sonnet-4-20250514")
    assert (model.id, model.object, model.owned_by) == ("claude-sonnet-4-20250514", "model", "acedata")


def test_unknown_model_is_a_typed_404(gateway: GatewayProcess, make_sdk: SdkFactory):
    with pytest.raises(openai.NotFoundError):
        make_sdk(gateway.url + "/openai").models.retrieve("claude-sonnet-4-20250514")


def test_models_work_with_no_upstream_and_follow_the_key(
    make_gateway: GatewayFactory, make_sdk: SdkFactory, tmp_path: Path
):
    keys = tmp_path / "keys.toml"
    narrow = create(keys, "narrow", ["gpt-4o", "claude-sonnet-4-20250514"])
    wide = create(keys, "wide")
    gateway = make_gateway(
        PROXY_KEYS_FILE=str(keys), ACEDATACLOUD_API_BASE_URL="http://127.0.0.1:9", PROXY_EXTRA_MODELS="gpt-9"
    )

    assert {m.id for m in make_sdk(gateway.url + "/v1", api_key=narrow).models.list()} == {
        "gpt-4o", "claude-sonnet-4-20250514",
    }  # fmt: skip
    assert "gpt-9" in {m.id for m in make_sdk(gateway.url + "/v1", api_key=wide).models.list()}
    with pytest.raises(openai.NotFoundError):
        make_sdk(gateway.url + "/v1", api_key=narrow).models.retrieve("gpt-4.1")
    with pytest.raises(openai.AuthenticationError):
        make_sdk(gateway.url + "/v1", api_key="sk-wrong").models.list()
