"""Request bodies of the forwarding routes, from the upstream's API pages.

Validation parses the client's bytes once and only reads them: the forwarded body is always the original bytes.
Fields not listed here are allowed and forwarded untouched.
"""

from __future__ import annotations

from typing import Annotated, Any

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_core import ErrorDetails

from app.errors import InvalidRequest
from app.models import ModelCatalog


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


class ResponsesCreate(RequestBody):
    input: str | Annotated[list[Any], Field(min_length=1)]
    n: Annotated[int, Field(ge=1, le=128)] | None = None
    temperature: Annotated[float, Field(ge=0, le=2)] | None = None
    max_tokens: Annotated[int, Field(gt=0)] | None = None
    tools: Annotated[list[Any], Field(min_length=1)] | None = None
    background: bool | None = None
    stream: bool | None = None
    response_format: dict[str, Any] | None = None


# Unions report one error per branch; one sentence reads better than pydantic's two.
_FIELD_HINTS = {
    "input": "must be a string or a list of at least one item",
}


def _describe(error: ErrorDetails) -> InvalidRequest:
    field = str(error["loc"][0])  # parse_body hands pydantic an object: every error is in a field
    if error["type"] == "missing":
        return InvalidRequest(f"Missing required field '{field}'.", param=field)
    hint = _FIELD_HINTS.get(field, error["msg"][:1].lower() + error["msg"][1:])
    return InvalidRequest(f"Invalid '{field}': {hint}.", param=field)


def parse_body(schema: type[RequestBody], body: bytes, catalog: ModelCatalog) -> RequestBody:
    """The validated body, or InvalidRequest naming the first offending field.

    orjson parses (strict RFC 8259: no NaN or Infinity, which pydantic's parser accepts and the upstream may
    not; valid UTF-8 only; nesting capped), pydantic checks the fields of what it parsed."""
    try:
        document = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise InvalidRequest(f"Request body is not valid JSON: {exc}") from None
    if not isinstance(document, dict):
        raise InvalidRequest("Request body must be a JSON object.")
    try:
        parsed = schema.model_validate(document)
    except ValidationError as exc:
        raise _describe(exc.errors(include_url=False)[0]) from None
    if not catalog.accepts(parsed.model):
        shown = parsed.model if len(parsed.model) <= 80 else parsed.model[:80] + "..."
        raise InvalidRequest(
            f"Unknown model '{shown}' for this route. Set PROXY_EXTRA_MODELS to add models the upstream "
            "has published since this release, or PROXY_ALLOW_ANY_MODEL=true.",
            param="model",
        )
    return parsed
