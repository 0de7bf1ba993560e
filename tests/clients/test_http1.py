"""The HTTP/1.1 upstream client against raw loopback servers that answer exactly what each test needs: framing,
keep-alive reuse, backpressure, timeouts, retries and failures, each as UpstreamFailure with the right kind."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import trustme

from app.clients import ClientOptions, UpstreamFailure
from app.clients.http1 import HIGH_WATER, Http1Client
from tests.helpers import refused_port, steady_value_async, wait_for_async

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
JSON_ANSWER = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


async def read_request(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(
        int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")
    )
    return head, await reader.readexactly(length)


class RawServer:
    def __init__(self, handler: Handler):
        self.handler = handler
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        task = asyncio.current_task()
        assert task is not None
        self.tasks.add(task)
        try:
            await self.handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.tasks.discard(task)
            writer.close()

    async def start(self) -> str:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        for task in list(self.tasks):  # handlers still waiting: their `finally` closes each connection
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        await self.server.wait_closed()


def client(url: str, **options: float) -> Http1Client:
    settings = {"connect_timeout": 2.0, "first_byte_timeout": 2.0, "read_timeout": 2.0, "max_connections": 10,
                "max_keepalive": 10, **options}  # fmt: skip
    return Http1Client(url, ClientOptions(**settings))  # type: ignore[arg-type]


async def body(response: object) -> bytes:
    chunks = []
    while chunk := await response.read():  # type: ignore[attr-defined]
        chunks.append(chunk)
    return b"".join(chunks)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[[Handler], Awaitable[tuple[str, RawServer]]]]:
    servers: list[RawServer] = []

    async def start(handler: Handler) -> tuple[str, RawServer]:
        server = RawServer(handler)
        servers.append(server)
        return await server.start(), server

    yield start
    for server in servers:
        await server.stop()


async def keep_answering(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while True:
        await read_request(reader)
        writer.write(JSON_ANSWER)
        await writer.drain()


async def test_keep_alive_connection_is_reused_and_the_request_is_exact(serve):
    seen: list[tuple[bytes, bytes]] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            seen.append(await read_request(reader))
            writer.write(JSON_ANSWER)

    url, server = await serve(handler)
    upstream = client(url)
    for _ in range(3):
        response = await upstream.request("POST", b"/openai/responses", [(b"x-a", b"1")], b'{"a": 1}')
        assert response.status == 200
        assert (b"content-type", b"application/json") in response.headers
        assert await body(response) == b"{}"
        await response.aclose()
    assert server.connections == 1
    assert (upstream.in_use, len(upstream.idle)) == (0, 1)
    head, sent = seen[0]
    assert head.startswith(b"POST /openai/responses HTTP/1.1\r\nhost: 127.0.0.1:")
    assert b"\r\nx-a: 1\r\ncontent-length: 8\r\n" in head
    assert sent == b'{"a": 1}'
    await upstream.aclose()


async def test_chunked_and_close_delimited_bodies_arrive_whole(serve):
    first_read = asyncio.Event()

    async def chunked(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n")
        await writer.drain()
        await first_read.wait()  # the rest once the client has read the first chunk: the body in two reads
        writer.write(b"2\r\nde\r\n0\r\n\r\n")

    async def until_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it")

    url, _ = await serve(chunked)
    upstream = client(url)
    response = await upstream.request("POST", b"/x", [], b"{}")
    assert await response.read() == b"abc"
    first_read.set()
    assert await body(response) == b"de"
    await response.aclose()
    await upstream.aclose()

    url, _ = await serve(until_close)
    upstream = client(url)
    response = await upstream.request("POST", b"/x", [], b"{}")
    assert await body(response) == b"all of it"
    await response.aclose()
    await upstream.aclose()


async def test_informational_responses_are_skipped(serve):
    async def hints_first(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n" + JSON_ANSWER)

    url, _ = await serve(hints_first)
    upstream = client(url)
    response = await upstream.request("POST", b"/x", [], b"{}")
    assert response.status == 200
    assert [name for name, _ in response.headers] == [b"content-type", b"content-length"]
    assert await body(response) == b"{}"
    await response.aclose()
    await upstream.aclose()


async def test_slow_reader_pauses_the_upstream(serve):
    sent = 0
    finished = asyncio.Event()

    async def firehose(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % (64 * 1024 * 1024))
        for _ in range(1024):
            writer.write(b"x" * 65536)
            await writer.drain()  # blocks once the gateway stops reading and the socket buffers fill
            sent += 65536
        finished.set()

    url, _ = await serve(firehose)
    upstream = client(url)
    response = await upstream.request("POST", b"/x", [], b"{}")
    await response.read()
    await steady_value_async(lambda: sent)  # the reader is away; the upstream sends until TCP holds it back
    assert not finished.is_set()
    assert sent < 16 * 1024 * 1024  # held back by TCP, not buffered in the gateway
    # paused past the high-water mark; at most one more socket read (uvloop reads 256 KiB at a time) lands after
    assert response.buffered <= HIGH_WATER + 256 * 1024
    await response.aclose()
    await upstream.aclose()


async def test_first_byte_and_between_bytes_timeouts(serve):
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await asyncio.Event().wait()  # silent until the test ends (the server's stop cancels it)

    async def stalls(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
        await asyncio.Event().wait()  # stalls until the test ends

    url, _ = await serve(silent)
    upstream = client(url, first_byte_timeout=0.3)
    started = time.monotonic()
    with pytest.raises(UpstreamFailure) as failure:
        await upstream.request("POST", b"/x", [], b"{}")
    assert (failure.value.kind, failure.value.timeout) == ("timeout", True)
    assert 0.25 < time.monotonic() - started < 1.5
    assert (upstream.in_use, len(upstream.idle)) == (0, 0)
    await upstream.aclose()

    url, _ = await serve(stalls)
    upstream = client(url, read_timeout=0.3)
    response = await upstream.request("POST", b"/x", [], b"{}")
    assert await response.read() == b"abc"
    with pytest.raises(UpstreamFailure, match="between body bytes") as failure:
        await response.read()
    assert failure.value.kind == "timeout"
    await response.aclose()
    assert (upstream.in_use, len(upstream.idle)) == (0, 0)
    await upstream.aclose()


@pytest.mark.parametrize(
    ("answer", "kind"),
    [(b"", "protocol"), (b"NOT HTTP AT ALL\r\n\r\n", "protocol"),
     (b"HTTP/1.1 200 OK\r\ncontent-length: 9\r\n\r\nabc", "protocol")],
)  # fmt: skip
async def test_broken_answers_are_failures_of_their_kind(serve, answer: bytes, kind: str):
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(answer)

    url, _ = await serve(handler)
    upstream = client(url)
    with pytest.raises(UpstreamFailure) as failure:  # noqa: PT012 - before or after the headers, by case
        response = await upstream.request("POST", b"/x", [], b"{}")
        await body(response)
    assert failure.value.kind == kind
    assert not failure.value.timeout
    await upstream.aclose()


async def test_refused_connection_is_retried_then_fails():
    with refused_port() as closed:  # held, never listening: connections are refused
        upstream = client(f"http://127.0.0.1:{closed.getsockname()[1]}", connect_retries=2)
        started = time.monotonic()
        with pytest.raises(UpstreamFailure) as failure:
            await upstream.request("POST", b"/x", [], b"{}")
    assert failure.value.kind == "connect"
    assert time.monotonic() - started >= 0.05  # two jittered backoffs: 25-75 ms, then 50-150 ms
    assert (upstream.in_use, len(upstream.idle)) == (0, 0)


async def test_a_connection_the_upstream_closed_while_idle_is_not_reused(serve):
    async def one_then_close(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(JSON_ANSWER)
        await writer.drain()

    url, server = await serve(one_then_close)
    upstream = client(url)
    for _ in range(2):
        response = await upstream.request("POST", b"/x", [], b"{}")
        assert await body(response) == b"{}"
        await response.aclose()
        # the upstream's FIN arrives while the connection is idle
        await wait_for_async(lambda: upstream.idle[-1].lost, what="the upstream's close seen")
    assert server.connections == 2
    await upstream.aclose()


async def test_saturated_pool_waits_then_times_out(serve):
    release = asyncio.Event()

    async def slow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        await release.wait()
        writer.write(JSON_ANSWER)
        await keep_answering(reader, writer)

    url, server = await serve(slow)
    upstream = client(url, max_connections=1, connect_timeout=0.3)
    first = asyncio.create_task(upstream.request("POST", b"/x", [], b"{}"))
    await wait_for_async(lambda: server.connections == 1, what="the first request holding the one connection")
    with pytest.raises(UpstreamFailure, match="no upstream connection became free") as failure:
        await upstream.request("POST", b"/x", [], b"{}")
    assert failure.value.timeout
    waiting = asyncio.create_task(upstream.request("POST", b"/x", [], b"{}"))
    release.set()
    response = await first
    assert await body(response) == b"{}"
    await response.aclose()  # frees the one connection for the waiting request
    second = await asyncio.wait_for(waiting, 2)
    assert await body(second) == b"{}"
    await second.aclose()
    assert (upstream.in_use, len(upstream.idle)) == (0, 1)
    await upstream.aclose()


async def test_closing_a_response_before_its_end_closes_the_connection(serve):
    closed = asyncio.Event()

    async def endless(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        try:
            while True:
                writer.write(b"1\r\nx\r\n")
                await writer.drain()
                await asyncio.sleep(0.01)
        finally:
            closed.set()

    url, _ = await serve(endless)
    upstream = client(url)
    response = await upstream.request("POST", b"/x", [], b"{}")
    assert await response.read() == b"x"
    await response.aclose()
    await asyncio.wait_for(closed.wait(), 2)  # the upstream saw the connection go at once
    assert (upstream.in_use, len(upstream.idle)) == (0, 0)
    await upstream.aclose()


@pytest.fixture
def tls_upstream(monkeypatch: pytest.MonkeyPatch, tmp_path) -> ssl.SSLContext:
    """A test CA the client trusts through SSL_CERT_FILE (what OpenSSL's default paths read), and the server
    context of a certificate it signed for 127.0.0.1 and localhost."""
    authority = trustme.CA()
    bundle = tmp_path / "ca.pem"
    authority.cert_pem.write_to_path(str(bundle))
    monkeypatch.setenv("SSL_CERT_FILE", str(bundle))
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    authority.issue_cert("127.0.0.1", "localhost").configure_cert(server_context)
    return server_context


async def test_https_upstream_is_verified_and_kept_alive(tls_upstream: ssl.SSLContext):
    server = await asyncio.start_server(keep_answering, "127.0.0.1", 0, ssl=tls_upstream)
    port = server.sockets[0].getsockname()[1]
    try:
        upstream = client(f"https://localhost:{port}")
        for _ in range(2):
            response = await upstream.request("POST", b"/x", [], b"{}")
            assert (response.status, await body(response)) == (200, b"{}")
            await response.aclose()
        assert (upstream.in_use, len(upstream.idle)) == (0, 1)
        await upstream.aclose()
    finally:
        server.close()
        await server.wait_closed()


async def test_https_upstream_with_an_untrusted_certificate_is_refused(tls_upstream: ssl.SSLContext, monkeypatch):
    monkeypatch.delenv("SSL_CERT_FILE")  # the system's authorities: none of them signed the test certificate
    server = await asyncio.start_server(keep_answering, "127.0.0.1", 0, ssl=tls_upstream)
    port = server.sockets[0].getsockname()[1]
    try:
        upstream = client(f"https://localhost:{port}", connect_retries=2)
        with pytest.raises(UpstreamFailure) as failure:
            await upstream.request("POST", b"/x", [], b"{}")
        assert failure.value.kind == "connect"
        assert failure.value.message == (
            "the upstream's TLS certificate was refused (unable to get local issuer certificate)"
        )
        await upstream.aclose()
    finally:
        server.close()
        await server.wait_closed()
