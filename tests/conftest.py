"""Shared fixtures: one fake upstream (thread) and one gateway (process) for the session, plus factories for
gateways with other settings. Every gateway's log and /metrics are scanned for secrets when it stops, and every
response any httpx client receives in any test (the OpenAI SDK's included) is scanned as it arrives."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import httpx2
import openai
import pytest

from app.fakes.upstream import FakeUpstream
from tests.helpers import (
    CLIENT_KEY,
    UPSTREAM_TOKEN,
    GatewayFactory,
    GatewayProcess,
    LeakScanner,
    RedisServer,
    SdkFactory,
    ThreadServer,
    start_gateway,
    stop_gateway,
)
from tests.helpers.inprocess import gateway_on
from tests.helpers.tls import reuse_default_tls_contexts


@pytest.fixture(scope="session")
def leak_scanner() -> Iterator[LeakScanner]:
    """Wraps the real transports of httpx and httpx2 (the Agents SDK's and google-genai's) for the whole session,
    so every client the tests make is covered."""
    scanner = LeakScanner()
    with pytest.MonkeyPatch.context() as patch:
        scanner.watch(patch, httpx)
        scanner.watch(patch, httpx2)
        yield scanner


@pytest.fixture(scope="session", autouse=True)
def _one_tls_context() -> Iterator[None]:
    """httpx loads the CA bundle for every client it makes: a fifth of the suite's CPU, spent on nothing."""
    with pytest.MonkeyPatch.context() as patch:
        reuse_default_tls_contexts(patch)
        yield


@pytest.fixture(autouse=True)
def _no_secret_in_responses(leak_scanner: LeakScanner) -> Iterator[None]:
    yield
    leaks, leak_scanner.leaks = leak_scanner.leaks, []
    assert not leaks, f"secrets reached a client: {leaks}"


@pytest.fixture(scope="session", autouse=True)
def _data_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """In-process apps keep their usage ledger in a temporary directory too, never in the user's own."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PROXY_DATA_DIR", str(tmp_path_factory.mktemp("data")))
        yield


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


@pytest.fixture(scope="session")
def gateway_env(fake_server: ThreadServer) -> dict[str, str]:
    return {"ACEDATACLOUD_API_TOKEN": UPSTREAM_TOKEN, "ACEDATACLOUD_API_BASE_URL": fake_server.url}


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory, gateway_env: dict[str, str]) -> Iterator[GatewayProcess]:
    """The gateway as users run it, pointed at the fake upstream."""
    process = start_gateway(tmp_path_factory.mktemp("gateway"), gateway_env)
    yield process
    stop_gateway(process)


def _gateways(workdir: Path, gateway_env: dict[str, str]) -> Iterator[GatewayFactory]:
    started: list[GatewayProcess] = []

    def factory(*args: str, **env: str) -> GatewayProcess:
        process = start_gateway(workdir, {**gateway_env, **env}, args)
        started.append(process)
        return process

    yield factory
    for process in started:
        stop_gateway(process)


@pytest.fixture
def make_gateway(tmp_path: Path, gateway_env: dict[str, str]) -> Iterator[GatewayFactory]:
    """Start gateways with other settings: make_gateway(PROXY_READ_TIMEOUT="0.5")."""
    yield from _gateways(tmp_path, gateway_env)


@pytest.fixture(scope="module")
def make_module_gateway(
    tmp_path_factory: pytest.TempPathFactory, gateway_env: dict[str, str]
) -> Iterator[GatewayFactory]:
    """make_gateway for a gateway several tests of a module share (each start costs ~1 s of CPU): for tests that
    need the same settings and keep to state of their own (their own key, say), stopped after the module."""
    yield from _gateways(tmp_path_factory.mktemp("module-gateway"), gateway_env)


@pytest.fixture
def client(gateway: GatewayProcess) -> Iterator[httpx.Client]:
    """An httpx client on the gateway that sends a client key, which must never reach the upstream."""
    headers = {"authorization": f"Bearer {CLIENT_KEY}", "cookie": "session=abc"}
    with httpx.Client(base_url=gateway.url, headers=headers, timeout=30) as http:
        yield http


@pytest.fixture
async def app_client(fake: FakeUpstream, leak_scanner: LeakScanner) -> AsyncIterator[httpx.AsyncClient]:
    """The gateway in-process (create_app), the fake upstream in-process behind it, and an async client that sends
    a client key: for the many cases of a behaviour whose end-to-end test runs over real sockets."""
    async with gateway_on(fake, leak_scanner) as client:
        yield client


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


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path)
    try:
        yield server.start()
    finally:
        server.release()
