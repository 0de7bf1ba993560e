"""One keyed gateway for the whole compatibility suite, in front of the session's fake upstream: real clients
(openai-python, the openai npm package, LangChain, the Agents SDK) run against it as users would run them.

The anthropic and Agents SDK tests import their SDK where a test uses it, not at the top: every xdist worker
collects (imports) every test module but runs each on one worker only (--dist loadfile), and each SDK takes ~2 s of
CPU to import. (LangChain's stays at the top: imported in a test, it left an unclosed connection at exit.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.access import keys
from tests.helpers import refused_port, start_gateway, stop_gateway
from tests.helpers.compat import KEYS, MAX_REQUEST_BYTES, ConnectionAudit, KeyedGateway


@pytest.fixture(scope="session")
def keyed_gateway(tmp_path_factory: pytest.TempPathFactory, gateway_env: dict[str, str]) -> Iterator[KeyedGateway]:
    workdir = tmp_path_factory.mktemp("compat")
    keys_file = workdir / "keys.toml"
    plaintext = {name: keys.create(keys_file, name, **limits) for name, limits in KEYS.items()}
    env = {**gateway_env, "PROXY_KEYS_FILE": str(keys_file), "PROXY_MAX_REQUEST_BYTES": str(MAX_REQUEST_BYTES)}
    process = start_gateway(workdir, env)
    yield KeyedGateway(process, plaintext)
    stop_gateway(process)


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port bound and held by the test but never listening: connecting to it is refused."""
    with refused_port() as sock:
        yield sock.getsockname()[1]


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
