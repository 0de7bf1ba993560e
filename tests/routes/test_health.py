"""GET /healthz and /readyz (HEAD too, as on every GET route), and the 503 every forwarding route gives while
no upstream token is set."""

from __future__ import annotations

import httpx

from app.fakes.upstream import FakeUpstream
from tests.helpers import GatewayFactory, GatewayProcess


def test_healthz_and_readyz(gateway: GatewayProcess):
    assert httpx.get(gateway.url + "/healthz").json() == {"status": "ok"}
    ready = httpx.get(gateway.url + "/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    ledger = ready.json()["ledger"]
    assert ledger["storage"] == "sqlite"
    assert ledger["flush_interval_s"] == 1.0
    assert "ledger.sqlite3" not in ready.text  # no filesystem path for whoever can reach it
    assert "/" not in "".join(str(value) for value in ledger.values())


def test_head_answers_wherever_get_does(gateway: GatewayProcess):
    """Load balancers and uptime checkers probe with HEAD: the GET route's status and headers, no body."""
    for path in ("/healthz", "/readyz", "/metrics", "/v1/models", "/openai/models", "/v1/models/gpt-4o"):
        got, head = httpx.get(gateway.url + path), httpx.head(gateway.url + path)
        assert (path, head.status_code) == (path, got.status_code)
        assert head.content == b""
        assert head.headers["content-type"] == got.headers["content-type"]


def test_without_token_the_gateway_starts_warns_and_answers_503(make_gateway: GatewayFactory, fake: FakeUpstream):
    gateway = make_gateway(ACEDATACLOUD_API_TOKEN="")
    assert "ACEDATACLOUD_API_TOKEN is not set" in gateway.log()
    for path, body in [("/openai/responses", {"model": "gpt-4.1", "input": "hi"}),
                       ("/aichat/conversations", {"model": "gpt-4o", "question": "hi"})]:  # fmt: skip
        response = httpx.post(gateway.url + path, json=body)
        assert response.status_code == 503
        error = response.json()["error"]
        assert error["code"] == "upstream_not_configured"
        assert "ACEDATACLOUD_API_TOKEN" in error["message"]
    ready = httpx.get(gateway.url + "/readyz")
    assert ready.status_code == 503
    assert ready.json()["problems"] == ["The gateway has no upstream token: set ACEDATACLOUD_API_TOKEN and restart it."]
    assert httpx.get(gateway.url + "/v1/models").status_code == 200  # answered by the gateway: no token needed
    assert fake.exchanges == []
