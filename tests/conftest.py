"""Shared fixtures: one fake upstream (thread) and one gateway (process) for the session, plus factories for
gateways with other settings. Every gateway's log and /metrics are scanned for secrets when it stops, and every
response any httpx client receives in any test (the OpenAI SDK's included) is scanned as it arrives."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest

from app.fake_upstream import FakeUpstream
from tests.servers import GatewayProcess, RedisServer, ThreadServer

# Distinctive values, so that a leak scan finding them means a leak and nothing else.
UPSTREAM_TOKEN = "upstream-secret-6f1c9e2ab7"
CLIENT_KEY = "sk-client-key-must-stay-here-42"
SECRETS = (UPSTREAM_TOKEN, CLIENT_KEY)

GatewayFactory = Callable[..., GatewayProcess]
SdkFactory = Callable[..., openai.OpenAI]


def assert_no_secrets(text: str | bytes, where: str) -> None:
    data = text.encode(errors="replace") if isinstance(text, str) else text
    for secret in SECRETS:
        assert secret.encode() not in data, f"a secret leaked into {where}"


class LeakScanner:
    """Finds the secrets in response headers and bodies while they stream, chunk boundaries included."""

    def __init__(self) -> None:
        self.leaks: list[str] = []
        self.responses = 0
        self.overlap = max(len(secret) for secret in SECRETS) - 1

    def found(self, data: bytes) -> list[str]:
        return [secret for secret in SECRETS if secret.encode() in data]

    def headers(self, response: httpx.Response, url: str) -> None:
        self.responses += 1
        raw = b"\n".join(name + b": " + value for name, value in response.headers.raw)
        self.leaks += [f"{secret!r} in the headers of {url}" for secret in self.found(raw)]

    def body(self, chunk: bytes, tail: bytes, url: str) -> bytes:
        window = tail + chunk
        self.leaks += [f"{secret!r} in the body of {url}" for secret in self.found(window)]
        return window[-self.overlap :]


class _ScannedStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    def __init__(self, stream: httpx.SyncByteStream | httpx.AsyncByteStream, scanner: LeakScanner, url: str):
        self.stream, self.scanner, self.url, self.tail = stream, scanner, url, b""

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.stream:  # type: ignore[union-attr]
            self.tail = self.scanner.body(chunk, self.tail, self.url)
            yield chunk

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.stream:  # type: ignore[union-attr]
            self.tail = self.scanner.body(chunk, self.tail, self.url)
            yield chunk

    def close(self) -> None:
        self.stream.close()  # type: ignore[union-attr]

    async def aclose(self) -> None:
        await self.stream.aclose()  # type: ignore[union-attr]


@pytest.fixture(scope="session")
def leak_scanner() -> Iterator[LeakScanner]:
    """Wraps httpx's real transports for the whole session, so every client the tests make is covered."""
    scanner = LeakScanner()
    sync_send, async_send = httpx.HTTPTransport.handle_request, httpx.AsyncHTTPTransport.handle_async_request

    def handle_request(self: httpx.HTTPTransport, request: httpx.Request) -> httpx.Response:
        response = sync_send(self, request)
        scanner.headers(response, str(request.url))
        response.stream = _ScannedStream(response.stream, scanner, str(request.url))
        return response

    async def handle_async_request(self: httpx.AsyncHTTPTransport, request: httpx.Request) -> httpx.Response:
        response = await async_send(self, request)
        scanner.headers(response, str(request.url))
        response.stream = _ScannedStream(response.stream, scanner, str(request.url))
        return response

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(httpx.HTTPTransport, "handle_request", handle_request)
        patch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", handle_async_request)
        yield scanner


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


def _start(tmp: Path, env: dict[str, str], args: tuple[str, ...] = ()) -> GatewayProcess:
    # the usage ledger in the test's own directory (shared by the gateways one test starts), never in ~/.local
    process = GatewayProcess({"PROXY_DATA_DIR": str(tmp / "data"), **env}, tmp, args)
    try:
        return process.wait_ready()
    except RuntimeError:
        process.stop()  # a gateway that refused to start: its log is closed all the same
        raise


def _stop(gateway: GatewayProcess) -> None:
    metrics = ""
    if gateway.proc.poll() is None:
        with contextlib.suppress(httpx.TransportError):  # a gateway a test is stopping: nothing to scrape
            metrics = httpx.get(gateway.url + "/metrics", timeout=5).text
    gateway.stop()
    assert_no_secrets(metrics, f"the metrics of {gateway.url}")
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


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()
