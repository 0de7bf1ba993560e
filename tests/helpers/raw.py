"""Raw HTTP/1.1 on loopback sockets, for requests httpx would refuse to send or would normalise."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class RawResponse:
    """An HTTP/1.1 response read off a raw socket (for requests httpx would refuse to send or would normalise)."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((value for key, value in self.headers if key == name.lower()), None)

    def json(self) -> Any:
        return json.loads(self.body)


def _read_until(sock: socket.socket, buffer: bytearray, done: Callable[[bytearray], bool]) -> None:
    while not done(buffer):
        data = sock.recv(65536)
        if not data:
            raise ConnectionError(f"connection closed after {len(buffer)} bytes")
        buffer += data


def read_response(sock: socket.socket, head: bool = False) -> RawResponse:
    """One response from `sock`: status line, headers, then a body by content-length, chunks, or until close."""
    buffer = bytearray()
    _read_until(sock, buffer, lambda b: b"\r\n\r\n" in b)
    header_block, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    status_line, *lines = header_block.decode("latin-1").split("\r\n")
    status = int(status_line.split()[1])
    headers = [(k.strip().lower(), v.strip()) for k, _, v in (line.partition(":") for line in lines)]
    response = RawResponse(status, headers, b"")
    length = response.header("content-length")
    body = bytearray(rest)
    if head or status in (204, 304) or status < 200:
        return response
    if length is not None:
        _read_until(sock, body, lambda b: len(b) >= int(length))
        response.body = bytes(body[: int(length)])
    elif (response.header("transfer-encoding") or "").lower() == "chunked":
        _read_until(sock, body, lambda b: b"\r\n0\r\n\r\n" in b or b.startswith(b"0\r\n\r\n"))
        response.body = _dechunk(bytes(body))
    else:
        while data := sock.recv(65536):
            body += data
        response.body = bytes(body)
    return response


def _dechunk(data: bytes) -> bytes:
    out = bytearray()
    while True:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            return bytes(out)
        out += data[:size]
        data = data[size + 2 :]


def raw_exchange(port: int, request: bytes, head: bool = False, timeout: float = 10) -> RawResponse:
    """Send `request` as is on a new connection and read one response."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        return read_response(sock, head)
