"""The conformance suite's parts: a raw upstream, one real gateway per upstream client pointed at it (started
together, shared by a module), and a raw-socket client that reports exactly what a gateway client would see."""

from __future__ import annotations

import itertools
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.clients.raw_upstream import RawUpstream
from tests.conftest import UPSTREAM_TOKEN, _stop, assert_no_secrets
from tests.servers import GatewayProcess, RawResponse, read_response

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
        _stop(process)


@pytest.fixture(scope="session")
def upstream() -> Iterator[RawUpstream]:
    server = RawUpstream().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def gateways(tmp_path_factory: pytest.TempPathFactory, upstream: RawUpstream) -> Iterator[dict[str, GatewayProcess]]:
    # a fixed mmap threshold: glibc's adapts upwards after large frees and then keeps freed 8 MB bodies in the
    # heap, which would hide from RSS whether the gateway let go of them
    running = start_gateways(
        tmp_path_factory.mktemp("conformance"),
        upstream.url,
        PROXY_FIRST_BYTE_TIMEOUT="2",
        PROXY_READ_TIMEOUT="2",
        MALLOC_MMAP_THRESHOLD_="1048576",
    )
    yield running
    stop_gateways(running)


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
        f"POST /openai/responses HTTP/1.1\r\nhost: gateway\r\ncontent-type: application/json\r\n"
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
