"""POST /openai/responses (and /v1/responses, so SDKs pointed at either base URL work): the Responses API."""

from app.models import RESPONSES_MODELS
from app.routes.forward import RouteSpec
from app.schemas import ResponsesCreate

RESPONSES = RouteSpec(
    name="openai.responses",
    paths=("/openai/responses", "/v1/responses"),
    upstream_path="/openai/responses",
    schema=ResponsesCreate,
    models=RESPONSES_MODELS,
)
