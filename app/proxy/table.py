"""Every upstream route the gateway forwards, as data: one `RouteSpec` carries everything specific to a route, and
the endpoint, the dispatcher, the OpenAPI document, metrics labels and the fake upstream all work from `ROUTES`.

Adding an AceData route is one entry here, its body schema in app/proxy/schemas.py, its model list in
app/proxy/catalog.py, and its tests. Which upstream path serves each client path, with sources: docs/upstream-api.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Any, Literal

from app.errors import Envelope
from app.proxy import catalog, schemas
from app.proxy.usage import (
    BYTES_PER_TOKEN,
    CHAT_USAGE,
    EMBEDDINGS_USAGE,
    MESSAGES_USAGE,
    RESPONSES_USAGE,
    UsageFields,
)

Format = Literal["json", "sse", "ndjson"]

# A path parameter (a response id, a model name): one segment of letters, digits, `_`, `-`, `.` and `:`, never a
# dot-segment, so nothing a client sends can move the upstream path outside its route.
PATH_PARAMETER = re.compile(r"(?!\.\.?$)[A-Za-z0-9_.:-]{1,200}")


@dataclass(frozen=True)
class RouteSpec:
    name: str  # the `route` metric label and the OpenAPI operation id
    paths: tuple[str, ...]  # as clients call it; a trailing "{id}" is a path parameter
    upstream_path: str  # where every one of `paths` goes ("{id}" filled in from the client's path)
    summary: str
    method: Literal["POST", "GET"] = "POST"
    schema: type[schemas.RequestBody] | None = None  # the POST body; None: no body
    models: frozenset[str] = frozenset()  # the documented model list
    formats: tuple[Format, ...] = ("json",)  # the answers it can give (for the OpenAPI document)
    answer: str = "Response"  # the OpenAPI schema of a success
    usage: UsageFields | None = None  # where its answers report token usage; None: they do not
    # what a TPM reservation counts as the request's output: the first of these body fields that is set, else
    # PROXY_TPM_OUTPUT_RESERVATION; None: the route produces no output tokens (embeddings)
    output_cap: tuple[str, ...] | None = ()
    query: frozenset[str] = frozenset()  # query parameters passed upstream (others are refused)
    example: dict[str, Any] | None = None  # a body that works: /docs fills it in, the fuzzer always tries it
    envelope: Envelope = "openai"  # the shape of the errors the gateway itself produces on the route
    headers: frozenset[bytes] = frozenset()  # client headers forwarded beyond the ones every route forwards
    metered: bool = True  # False: never charged, never held by TPM or budgets (RPM still applies)
    anthropic_models: bool = False  # also accepts any model matching PROXY_ANTHROPIC_MODELS

    def estimate(self, body: bytes, parsed: schemas.RequestBody | None, default_output: int) -> tuple[int, int]:
        """The (input, output) tokens a request may spend, reserved at admission (TPM, budgets) and counted when
        the upstream reports none: the body's size in tokens, and the first output cap the body sets, else
        `default_output`. A route without a body, or one that produces no output (embeddings), reserves none;
        nor does one that is not metered."""
        if parsed is None or not self.metered:
            return 0, 0
        return max(1, len(body) // BYTES_PER_TOKEN), self._output(parsed, default_output)

    def _output(self, body: schemas.RequestBody, default: int) -> int:
        if self.output_cap is None:
            return 0
        for name in self.output_cap:
            cap = getattr(body, name, None)  # declared fields and extra ones alike (extra="allow")
            if isinstance(cap, int) and not isinstance(cap, bool) and cap > 0:
                return cap
        return default

    @property
    def parameterized(self) -> bool:
        return self.paths[0].endswith("{id}")


CONVERSATIONS = RouteSpec(
    name="aichat.conversations",
    paths=("/aichat/conversations",),
    upstream_path="/aichat/conversations",
    summary="AceData aichat: JSON, NDJSON (accept: application/x-ndjson) or SSE (accept: text/event-stream)",
    schema=schemas.AichatConversation,
    models=catalog.AICHAT_MODELS,
    formats=("json", "ndjson", "sse"),
    answer="AichatAnswer",
    example={"model": "gpt-4o", "question": "Say hello", "stateful": True},
)

RESPONSES = RouteSpec(
    name="openai.responses",
    paths=("/openai/responses", "/v1/responses"),
    upstream_path="/openai/responses",
    summary="OpenAI Responses API (`stream: true` streams SSE; `background: true` answers at once, poll it)",
    schema=schemas.ResponsesCreate,
    models=catalog.RESPONSES_MODELS,
    formats=("json", "sse"),
    usage=RESPONSES_USAGE,
    output_cap=("max_output_tokens", "max_tokens"),
    example={"model": "gpt-4.1", "input": "Say hello", "stream": True},
)

RESPONSE_RETRIEVE = RouteSpec(
    name="openai.responses.retrieve",
    paths=("/openai/responses/{id}", "/v1/responses/{id}"),
    upstream_path="/openai/responses/{id}",
    summary="Retrieve a (background) response; `?stream=true` streams its events",
    method="GET",
    formats=("json", "sse"),
    # not read: a finished response reports the same usage to every poll, so counting retrievals would charge it
    # again each time (background responses' tokens are therefore not counted; see the README)
    query=frozenset({"stream", "starting_after", "include[]", "include_obfuscation"}),
)

CHAT_COMPLETIONS = RouteSpec(
    name="openai.chat.completions",
    paths=("/openai/chat/completions",),
    upstream_path="/openai/chat/completions",
    summary="OpenAI Chat Completions (`stream: true` streams SSE to `data: [DONE]`)",
    schema=schemas.ChatCompletionCreate,
    models=catalog.CHAT_MODELS,
    formats=("json", "sse"),
    answer="ChatCompletion",
    usage=CHAT_USAGE,
    output_cap=("max_completion_tokens", "max_tokens"),
    example={
        "model": "gpt-4o",
        "messages": [{"role": "user", "content": "Say hello"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    },
)

# the same API on AceData's drop-in /v1 base, which takes every chat model it serves (Claude, Gemini, ... too)
V1_CHAT_COMPLETIONS = replace(
    CHAT_COMPLETIONS,
    name="v1.chat.completions",
    paths=("/v1/chat/completions",),
    upstream_path="/v1/chat/completions",
    summary="Chat Completions for every chat model of the upstream's /v1 (GPT, Claude, Gemini, DeepSeek, Grok, Kimi)",
    models=catalog.V1_CHAT_MODELS,
    example={
        "model": "claude-sonnet-4-20250514",
        "messages": [{"role": "user", "content": "Say hello"}],
        "stream": True,
    },
)

EMBEDDINGS = RouteSpec(
    name="openai.embeddings",
    paths=("/openai/embeddings", "/v1/embeddings"),
    upstream_path="/openai/embeddings",
    summary="OpenAI embeddings",
    schema=schemas.EmbeddingCreate,
    models=catalog.EMBEDDING_MODELS,
    answer="EmbeddingList",
    usage=EMBEDDINGS_USAGE,
    output_cap=None,
    example={"model": "text-embedding-3-small", "input": ["Say hello"]},
)

IMAGES = RouteSpec(
    name="openai.images.generations",
    paths=("/openai/images/generations", "/v1/images/generations"),
    upstream_path="/openai/images/generations",
    summary="OpenAI image generation",
    schema=schemas.ImageGenerate,
    models=catalog.IMAGE_MODELS,
    answer="ImagesResponse",
    usage=RESPONSES_USAGE,
    example={"model": "gpt-image-1", "prompt": "A lighthouse at dawn", "size": "1024x1024"},
)

# Anthropic's Messages API, which AceData serves natively: Claude Code and the anthropic SDKs call it
ANTHROPIC_HEADERS = frozenset({b"anthropic-version", b"anthropic-beta", b"x-claude-code-session-id"})

MESSAGES = RouteSpec(
    name="anthropic.messages",
    paths=("/v1/messages",),
    upstream_path="/v1/messages",
    summary="Anthropic Messages API (`stream: true` streams SSE events); Claude Code and the anthropic SDKs",
    schema=schemas.MessagesCreate,
    models=catalog.CLAUDE_MODELS,
    formats=("json", "sse"),
    answer="Message",
    usage=MESSAGES_USAGE,
    output_cap=("max_tokens",),
    query=frozenset({"beta"}),  # Claude Code always adds ?beta=true
    example={
        "model": "claude-sonnet-4-5-20250929",
        "max_tokens": 256,
        "messages": [{"role": "user", "content": "Say hello"}],
        "stream": True,
    },
    envelope="anthropic",
    headers=ANTHROPIC_HEADERS,
    anthropic_models=True,
)

COUNT_TOKENS = replace(
    MESSAGES,
    name="anthropic.messages.count_tokens",
    paths=("/v1/messages/count_tokens",),
    upstream_path="/v1/messages/count_tokens",
    summary="Anthropic token counting for a Messages request (free: never charged or held by TPM and budgets)",
    schema=schemas.MessagesCountTokens,
    formats=("json",),
    answer="MessageTokensCount",
    usage=None,  # its `input_tokens` is a count, not usage
    example={"model": "claude-sonnet-4-5-20250929", "messages": [{"role": "user", "content": "Say hello"}]},
    metered=False,
)

ROUTES: tuple[RouteSpec, ...] = (
    CONVERSATIONS,
    RESPONSES,
    RESPONSE_RETRIEVE,
    CHAT_COMPLETIONS,
    V1_CHAT_COMPLETIONS,
    EMBEDDINGS,
    IMAGES,
    MESSAGES,
    COUNT_TOKENS,
)
