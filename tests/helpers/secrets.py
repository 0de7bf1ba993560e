"""The secrets every test's gateway is given, and the scans that prove they never come back out: in any
response an httpx or httpx2 client receives (headers and streamed bodies, chunk boundaries included; httpx2 is the
fork under the Agents SDK and google-genai), a log or /metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, TypeVar

import httpx
import httpx2
import pytest

# Distinctive values, so that a leak scan finding them means a leak and nothing else.
UPSTREAM_TOKEN = "upstream-secret-6f1c9e2ab7"
CLIENT_KEY = "sk-client-key-must-stay-here-42"
SECRETS = (UPSTREAM_TOKEN, CLIENT_KEY)
R = TypeVar("R", httpx.Response, httpx2.Response)


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

    def headers(self, response: httpx.Response | httpx2.Response, url: str) -> None:
        self.responses += 1
        raw = b"\n".join(name + b": " + value for name, value in response.headers.raw)
        self.leaks += [f"{secret!r} in the headers of {url}" for secret in self.found(raw)]

    def body(self, chunk: bytes, tail: bytes, url: str) -> bytes:
        window = tail + chunk
        self.leaks += [f"{secret!r} in the body of {url}" for secret in self.found(window)]
        return window[-self.overlap :]

    def scan(self, response: R, request: Any) -> R:
        """Scans the headers now and the body as it is read (a response of either package)."""
        self.headers(response, str(request.url))
        if isinstance(response, httpx.Response):
            response.stream = ScannedStream(response.stream, self, str(request.url))
        else:
            response.stream = ScannedStream2(response.stream, self, str(request.url))
        return response

    def watch(self, patch: pytest.MonkeyPatch, package: Any) -> None:
        """Every response the real transports of `package` (httpx or httpx2) receive, for as long as `patch`."""
        sync_send, async_send = package.HTTPTransport.handle_request, package.AsyncHTTPTransport.handle_async_request

        def handle_request(transport: Any, request: Any) -> Any:
            return self.scan(sync_send(transport, request), request)

        async def handle_async_request(transport: Any, request: Any) -> Any:
            return self.scan(await async_send(transport, request), request)

        patch.setattr(package.HTTPTransport, "handle_request", handle_request)
        patch.setattr(package.AsyncHTTPTransport, "handle_async_request", handle_async_request)


Stream = httpx.SyncByteStream | httpx.AsyncByteStream | httpx2.SyncByteStream | httpx2.AsyncByteStream


class ScannedStream(httpx.SyncByteStream, httpx.AsyncByteStream):
    def __init__(self, stream: Stream, scanner: LeakScanner, url: str):
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


class ScannedStream2(ScannedStream, httpx2.SyncByteStream, httpx2.AsyncByteStream):
    """The same scan, as a stream httpx2's responses accept."""
