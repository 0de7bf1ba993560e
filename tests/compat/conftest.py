"""One keyed gateway for the whole compatibility suite, in front of the session's fake upstream: real clients
(openai-python, the openai npm package, LangChain, the Agents SDK) run against it as users would run them."""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from app import keys
from tests.conftest import _start, _stop
from tests.servers import GatewayProcess

MAX_REQUEST_BYTES = 64 * 1024  # small, so a 413 costs no gateway of its own


@dataclass
class KeyedGateway:
    process: GatewayProcess
    keys: dict[str, str]  # name -> plaintext

    @property
    def url(self) -> str:
        return self.process.url

    def key(self, name: str) -> str:
        return self.keys[name]


# name -> limits: "app" may do everything (and carries an RPM, so its answers have x-ratelimit-* headers),
# "narrow" has an allowlist, each "rpm1-*" admits one request a minute (one per test that spends it).
KEYS: dict[str, dict[str, Any]] = {
    "app": {"rpm": 100_000},
    "narrow": {"models": ["gpt-4o-mini"]},
    "rpm1-sync": {"rpm": 1},
    "rpm1-async": {"rpm": 1},
}


@pytest.fixture(scope="session")
def keyed_gateway(tmp_path_factory: pytest.TempPathFactory, gateway_env: dict[str, str]) -> Iterator[KeyedGateway]:
    workdir = tmp_path_factory.mktemp("compat")
    keys_file = workdir / "keys.toml"
    plaintext = {name: keys.create(keys_file, name, **limits) for name, limits in KEYS.items()}
    env = {**gateway_env, "PROXY_KEYS_FILE": str(keys_file), "PROXY_MAX_REQUEST_BYTES": str(MAX_REQUEST_BYTES)}
    process = _start(workdir, env)
    yield KeyedGateway(process, plaintext)
    _stop(process)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port bound and held by the test but never listening: connecting to it is refused."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


class ConnectionAudit:
    """Every host this process connects to or resolves, seen through Python's audit events (sockets, asyncio's
    included). One hook for the session (audit hooks cannot be removed); tests read what arrived during them."""

    def __init__(self) -> None:
        self.hosts: list[str] = []
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if event == "socket.connect" and isinstance(args[1], tuple):
            self.hosts.append(str(args[1][0]))
        elif event == "socket.getaddrinfo":
            self.hosts.append(str(args[0]))

    def outside_loopback(self, since: int) -> list[str]:
        return [host for host in self.hosts[since:] if host not in ("127.0.0.1", "::1", "localhost")]


@pytest.fixture(scope="session")
def connection_audit() -> ConnectionAudit:
    return ConnectionAudit()


@pytest.fixture(autouse=True)
def _loopback_only(connection_audit: ConnectionAudit) -> Iterator[None]:
    """No client in the suite reaches or even resolves anything but loopback (tracing, telemetry, a tokenizer
    download): the gateway is the only endpoint a user's program needs."""
    since = len(connection_audit.hosts)
    yield
    assert connection_audit.outside_loopback(since) == []


JS_DIR = Path(__file__).parent / "js"
