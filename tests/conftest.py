"""Shared fixtures: one fake upstream (thread) and one gateway (process) for the session, plus factories for
gateways with other settings. Every gateway's log is scanned for secrets when it stops."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest

from app.fake_upstream import FakeUpstream
from tests.servers import GatewayProcess, ThreadServer

# Distinctive values, so that a leak scan finding them means a leak and nothing else.
UPSTREAM_TOKEN = "upstream-secret-6f1c9e2ab7"
CLIENT_KEY = "sk-client-key-must-stay-here-42"
SECRETS = (UPSTREAM_TOKEN, CLIENT_KEY)

GatewayFactory = Callable[..., GatewayProcess]
SdkFactory = Callable[..., openai.OpenAI]


def assert_no_secrets(text: str, where: str) -> None:
    for secret in SECRETS:
        assert secret not in text, f"a secret leaked into {where}"


@pytest.fixture(scope="session")
def fake_app() -> FakeUpstream:
    return FakeUpstream(token=UPSTREAM_TOKEN)


@pytest.fixture(scope="session")
def fake_server(fake_app: FakeUpstream) -> Iterator[ThreadServer]:
    server = ThreadServer(fake_app).start()
    yield server
    server.stop()


@pytest.fixture
def fake(fake_app: FakeUpstream, fake_server: ThreadServer) -> FakeUpstream:
    """The fake upstream, reset to normal behaviour with no recorded exchanges."""
    fake_app.reset()
    return fake_app


def _start(tmp: Path, env: dict[str, str], args: tuple[str, ...] = ()) -> GatewayProcess:
    return GatewayProcess(env, tmp, args).wait_ready()


def _stop(gateway: GatewayProcess) -> None:
    gateway.stop()
    assert_no_secrets(gateway.log(), f"the gateway log {gateway.log_path}")


@pytest.fixture(scope="session")
def gateway_env(fake_server: ThreadServer) -> dict[str, str]:
    return {"ACEDATACLOUD_API_TOKEN": UPSTREAM_TOKEN, "ACEDATACLOUD_API_BASE_URL": fake_server.url}


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory, gateway_env: dict[str, str]) -> Iterator[GatewayProcess]:
    """The gateway as users run it, pointed at the fake upstream."""
    process = _start(tmp_path_factory.mktemp("gateway"), gateway_env)
    yield process
    _stop(process)


@pytest.fixture
def make_gateway(tmp_path: Path, gateway_env: dict[str, str]) -> Iterator[GatewayFactory]:
    """Start gateways with other settings: make_gateway(PROXY_READ_TIMEOUT="0.5")."""
    started: list[GatewayProcess] = []

    def factory(*args: str, **env: str) -> GatewayProcess:
        process = _start(tmp_path, {**gateway_env, **env}, args)
        started.append(process)
        return process

    yield factory
    for process in started:
        _stop(process)


@pytest.fixture
def client(gateway: GatewayProcess) -> Iterator[httpx.Client]:
    """An httpx client on the gateway that sends a client key, which must never reach the upstream."""
    headers = {"authorization": f"Bearer {CLIENT_KEY}", "cookie": "session=abc"}
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=30) as http:
        yield http


@pytest.fixture
def make_sdk() -> Iterator[SdkFactory]:
    """The official OpenAI client on a base URL, closed after the test: make_sdk(gateway.url + "/v1")."""
    clients: list[openai.OpenAI] = []

    def factory(base_url: str, api_key: str = CLIENT_KEY) -> openai.OpenAI:
        client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=30)
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.close()
