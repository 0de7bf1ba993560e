"""The upstream-client conformance suite's parts: one real gateway per upstream client pointed at a raw upstream
(started together), and a raw-socket client that reports exactly what a gateway client would see."""

from __future__ import annotations

import itertools
import socket
from dataclasses import dataclass
from pathlib import Path

from tests.helpers.gateways import stop_gateway
from tests.helpers.raw import RawResponse, read_response
from tests.helpers.secrets import UPSTREAM_TOKEN, assert_no_secrets
from tests.helpers.servers import GatewayProcess

CLIENTS = ("http1", "httpx")
BODY = b'{"model":"gpt-4.1","input":"hi"}'
_ids = itertools.count()


def start_gateways(tmp: Path, upstream_url: str, **env: str) -> dict[str, GatewayProcess]:
    """One gateway per client, started at once (their start-up overlaps), then waited for."""
    base = {"ACEDATACLOUD_API_TOKEN": UPSTREAM_TOKEN, "ACEDATACLOUD_API_BASE_URL": upstream_url, **env}
    started = {kind: GatewayProcess({**base, "PROXY_UPSTREAM_CLIENT": kind}, tmp) for kind in CLIENTS}
    return {kind: process.wait_ready() for kind, process in started.items()}


def stop_gateways(gateways: dict[str, GatewayProcess]) -> None:
    for process in gateways.values():
        stop_gateway(process)


@dataclass
class Outcome:
    """What a client of the gateway saw: a whole response, or a body cut short (`cut`)."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes
    cut: bool = False

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key == name), None)

    @property
    def error_code(self) -> str | None:
        import orjson

        try:
            return str(orjson.loads(self.body)["error"]["code"])
        except (orjson.JSONDecodeError, KeyError, TypeError):
            return None


def request_id(case: str) -> str:
    return f"{case}:{next(_ids)}"


def exchange(gateway: GatewayProcess, case: str, body: bytes = BODY, timeout: float = 10) -> Outcome:
    """POST `body` through the gateway, the upstream asked to behave as `case`; read the answer off the socket."""
    head = (
        f"POST /openai/responses HTTP/1.1\r\nhost: localhost\r\ncontent-type: application/json\r\n"
        f"x-request-id: {request_id(case)}\r\ncontent-length: {len(body)}\r\nconnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=timeout) as sock:
        sock.sendall(head + body)
        try:
            response: RawResponse = read_response(sock)
        except ConnectionError:
            return Outcome(0, [], b"", cut=True)
    assert_no_secrets(repr(response.headers).encode() + response.body, "a relayed response")
    return Outcome(response.status, response.headers, response.body)
