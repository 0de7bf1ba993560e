"""Request bodies of the forwarding routes, from the upstream's API pages.

Validation parses the client's bytes once and only reads them: the forwarded body is always the original bytes.
Fields not listed here are allowed and forwarded untouched.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from app.errors import InvalidRequest
from app.proxy.bodies import check_structure, check_unique_keys
from app.proxy.catalog import ModelCatalog
from app.types import Body


class RequestBody(BaseModel):
    # strict: `"stream": "yes"` is a client bug to report, not a value to coerce behind its back
    model_config = ConfigDict(extra="allow", strict=True)

    model: str


class AichatConversation(RequestBody):
    question: str
    id: str | None = None
    preset: str | None = None
    stateful: bool | None = None
    references: list[str] | None = None


# bounded where the JSON parser (orjson) keeps integers exact: the documented schema then says so too, and a larger
# number is refused as out of range rather than as "not an integer" while the schema allowed it
TokenCount = Annotated[int, Field(gt=0, le=2**63 - 1)]


class ResponsesCreate(RequestBody):
    input: str | Annotated[list[Any], Field(min_length=1)]
    n: Annotated[int, Field(ge=1, le=128)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    max_tokens: TokenCount | None = None
    max_output_tokens: TokenCount | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    tools: list[Any] | None = None  # `[]` accepted, as OpenAI does: the Agents SDK always sends it
    background: bool | None = None
    stream: bool | None = None
    response_format: dict[str, Any] | None = None


Penalty = Annotated[float, Field(ge=-2, le=2)]


class ChatCompletionCreate(RequestBody):
    messages: Annotated[list[dict[str, Any]], Field(min_length=1)]
    n: Annotated[int, Field(ge=1, le=128)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    max_tokens: TokenCount | None = None
    max_completion_tokens: TokenCount | None = None
    presence_penalty: Penalty | None = None
    frequency_penalty: Penalty | None = None
    logprobs: bool | None = None
    top_logprobs: Annotated[int, Field(ge=0, le=20)] | None = None
    stop: str | Annotated[list[str], Field(min_length=1, max_length=4)] | None = None
    stream: bool | None = None
    stream_options: dict[str, Any] | None = None
    tools: list[Any] | None = None
    response_format: dict[str, Any] | None = None


class EmbeddingCreate(RequestBody):
    input: str | Annotated[list[Any], Field(min_length=1)]
    encoding_format: Literal["float", "base64"] | None = None
    dimensions: Annotated[int, Field(ge=1)] | None = None


class ImageGenerate(RequestBody):
    prompt: Annotated[str, Field(min_length=1, max_length=32000)]
    n: Annotated[int, Field(ge=1, le=10)] | None = None
    size: Annotated[str, Field(pattern=r"^(auto|\d+x\d+)$")] | None = None
    quality: Literal["auto", "high", "medium", "low", "hd", "standard"] | None = None
    response_format: Literal["url", "b64_json"] | None = None
    style: Literal["vivid", "natural"] | None = None


class MessagesCountTokens(RequestBody):
    """Anthropic's Messages request as count_tokens takes it; Claude Code's many other fields pass untouched."""

    messages: Annotated[list[dict[str, Any]], Field(min_length=1)]
    system: str | list[Any] | None = None
    tools: list[Any] | None = None


class MessagesCreate(MessagesCountTokens):
    max_tokens: TokenCount
    stream: bool | None = None
    temperature: Annotated[float, Field(ge=0, le=1)] | None = None
    top_p: Annotated[float, Field(ge=0, le=1)] | None = None
    stop_sequences: list[str] | None = None


Voice = Literal["alloy", "echo", "fable", "onyx", "nova", "shimmer"]


class SpeechCreate(RequestBody):
    model: str = "tts-1-hd"  # AceData's default: the key's allowlist and the ledger see it when none is sent
    input: Annotated[str, Field(min_length=1)]
    voice: Voice | None = None
    response_format: Literal["mp3", "opus", "aac", "flac", "wav", "pcm"] | None = None
    speed: Annotated[float, Field(ge=0.25, le=4)] | None = None


class GenerateContent(RequestBody):
    """Gemini's native body; `model` is not in it but in the path, and is checked as if it were."""

    contents: Annotated[list[dict[str, Any]], Field(min_length=1)]
    systemInstruction: dict[str, Any] | None = None
    generationConfig: dict[str, Any] | None = None


class FormBody(RequestBody):
    """A multipart form (app/proxy/multipart.py): every field arrives as text, so values are converted (lax
    mode); a file part is the list of its sizes in bytes."""

    model_config = ConfigDict(extra="allow", strict=False)
    files: ClassVar[tuple[str, ...]] = ()  # the file parts' names


class TranscriptionCreate(FormBody):
    files = ("file",)
    model: str = "whisper-1"
    file: Annotated[list[int], Field(min_length=1, max_length=1)]
    stream: bool | None = None
    temperature: Annotated[float, Field(ge=0, le=1)] | None = None


class ImageEdit(FormBody):
    files = ("image",)
    model: str = "dall-e-2"  # OpenAI's default for edits
    image: Annotated[list[int], Field(min_length=1, max_length=16)]
    prompt: Annotated[str, Field(min_length=1, max_length=32000)]
    n: Annotated[int, Field(ge=1, le=10)] | None = None


# Unions report one error per branch; one sentence reads better than pydantic's two.
_FIELD_HINTS = {
    "input": "must be a string or a list of at least one item",
    "stop": "must be a string or a list of at most 4 strings",
}


def _describe(error: ErrorDetails) -> InvalidRequest:
    field = str(error["loc"][0])  # parse_body hands pydantic an object: every error is in a field
    if error["type"] == "missing":
        return InvalidRequest(f"Missing required field '{field}'.", param=field)
    hint = _FIELD_HINTS.get(field, error["msg"][:1].lower() + error["msg"][1:])
    return InvalidRequest(f"Invalid '{field}': {hint}.", param=field)


def parse_body(schema: type[RequestBody], body: Body, catalog: ModelCatalog, model: str | None = None) -> RequestBody:
    """The validated body, or InvalidRequest naming the first offending field.

    orjson parses (strict RFC 8259: no NaN or Infinity, which pydantic's parser accepts and the upstream may
    not; valid UTF-8 only; nesting capped) what app/proxy/bodies.py lets it, pydantic checks the fields of what
    it parsed."""
    check_structure(body)
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"Request body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidRequest("Request body must be a JSON object.")
    check_unique_keys(body, document)
    if model is not None:  # the route takes it from the path (Gemini): checked like a body's, never forwarded
        document = {**document, "model": model}
    return validate(schema, document, catalog)


def validate(schema: type[RequestBody], document: dict[str, Any], catalog: ModelCatalog) -> RequestBody:
    """The body's fields checked (JSON and form bodies alike), or InvalidRequest naming the first offending one."""
    try:
        parsed = schema.model_validate(document)
    except ValidationError as exc:
        raise _describe(exc.errors(include_url=False)[0]) from None
    if not catalog.accepts(parsed.model):
        raise InvalidRequest(catalog.refusal(parsed.model), param="model")
    return parsed
