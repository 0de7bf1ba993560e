"""redis-server on a loopback port, for the tests of what replicas share (limits, budgets, the usage ledger)."""

from __future__ import annotations

import shutil
import socket
import subprocess
from pathlib import Path

from tests.helpers.servers import refused_port
from tests.helpers.waiting import wait_for


class RedisServer:
    """redis-server on a loopback port reserved for it. Redis cannot be handed a listening socket, so the port
    is held by a bound, never-listening socket of ours (both sides set SO_REUSEADDR, which lets redis bind it
    too): the kernel gives that port to no one else in the meantime, and the reservation ends with the test."""

    def __init__(self, workdir: Path):
        self.reserved = refused_port()
        self.port = self.reserved.getsockname()[1]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is missing: scripts/test installs it from Debian's packages"
        self.proc = proc = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        wait_for(lambda: proc.poll() is not None or self.ping(), 10, "redis-server answering")
        assert proc.poll() is None, "redis-server exited"
        return self

    def ping(self) -> bool:
        """A raw RESP PING: the client library is not under test here, and a raw socket closes for sure."""
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def release(self) -> None:
        self.stop()
        self.reserved.close()
