"""Without a keys file on loopback, a web page the user opens cannot spend the team's balance through the
gateway: cross-site origins, cross-site fetches and rebound host names get 403 and are never forwarded."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.access import keys
from app.fakes.upstream import FakeUpstream
from app.middleware.browsers import host_name
from tests.helpers import CLIENT_KEY, GatewayFactory, GatewayProcess, RawResponse, raw_exchange

BODY = b'{"model":"gpt-4.1","input":"hi"}'


def post(port: int, headers: str, host: str = "127.0.0.1") -> RawResponse:
    head = f"POST /openai/responses HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n{headers}"
    return raw_exchange(port, f"{head}content-length: {len(BODY)}\r\n\r\n".encode() + BODY)


@pytest.mark.parametrize(
    ("headers", "host"),
    [("origin: https://evil.example\r\n", "127.0.0.1"),
     ("origin: null\r\n", "127.0.0.1"),
     ("origin: http://localhost:3000\r\n", "localhost:8000"),  # same site, another origin
     ("sec-fetch-site: cross-site\r\n", "127.0.0.1"),
     ("", "evil.example"),
     ("", "rebound.evil.example:8000"),
     ("", "10.0.0.1")],
)  # fmt: skip
def test_cross_site_and_rebound_requests_are_refused(gateway: GatewayProcess, fake: FakeUpstream, headers, host):
    response = post(gateway.port, headers, host)
    assert response.status == 403, response.body
    assert response.json()["error"]["code"] == "cross_site_request"
    assert fake.exchanges == []


@pytest.mark.parametrize(
    ("headers", "host"),
    [("", "127.0.0.1"), ("", "localhost"), ("", "[::1]:8000"), ("", "app.localhost"),
     ("sec-fetch-site: same-origin\r\n", "127.0.0.1:{port}"),
     ("origin: http://127.0.0.1:{port}\r\nsec-fetch-site: same-origin\r\n", "127.0.0.1:{port}")],
)  # fmt: skip
def test_loopback_clients_and_the_gateways_own_pages_are_served(
    gateway: GatewayProcess, fake: FakeUpstream, headers: str, host: str
):
    port = str(gateway.port)
    assert post(gateway.port, headers.replace("{port}", port), host.replace("{port}", port)).status == 200
    assert len(fake.exchanges) == 1


def test_listed_origins_are_served(make_gateway: GatewayFactory, fake: FakeUpstream):
    gateway = make_gateway(PROXY_CORS_ORIGINS="https://app.example").wait_ready()
    listed = post(gateway.port, "origin: https://app.example\r\nsec-fetch-site: cross-site\r\n")
    assert listed.status == 200
    assert listed.header("access-control-allow-origin") == "https://app.example"
    assert post(gateway.port, "origin: https://other.example\r\n").status == 403


def test_a_keys_file_guards_the_gateway_instead(make_gateway: GatewayFactory, fake: FakeUpstream, tmp_path: Path):
    path = tmp_path / "keys.toml"
    keys.save(path, [keys.KeyEntry("team", keys.digest(CLIENT_KEY))])
    gateway = make_gateway(PROXY_KEYS_FILE=str(path)).wait_ready()
    headers = f"authorization: Bearer {CLIENT_KEY}\r\norigin: https://evil.example\r\n"
    assert post(gateway.port, headers, "gateway.example").status == 200


@pytest.mark.parametrize(
    ("value", "name"),
    [("127.0.0.1:8000", "127.0.0.1"), ("[::1]:80", "::1"), ("LocalHost", "localhost"), ("::1", "::1")],
)
def test_host_names(value: str, name: str):
    assert host_name(value) == name
