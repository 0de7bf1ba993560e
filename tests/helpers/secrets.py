"""The secrets every test's gateway is given, and the scans that prove they never come back out: in any
response an httpx client receives (headers and streamed bodies, chunk boundaries included), a log or /metrics."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx

# Distinctive values, so that a leak scan finding them means a leak and nothing else.
UPSTREAM_TOKEN = "upstream-secret-6f1c9e2ab7"
CLIENT_KEY = "sk-client-key-must-stay-here-42"
SECRETS = (UPSTREAM_TOKEN, CLIENT_KEY)


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

    def scan(self, response: httpx.Response, request: httpx.Request) -> httpx.Response:
        """Scans the headers now and the body as it is read."""
        self.headers(response, str(request.url))
        response.stream = ScannedStream(response.stream, self, str(request.url))
        return response


class ScannedStream(httpx.SyncByteStream, httpx.AsyncByteStream):
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
