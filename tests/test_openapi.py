"""/openapi.json describes every route, the forwarding ones included, and schemathesis fuzzes the real gateway
process (fake upstream behind it, loopback only) from that document: no 5xx, every response conforms to the
document, invalid bodies are refused and never forwarded, valid ones are forwarded byte for byte."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import Case, GenerationMode
from schemathesis.core.result import Ok

from app import openapi
from app.fakes.upstream import FakeUpstream
from app.proxy.catalog import AICHAT_MODELS, CHAT_MODELS, RESPONSES_MODELS, V1_CHAT_MODELS
from app.proxy.table import ROUTES
from tests.helpers import GatewayProcess, assert_no_secrets
from tests.helpers.inprocess import gateway_on

EXAMPLES = {GenerationMode.POSITIVE: 40, GenerationMode.NEGATIVE: 40}  # per route with a body: ~20 s in all
INTEGER_FIELDS = ("n", "max_tokens", "max_output_tokens", "max_completion_tokens", "top_logprobs", "dimensions")
# client path -> upstream path, for every route that takes a body
FORWARDED = {path: spec.upstream_path for spec in ROUTES if spec.schema is not None for path in spec.paths}
MODELS_PATHS = {"/v1/models", "/openai/models", "/v1/models/{id}", "/openai/models/{id}"}
PARAMETERIZED = {path for spec in ROUTES if spec.parameterized for path in spec.paths}
# every form field is text: "-314" is a valid prompt, so the fuzzer's negative cases (an integer where the schema
# says string) cannot be told from positive ones on these routes
FORMS = {path for spec in ROUTES if spec.body_kind == "multipart" for path in spec.paths}


def test_openapi_json_documents_the_forwarding_routes(gateway: GatewayProcess):
    document = httpx.get(gateway.url + "/openapi.json").json()
    service = {"/healthz", "/readyz", "/metrics", "/admin/usage"}
    assert set(document["paths"]) == set(FORWARDED) | PARAMETERIZED | MODELS_PATHS | service
    admin = document["paths"]["/admin/usage"]["get"]
    assert [p["name"] for p in admin["parameters"]] == ["key", "since", "by"]
    assert {"200", "400", "401", "403"} == set(admin["responses"])
    schemas = document["components"]["schemas"]
    assert set(schemas["ResponsesCreate"]["properties"]["model"]["enum"]) == RESPONSES_MODELS
    assert set(schemas["AichatConversation"]["properties"]["model"]["enum"]) == AICHAT_MODELS
    # the two chat routes share a body schema, not a model list
    assert set(schemas["ChatCompletionCreate.v1.chat.completions"]["properties"]["model"]["enum"]) == V1_CHAT_MODELS
    assert set(schemas["ChatCompletionCreate.openai.chat.completions"]["properties"]["model"]["enum"]) == CHAT_MODELS
    assert schemas["ResponsesCreate"]["required"] == ["model", "input"]
    post = document["paths"]["/openai/responses"]["post"]
    assert {"200", "400", "413", "502", "504"} <= set(post["responses"])
    assert set(post["responses"]["200"]["content"]) == {"application/json", "text/event-stream"}
    assert post["security"] == [{}, {"clientKey": []}]  # no keys file: a key is optional
    assert document["components"]["securitySchemes"]["clientKey"] == {
        "type": "http",
        "scheme": "bearer",
        "description": document["components"]["securitySchemes"]["clientKey"]["description"],
    }
    assert "get" in document["paths"]["/v1/responses/{id}"]
    assert "stream" in {p["name"] for p in document["paths"]["/v1/responses/{id}"]["get"]["parameters"]}


async def test_the_document_is_built_when_first_asked_for(fake: FakeUpstream, monkeypatch: pytest.MonkeyPatch):
    """Not at start: every gateway and test app would pay for JSON schemas that only /openapi.json and /docs use."""
    built: list[str] = []

    def document(*args: Any) -> dict[str, Any]:
        built.append("document")
        return real(*args)

    real = openapi.document
    monkeypatch.setattr(openapi, "document", document)
    async with gateway_on(fake) as client:
        assert (await client.get("/healthz")).status_code == 200
        assert built == []
        first = await client.get("/openapi.json")
        assert first.status_code == 200
        assert (await client.get("/openapi.json")).json() == first.json()
    assert built == ["document"]


def test_docs_are_served_without_a_cdn(gateway: GatewayProcess):
    """Swagger UI's page and every asset it loads come from the gateway itself (offline machines, air gaps)."""
    page = httpx.get(gateway.url + "/docs")
    assert page.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources, page.text
    for source in sources:
        assert source.startswith("/"), f"/docs loads {source} from elsewhere"
        assert httpx.get(gateway.url + source).status_code == 200, source
    assert "/openapi.json" in page.text


async def test_openapi_json_follows_the_model_settings(fake: FakeUpstream):
    """In-process: the document over real sockets is the session gateway's above, and PROXY_EXTRA_MODELS reaching
    a gateway process is tests/routes/test_models.py's."""
    async with gateway_on(fake, extra_models=("gpt-9-preview",)) as extra:
        schemas = (await extra.get("/openapi.json")).json()["components"]["schemas"]
    assert "gpt-9-preview" in schemas["ResponsesCreate"]["properties"]["model"]["enum"]
    assert "gpt-9-preview" in schemas["AichatConversation"]["properties"]["model"]["enum"]
    async with gateway_on(fake, allow_any_model=True) as anything:
        schemas = (await anything.get("/openapi.json")).json()["components"]["schemas"]
    assert "enum" not in schemas["ResponsesCreate"]["properties"]["model"]


@pytest.fixture
def session() -> Iterator[requests.Session]:
    with requests.Session() as http:
        http.headers.clear()  # schemathesis lets a session's default headers (accept: */*) override the case's
        yield http


def huge_integer(value: object) -> bool:
    if isinstance(value, dict):
        return any(huge_integer(item) for item in value.values())
    if isinstance(value, list):
        return any(huge_integer(item) for item in value)
    return isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**64


def check_forwarding(case: Case[Any], response: schemathesis.Response, fake: FakeUpstream, before: int) -> None:
    """What the document cannot say: a refused body never went upstream, an accepted one went byte for byte."""
    forwarded = fake.exchanges[before:]
    if response.status_code == 200:
        [exchange] = forwarded
        assert exchange.path == FORWARDED[case.path].replace("{model}", (case.path_parameters or {}).get("model", ""))
        sent = response.request.body
        assert exchange.body == (sent.encode() if isinstance(sent, str) else sent)
    elif response.status_code in (400, 413):
        assert forwarded == [], "a body the gateway refused was forwarded"


def fuzz(
    operation: schemathesis.APIOperation[Any, Any, Any, Any],
    mode: GenerationMode,
    gateway: GatewayProcess,
    fake: FakeUpstream,
    session: requests.Session,
    answered: set[tuple[str, str]],
    accept: str | None = None,
) -> int:
    calls = 0
    examples = EXAMPLES[mode] if operation.path in FORWARDED else 3
    headers = {"accept": accept} if accept else None

    @given(case=operation.as_strategy(generation_mode=mode, headers=headers))
    @settings(
        max_examples=examples // 3 if accept else examples,
        deadline=None,
        database=None,
        derandomize=True,  # the same examples on every run: CI stays reproducible
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Case[Any]) -> None:
        nonlocal calls
        before = len(fake.exchanges)
        response = case.call(base_url=gateway.url, session=session, timeout=30)
        calls += 1
        answered.add((operation.path, response.headers.get("content-type", [""])[0].split(";")[0]))
        assert response.status_code < 500, response.text
        assert_no_secrets(repr(response.headers).encode() + response.content, f"a response on {operation.path}")
        case.validate_response(response)
        if operation.path in FORWARDED:
            check_forwarding(case, response, fake, before)

    run()
    return calls


@pytest.mark.slow  # the fuzz: `scripts/test --all`
@pytest.mark.timeout(300)  # ~900 cases over 11 forwarding paths: ~40 s alone, more on a busy machine
def test_schemathesis_fuzzes_the_real_gateway(gateway: GatewayProcess, fake: FakeUpstream, session: requests.Session):
    schema = schemathesis.openapi.from_url(gateway.url + "/openapi.json")

    @schema.hook
    def filter_body(context: schemathesis.HookContext, body: object) -> bool:
        """Two things JSON Schema allows that the gateway refuses on purpose, left out rather than blur what the
        fuzzer reports: 111.0 as an integer (strict validation, like pydantic's, wants 111), and integers beyond
        64 bits anywhere in a body (its JSON parser, orjson, refuses them, as OpenAI's API does)."""
        floats = isinstance(body, dict) and any(isinstance(body.get(name), float) for name in INTEGER_FIELDS)
        return not floats and not huge_integer(body)

    calls = {}
    answered: set[tuple[str, str]] = set()
    for result in schema.get_all_operations():
        operation = (
            result.ok() if isinstance(result, Ok) else pytest.fail(f"an operation of the schema: {result.err()}")
        )
        modes = (
            [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
            if operation.path in FORWARDED and operation.path not in FORMS
            else [GenerationMode.POSITIVE]
        )
        for mode in modes:
            calls[(operation.path, mode.value)] = fuzz(operation, mode, gateway, fake, session, answered)
        if operation.path == "/aichat/conversations":  # the accept header chooses the format: try the streams
            for accept in ("application/x-ndjson", "text/event-stream"):
                positive = GenerationMode.POSITIVE
                calls[(operation.path, accept)] = fuzz(operation, positive, gateway, fake, session, answered, accept)
    assert (
        len(calls) == 2 * len(FORWARDED) - len(FORMS) + 2 + len(PARAMETERIZED | MODELS_PATHS) + 4
    )  # 4 GETs of the service
    assert all(count >= 1 for count in calls.values()), calls  # the GETs take little input: a few cases each
    assert sum(calls.values()) >= 600, calls
    # every answer format was produced
    formats = {media for path, media in answered if path == "/aichat/conversations"}
    assert formats >= {"application/json", "application/x-ndjson", "text/event-stream"}, answered
    assert ("/openai/responses", "text/event-stream") in answered
    assert fake.open_requests == 0
