"""/metrics names every key: with a keys file, clients of the gateway's port do not see it. PROXY_METRICS_PORT
serves it on a listener of its own; without that, only admin keys read it on the gateway's port."""

from __future__ import annotations

import socket
from pathlib import Path

import httpx

from app.access import keys
from app.fakes.upstream import FakeUpstream
from tests.helpers import START_TIMEOUT, GatewayFactory, listening_ports, raw_exchange, wait_for


def keyed(make_gateway: GatewayFactory, tmp_path: Path, **env: str) -> tuple[object, str, str]:
    path = tmp_path / "keys.toml"
    member, admin = keys.create(path, "member"), keys.create(path, "lead", admin=True)
    return make_gateway(PROXY_KEYS_FILE=str(path), **env), member, admin


def test_only_admin_keys_read_metrics_on_the_gateways_port(make_gateway: GatewayFactory, tmp_path: Path):
    gateway, member, admin = keyed(make_gateway, tmp_path)
    url = gateway.url + "/metrics"  # type: ignore[attr-defined]
    assert httpx.get(url).json()["error"]["code"] == "invalid_api_key"
    refused = httpx.get(url, headers={"authorization": f"Bearer {member}"})
    assert refused.status_code == 403
    assert "member" in refused.json()["error"]["message"]
    assert "lead" not in refused.text
    allowed = httpx.get(url, headers={"authorization": f"Bearer {admin}"})
    assert allowed.status_code == 200
    assert "acedata_proxy_requests_total" in allowed.text


def test_metrics_port_serves_metrics_on_a_listener_of_its_own(
    make_gateway: GatewayFactory, tmp_path: Path, fake: FakeUpstream
):
    gateway, member, admin = keyed(make_gateway, tmp_path, PROXY_METRICS_PORT="0")
    pid, port = gateway.proc.pid, gateway.port  # type: ignore[attr-defined]
    wait_for(lambda: len(listening_ports(pid)) == 2, START_TIMEOUT, "the metrics listener")
    [metrics_port] = listening_ports(pid) - {port}
    httpx.post(f"http://127.0.0.1:{port}/v1/models", headers={"authorization": f"Bearer {member}"})
    scraped = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics")
    assert scraped.status_code == 200
    assert scraped.headers["content-type"].startswith("text/plain")
    assert "acedata_proxy_requests_total" in scraped.text
    assert httpx.get(f"http://127.0.0.1:{metrics_port}/readyz").status_code == 404  # nothing else there
    on_gateway = httpx.get(f"http://127.0.0.1:{port}/metrics", headers={"authorization": f"Bearer {admin}"})
    assert on_gateway.status_code == 404
    with socket.create_connection(("127.0.0.1", metrics_port), timeout=10) as sock:
        sock.sendall(b"GET /metrics HTTP/1.1\r\n" + b"x: " + b"a" * 20_000)  # a head past the listener's limit
        assert sock.recv(1024) == b""
    assert raw_exchange(metrics_port, b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n").status == 200
