"""PROXY_CORS_ORIGINS: browser apps on the listed origins may call the gateway; no one else gets CORS headers."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from app.fakes.upstream import FakeUpstream
from tests.helpers import GatewayProcess, start_gateway, stop_gateway

APP = "http://localhost:5173"
PREFLIGHT = {
    "origin": APP,
    "access-control-request-method": "POST",
    "access-control-request-headers": "authorization, content-type, x-stainless-os",
}


@pytest.fixture(scope="module")
def cors_gateway(tmp_path_factory: pytest.TempPathFactory, gateway_env: dict[str, str]) -> Iterator[GatewayProcess]:
    """One for the module: its tests only read, and nothing they send changes what the next one sees."""
    process = start_gateway(
        tmp_path_factory.mktemp("cors"), {**gateway_env, "PROXY_CORS_ORIGINS": f"{APP}, https://tools.example.com"}
    )
    yield process
    stop_gateway(process)


@pytest.mark.parametrize("path", ["/v1/chat/completions", "/openai/responses", "/v1/models", "/v1/responses/resp_1"])
def test_preflight_is_answered_for_allowed_origins(cors_gateway: GatewayProcess, fake: FakeUpstream, path: str):
    response = httpx.options(cors_gateway.url + path, headers=PREFLIGHT)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == APP
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "x-stainless-os" in response.headers["access-control-allow-headers"].lower()
    assert "access-control-allow-credentials" not in response.headers
    assert fake.exchanges == []


def test_answers_expose_the_request_id_and_limits(cors_gateway: GatewayProcess, fake: FakeUpstream):
    body = {"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    with httpx.stream(
        "POST", cors_gateway.url + "/v1/chat/completions", json=body, headers={"origin": APP}
    ) as response:
        assert b"".join(response.iter_raw()).endswith(b"data: [DONE]\n\n")  # the stream still passes through
    assert response.headers["access-control-allow-origin"] == APP
    exposed = response.headers["access-control-expose-headers"].lower()
    assert {"x-request-id", "x-ratelimit-remaining-requests", "retry-after"} <= set(exposed.replace(" ", "").split(","))


def test_other_origins_get_no_cors_headers(cors_gateway: GatewayProcess, fake: FakeUpstream):
    preflight = httpx.options(cors_gateway.url + "/v1/models", headers={**PREFLIGHT, "origin": "https://evil.example"})
    assert "access-control-allow-origin" not in preflight.headers
    answer = httpx.get(cors_gateway.url + "/v1/models", headers={"origin": "https://evil.example"})
    assert answer.status_code == 403  # and without a keys file, refused (tests/middleware/test_browsers.py)
    assert "access-control-allow-origin" not in answer.headers


def test_without_the_setting_there_is_no_cors(gateway: GatewayProcess):
    response = httpx.options(gateway.url + "/v1/models", headers=PREFLIGHT)
    assert response.status_code == 403  # no keys file: a cross-site browser request is refused outright
    assert "access-control-allow-origin" not in response.headers
    assert response.json()["error"]["code"] == "cross_site_request"
