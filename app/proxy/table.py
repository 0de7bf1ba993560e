"""Every upstream route the gateway forwards, as data: one `RouteSpec` carries everything specific to a route, and
the endpoint, the dispatcher, the OpenAPI document, metrics labels and the fake upstream all work from `ROUTES`.

Adding an AceData route is one entry here, its body schema in app/proxy/schemas.py, its model list in
app/proxy/catalog.py, and its tests. Which upstream path serves each client path, with sources: docs/upstream-api.md.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, replace
from typing import Any, Literal

from app.errors import Envelope
from app.proxy import catalog, schemas
from app.proxy.streams import Format
from app.proxy.usage import (
    BYTES_PER_TOKEN,
    CHAT_USAGE,
    EMBEDDINGS_USAGE,
    GEMINI_USAGE,
    MESSAGES_USAGE,
    RESPONSES_USAGE,
    TRANSCRIPTION_USAGE,
    Tokens,
    UsageFields,
)

Unit = Literal["token", "character", "second", "image"]

# No model writes more than this in one answer; an output cap beyond it (a client may send 2**63 - 1) reserves
# this much, so a reservation stays a sane number in every counter it is added to (Redis' INCRBY included).
MAX_OUTPUT_TOKENS = 1_000_000
# What one gpt-image-1 image costs at most (high quality, 1536x1024: OpenAI's image token table): an image route
# reserves this per image, so a burst of images stays within the documented budget bound.
IMAGE_OUTPUT_TOKENS = 6240

# Audio seconds before the upstream reports them: an upload's bytes at 128 kbit/s (a typical MP3; WAV and FLAC are
# larger, so they are overestimated, never under), and what a second counts as in tokens for TPM and budgets
# (OpenAI's audio models read about ten tokens a second).
AUDIO_BYTES_PER_SECOND = 16_000
AUDIO_TOKENS_PER_SECOND = 10
MiB = 1 << 20
UPLOAD_BYTES = 25 * MiB + 64 * 1024  # AceData's 25 MB file limit, and room for the form's other fields

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
    # `default_output` (None: PROXY_TPM_OUTPUT_RESERVATION), times the choices asked for (`n`); None: the route
    # produces no output tokens (embeddings)
    output_cap: tuple[str, ...] | None = ()
    default_output: int | None = None
    # the JSON keys whose string values are generated text in a streamed answer (and in a plain JSON one, unless
    # `body_text` names others), measured in case the answer reports no usage
    text: tuple[str, ...] = ()
    body_text: tuple[str, ...] | None = None
    # "create": answers may start background responses, remembered with the key that created them;
    # "retrieve": reads one back, for its owner only, charging it once when it is first seen completed
    background: Literal["create", "retrieve"] | None = None
    query: frozenset[str] = frozenset()  # query parameters passed upstream (others are refused)
    example: dict[str, Any] | None = None  # a body that works: /docs fills it in, the fuzzer always tries it
    envelope: Envelope = "openai"  # the shape of the errors the gateway itself produces on the route
    headers: frozenset[bytes] = frozenset()  # client headers forwarded beyond the ones every route forwards
    metered: bool = True  # False: never charged, never held by TPM or budgets (RPM still applies)
    anthropic_models: bool = False  # also accepts any model matching PROXY_ANTHROPIC_MODELS
    body_kind: Literal["json", "multipart"] = "json"  # multipart: app/proxy/multipart.py reads the form
    max_body: int | None = None  # the route's request body limit; None: PROXY_MAX_REQUEST_BYTES
    # what the route is billed by besides tokens, counted in `Tokens.units`: the characters of a speech's `input`,
    # the seconds of a transcription's audio, the images asked for
    unit: Unit = "token"

    def estimate(self, size: int, parsed: schemas.RequestBody | None, default_output: int) -> Tokens:
        """The tokens a request may spend, reserved at admission (TPM, budgets) and charged when the upstream
        reports none: `size` (the body's bytes; a form's text fields only) in tokens, and its output cap (the
        first one the body sets, else the route's default, else `default_output`; at most MAX_OUTPUT_TOKENS) for
        each choice it asks for (`n`); audio seconds at AUDIO_TOKENS_PER_SECOND more input, and its units.
        A route without a body, or one that produces no output (embeddings), reserves none; nor does one that is
        not metered."""
        if parsed is None or not self.metered:
            return Tokens()
        units = self._units(parsed)
        audio = units * AUDIO_TOKENS_PER_SECOND if self.unit == "second" else 0
        output = self._output(parsed, default_output) * _choices(parsed)
        return Tokens(max(1, size // BYTES_PER_TOKEN) + audio, output, units)

    def _units(self, body: schemas.RequestBody) -> int:
        if self.unit == "character":
            return len(getattr(body, "input", ""))
        if self.unit == "image":
            return _choices(body)
        if self.unit == "second":  # estimated from the upload's size until the upstream reports its duration
            return max(1, math.ceil(sum(getattr(body, "file", ())) / AUDIO_BYTES_PER_SECOND))
        return 0

    def _output(self, body: schemas.RequestBody, default: int) -> int:
        if self.output_cap is None:
            return 0
        for name in self.output_cap:
            cap = _count(getattr(body, name, None))  # declared fields and extra ones alike (extra="allow")
            if cap is not None:
                return min(cap, MAX_OUTPUT_TOKENS)
        return self.default_output if self.default_output is not None else default

    def text_keys(self, streamed: bool) -> tuple[str, ...]:
        return self.text if streamed or self.body_text is None else self.body_text

    @property
    def parameterized(self) -> bool:
        return self.paths[0].endswith("{id}")

    @property
    def path_model(self) -> bool:
        """The model is a path segment (`models/{model}:action`), not a body field."""
        return "{model}" in self.paths[0]


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def _choices(body: schemas.RequestBody) -> int:
    """How many answers the body asks for (`n`; the schemas bound it, 128 at most)."""
    return _count(getattr(body, "n", None)) or 1


CONVERSATIONS = RouteSpec(
    name="aichat.conversations",
    paths=("/aichat/conversations",),
    upstream_path="/aichat/conversations",
    summary="AceData aichat: JSON, NDJSON (accept: application/x-ndjson) or SSE (accept: text/event-stream)",
    schema=schemas.AichatConversation,
    models=catalog.AICHAT_MODELS,
    formats=("json", "ndjson", "sse"),
    answer="AichatAnswer",
    text=("delta_answer",),  # each stream line also repeats the whole answer so far, as `answer`
    body_text=("answer",),
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
    text=("delta",),
    background="create",
    example={"model": "gpt-4.1", "input": "Say hello", "stream": True},
)

RESPONSE_RETRIEVE = RouteSpec(
    name="openai.responses.retrieve",
    paths=("/openai/responses/{id}", "/v1/responses/{id}"),
    upstream_path="/openai/responses/{id}",
    summary="Retrieve a (background) response; `?stream=true` streams its events",
    method="GET",
    formats=("json", "sse"),
    # read, but charged only the first time a poll reports the response completed, to the key that created it
    usage=RESPONSES_USAGE,
    background="retrieve",
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
    text=("content", "refusal", "arguments", "reasoning_content"),
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
    default_output=IMAGE_OUTPUT_TOKENS,
    unit="image",
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
    text=("text", "partial_json", "thinking"),  # text_delta, tool use's input_json_delta, thinking_delta
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
    text=(),
    example={"model": "claude-sonnet-4-5-20250929", "messages": [{"role": "user", "content": "Say hello"}]},
    metered=False,
)

SPEECH = RouteSpec(
    name="openai.audio.speech",
    paths=("/openai/audio/speech", "/v1/audio/speech"),
    upstream_path="/openai/audio/speech",
    summary="OpenAI text to speech: audio bytes, relayed as they arrive",
    schema=schemas.SpeechCreate,
    models=catalog.SPEECH_MODELS,
    formats=("audio",),
    output_cap=None,  # audio, not tokens: billed by the characters of `input`
    unit="character",
    example={"model": "tts-1", "input": "Say hello", "voice": "alloy"},
)

TRANSCRIPTIONS = RouteSpec(
    name="openai.audio.transcriptions",
    paths=("/openai/audio/transcriptions", "/v1/audio/transcriptions"),
    upstream_path="/openai/audio/transcriptions",
    summary="OpenAI speech to text (multipart/form-data, 25 MB; `stream=true` with gpt-transcribe streams SSE)",
    schema=schemas.TranscriptionCreate,
    models=catalog.TRANSCRIPTION_MODELS,
    formats=("json", "sse"),
    answer="Transcription",
    usage=TRANSCRIPTION_USAGE,
    output_cap=None,  # billed by audio seconds; gpt-transcribe's reported tokens are charged when they come
    body_kind="multipart",
    max_body=UPLOAD_BYTES,
    unit="second",
)

IMAGE_EDITS = replace(
    IMAGES,
    name="openai.images.edits",
    paths=("/openai/images/edits", "/v1/images/edits"),
    upstream_path="/openai/images/edits",
    summary="OpenAI image edits (multipart/form-data: `image` or `image[]`, `prompt`, `model`)",
    schema=schemas.ImageEdit,
    models=catalog.IMAGE_EDIT_MODELS,
    body_kind="multipart",
    max_body=UPLOAD_BYTES,  # AceData documents no edit limit: images as large as its largest upload
    example=None,  # a form, not JSON
)

GEMINI_GENERATE = RouteSpec(
    name="gemini.generate_content",
    # google-genai calls /v1beta by default, and /v1 with http_options.api_version="v1": both go to /v1beta
    paths=("/v1beta/models/{model}:generateContent", "/v1/models/{model}:generateContent"),
    upstream_path="/v1beta/models/{model}:generateContent",
    summary="Gemini's native API (google-genai's generate_content); the model is in the path",
    envelope="google",  # errors as the Gemini API answers them: google-genai reads `error.status`
    schema=schemas.GenerateContent,
    models=catalog.GEMINI_MODELS,
    answer="GenerateContentResponse",
    usage=GEMINI_USAGE,
    text=("text",),
    example={"contents": [{"role": "user", "parts": [{"text": "Say hello"}]}]},
)

GEMINI_STREAM = replace(
    GEMINI_GENERATE,
    name="gemini.stream_generate_content",
    paths=("/v1beta/models/{model}:streamGenerateContent", "/v1/models/{model}:streamGenerateContent"),
    upstream_path="/v1beta/models/{model}:streamGenerateContent",
    summary="Gemini's native streaming API (`?alt=sse`: server-sent events, each a GenerateContentResponse)",
    formats=("json", "sse"),
    query=frozenset({"alt"}),
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
    IMAGE_EDITS,
    SPEECH,
    TRANSCRIPTIONS,
    GEMINI_GENERATE,
    GEMINI_STREAM,
)


@functools.cache
def unit_of(route: str) -> Unit:
    """What a route bills by, from its name (a ledger row's or a metric's `route`): "token" for any other name.
    Remembered: route names are a bounded set."""
    return next((spec.unit for spec in ROUTES if spec.name == route), "token")
