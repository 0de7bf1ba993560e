"""How each client reaches the upstream, over real sockets on loopback: the base URL's path prefix joined with
the route's path, the egress proxy the environment names (HTTP_PROXY: absolute-form requests with the proxy's
credentials; NO_PROXY: none; nothing set: none), and Happy Eyeballs past an address that never answers."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Iterator

import pytest

from app.clients import ClientOptions, UpstreamClient
from app.clients.http1 import Http1Client
from app.clients.httpx_client import HttpxClient
from tests.helpers.conformance import CLIENTS
from tests.helpers.egress_proxy import EgressProxy
from tests.helpers.raw_upstream import JSON_BODY, RawUpstream

OPTIONS = ClientOptions(connect_timeout=3, first_byte_timeout=3, read_timeout=3, max_connections=4, max_keepalive=4)


def make(kind: str, url: str) -> UpstreamClient:
    return Http1Client(url, OPTIONS) if kind == "http1" else HttpxClient(url, OPTIONS)


async def post(client: UpstreamClient) -> tuple[int, bytes]:
    response = await client.request("POST", b"/openai/responses", [(b"x-request-id", b"plain:1")], b"{}")
    status, chunks = response.status, []
    while chunk := await response.read():
        chunks.append(chunk)
    await response.aclose()
    return status, b"".join(chunks)


@pytest.fixture(scope="module")
def proxy() -> Iterator[EgressProxy]:
    server = EgressProxy().start()
    yield server
    server.stop()


@pytest.fixture
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "NO_PROXY"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)


@pytest.mark.usefixtures("no_proxy_env")
@pytest.mark.parametrize("kind", CLIENTS)
async def test_a_base_url_path_prefix_is_joined_with_the_route_path(upstream: RawUpstream, proxy: EgressProxy, kind):
    client = make(kind, upstream.url + "/gateway/v2/")
    try:
        assert await post(client) == (200, JSON_BODY)
    finally:
        await client.aclose()
    head = upstream.stats_heads[-1]
    assert head.startswith(b"POST /gateway/v2/openai/responses HTTP/1.1\r\n")
    assert b"\r\nhost: 127.0.0.1:%d\r\n" % upstream.port in head.lower()
    assert proxy.forwarded == [] or all("gateway/v2" not in target for target in proxy.forwarded)


@pytest.mark.parametrize("kind", CLIENTS)
async def test_http_proxy_gets_absolute_form_requests_with_its_credentials(
    upstream: RawUpstream, proxy: EgressProxy, monkeypatch: pytest.MonkeyPatch, no_proxy_env: None, kind
):
    monkeypatch.setenv("HTTP_PROXY", proxy.url.replace("http://", "http://team:s%40cret@"))
    client = make(kind, upstream.url + "/v1")
    forwarded = len(proxy.forwarded)
    try:
        assert await post(client) == (200, JSON_BODY)
    finally:
        await client.aclose()
    assert proxy.forwarded[forwarded:] == [f"{upstream.url}/v1/openai/responses"]
    assert proxy.authorizations[-1] == "Basic dGVhbTpzQGNyZXQ="  # team:s@cret


@pytest.mark.parametrize("kind", CLIENTS)
@pytest.mark.parametrize("no_proxy", ["127.0.0.1", "*", ""])
async def test_no_proxy_or_no_variable_means_a_direct_connection(
    upstream: RawUpstream, proxy: EgressProxy, monkeypatch: pytest.MonkeyPatch, no_proxy_env: None, kind, no_proxy
):
    if no_proxy:
        monkeypatch.setenv("HTTP_PROXY", proxy.url)
        monkeypatch.setenv("NO_PROXY", no_proxy)
    seen = len(proxy.forwarded) + len(proxy.tunnels)
    client = make(kind, upstream.url)
    try:
        assert await post(client) == (200, JSON_BODY)
    finally:
        await client.aclose()
    assert len(proxy.forwarded) + len(proxy.tunnels) == seen


@pytest.fixture
async def unanswering_address() -> AsyncIterator[tuple[str, int]]:
    """An address whose connects hang (SYNs dropped: a listening socket with a full accept queue), like a
    broken IPv6 route."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    address = listener.getsockname()
    fillers = []
    for _ in range(4):  # fill the accept queue; later connects get no answer
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(address)
        fillers.append(filler)
    probe = socket.socket()
    probe.setblocking(False)
    with pytest.raises(TimeoutError):  # the premise: a connect there gets no answer
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(probe, address), 0.3)
    probe.close()
    yield address
    for filler in fillers:
        filler.close()
    listener.close()


@pytest.mark.usefixtures("no_proxy_env")
async def test_happy_eyeballs_moves_on_from_an_address_that_never_answers(
    upstream: RawUpstream, unanswering_address: tuple[str, int], monkeypatch: pytest.MonkeyPatch
):
    """The name resolves to a dead address first, then a live one: the live one answers in about 250 ms, far
    within the connect timeout (3 s). The resolver is the one thing replaced: two addresses for one name."""
    loop = asyncio.get_running_loop()
    dead, live = unanswering_address, ("127.0.0.1", upstream.port)

    async def resolve(host, port, **_):
        assert host == "upstream.test"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", dead), (socket.AF_INET, socket.SOCK_STREAM, 6, "", live)]

    monkeypatch.setattr(loop, "getaddrinfo", resolve)
    client = Http1Client(f"http://upstream.test:{upstream.port}", OPTIONS)
    started = time.monotonic()
    try:
        assert await post(client) == (200, JSON_BODY)
    finally:
        await client.aclose()
    assert time.monotonic() - started < 1.5
