"""Real servers on loopback for tests: an ASGI app under uvicorn in a thread, and the gateway as a process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from app.server import loopback_socket

ROOT = Path(__file__).resolve().parent.parent


class ThreadServer:
    """An ASGI app served by uvicorn on its own event loop in a daemon thread."""

    def __init__(self, app: Any, lifespan: str = "off"):
        self.sock = loopback_socket()
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, lifespan=lifespan, log_config=None, access_log=False, loop="asyncio")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.run(self.server.serve(sockets=[self.sock]))

    def start(self) -> ThreadServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server thread did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode}")
        try:
            if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError("the server did not become healthy")


class GatewayProcess:
    """`python -m app serve ...` as a user runs it, in a clean directory (no stray .env), logging to a file."""

    def __init__(self, env: dict[str, str], workdir: Path, args: tuple[str, ...] = ()):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"gateway-{self.port}.log"
        full_env = {k: v for k, v in os.environ.items() if not k.startswith(("PROXY_", "ACEDATACLOUD_"))}
        full_env.update(env)
        full_env["PYTHONPATH"] = str(ROOT)
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--port", str(self.port), *args],
            env=full_env,
            cwd=workdir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 15) -> GatewayProcess:
        try:
            wait_healthy(self.url, self.proc, timeout)
        except RuntimeError as exc:
            log = self.log()
            self.stop()  # nobody else holds this process yet: left running, it would outlive the test session
            raise RuntimeError(f"{exc}:\n{log}") from None
        return self

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


def rss_bytes(pid: int) -> int:
    """A process's resident memory, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")


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
