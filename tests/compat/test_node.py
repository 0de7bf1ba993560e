"""The `openai` npm package on Node.js against the shared keyed gateway, and `@anthropic-ai/sdk` on its Messages
routes: js/compat.mjs makes every call (openai's on both base URLs) and prints what it got; this test checks it. The
packages are pinned in js/package-lock.json and installed by js/install (once; later runs need no network)."""

from __future__ import annotations

import json
import shutil
import subprocess
from typing import Any

import pytest

from app.fakes.media import AUDIO_CHUNK
from app.fakes.upstream import FakeUpstream
from tests.helpers.compat import JS_DIR, KeyedGateway


@pytest.fixture(scope="module")
def node() -> str:
    path = shutil.which("node")
    assert path, "Node.js is missing: scripts/test installs Debian's nodejs and npm"
    subprocess.run([JS_DIR / "install"], check=True, timeout=300)
    return path


@pytest.fixture(scope="module")
def results(node: str, keyed_gateway: KeyedGateway, fake_app: FakeUpstream) -> dict[str, Any]:
    """What the script printed, and under "upstream" the (method, path, body) of each request the fake got."""
    fake_app.reset()
    done = subprocess.run(
        [node, JS_DIR / "compat.mjs", keyed_gateway.url, keyed_gateway.key("app"), keyed_gateway.key("narrow")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    got: dict[str, Any] = json.loads(done.stdout)
    got["upstream"] = [(e.method, e.path, json.loads(e.body) if e.body else None) for e in fake_app.exchanges]
    return got


@pytest.mark.parametrize("prefix", ["/v1", "/openai"])
def test_openai_node_calls_through_the_gateway(results: dict[str, Any], prefix: str, fake: FakeUpstream):
    got = results[prefix]
    assert got["responses_create"]["status"] == "completed"
    text = got["responses_create"]["text"]
    assert text.startswith("Hello! This answer streams")
    assert got["responses_stream"] == {"first": "response.created", "last": "response.completed", "deltas": text}
    assert got["responses_helper"] == {"status": "completed", "text": text}
    assert got["chat_create"]["text"] == text
    assert got["chat_create"]["usage"]["completion_tokens"] == 5
    assert got["chat_stream"]["text"] == text
    assert got["chat_stream"]["usage"]["completion_tokens"] == 5
    assert got["embeddings"]["count"] == 2
    assert got["embeddings"]["first"] == pytest.approx([1.0, 2 / 3], rel=1e-6)  # base64 float32s, decoded
    assert got["speech"] == {"type": "audio/mpeg", "bytes": len(AUDIO_CHUNK) * fake.behaviour.deltas}
    assert "gpt-4.1" in got["models"]
    assert ("claude-sonnet-4-5-20250929" in got["models"]) == (prefix == "/v1")


@pytest.mark.parametrize("prefix", ["/v1", "/openai"])
def test_openai_node_typed_errors(results: dict[str, Any], prefix: str, fake: FakeUpstream):
    got = results[prefix]
    assert got["error_400"] == {
        "class": "BadRequestError", "status": 400, "code": "invalid_request", "param": "messages",
    }  # fmt: skip
    assert got["error_401"]["class"] == "AuthenticationError"
    assert (got["error_401"]["status"], got["error_401"]["code"]) == (401, "invalid_api_key")


def test_openai_node_requests_reach_the_right_upstream_routes(results: dict[str, Any]):
    paths = {path for _, path, _ in results["upstream"]}
    assert paths == {
        "/openai/responses", "/v1/chat/completions", "/openai/chat/completions", "/openai/embeddings",
        "/v1/messages", "/v1/messages/count_tokens", "/openai/audio/speech",
    }  # fmt: skip
    embeddings = [body for _, path, body in results["upstream"] if path == "/openai/embeddings"]
    assert [body["encoding_format"] for body in embeddings] == ["base64", "base64"]  # the package's default
    chats = [body for _, path, body in results["upstream"] if path.endswith("/chat/completions")]
    streamed = [body for body in chats if body.get("stream")]
    assert len(streamed) == 2
    assert all(body["stream_options"] == {"include_usage": True} for body in streamed)


def test_anthropic_node_calls_through_the_gateway(results: dict[str, Any]):
    got = results["anthropic"]
    text = "Hello! This answer streams from"
    assert got["create"]["text"] == text
    assert (got["create"]["usage"]["input_tokens"], got["create"]["usage"]["output_tokens"]) == (4, 5)
    assert got["stream"] == {"first": "message_start", "last": "message_stop", "deltas": text}
    assert got["helper"] == {"text": text, "output_tokens": 5}
    assert got["count_tokens"] == 4
    assert "claude-sonnet-4-5-20250929" in got["models"]
    for status, kind, error_type in [
        (400, "BadRequestError", "invalid_request_error"),
        (401, "AuthenticationError", "authentication_error"),
        (403, "PermissionDeniedError", "permission_error"),
    ]:
        assert got[f"error_{status}"] == {"class": kind, "status": status, "type": error_type}
