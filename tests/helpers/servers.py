"""Real servers on loopback for tests: an ASGI app under uvicorn in a thread, the gateway as a process, and the
command line as users run it. Every listening socket is bound here first and handed over (`sockets=` in a thread,
`--fd` to a process), so no port is ever picked, released and raced for."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Literal

import httpx
import uvicorn

from app.serving.server import loopback_socket
from tests.helpers.waiting import wait_for

ROOT = Path(__file__).resolve().parent.parent.parent


# How long a process may take to start before a test fails. Only a failing start waits this long; on the shared
# 2-core machine, with other suites running, a two-worker start took over 15 s and a
# refusal at start-up over 20 s.
START_TIMEOUT = 45.0


def listening_socket(host: str = "127.0.0.1") -> socket.socket:
    """A socket bound to a port of the kernel's choosing and listening: connections queue until a server
    accepts them, and the port stays ours until the socket is closed."""
    sock = loopback_socket(0, host)
    sock.listen(1024)
    return sock


def refused_port() -> socket.socket:
    """A socket holding a loopback port without listening on it: connections to its port are refused, and no
    other test can take the port while the socket is open (close it after the test)."""
    return loopback_socket()


class ThreadServer:
    """An ASGI app served by uvicorn on its own event loop in a daemon thread."""

    def __init__(self, app: Any, lifespan: Literal["auto", "on", "off"] = "off"):
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
        wait_for(lambda: self.server.started or not self.thread.is_alive(), 10, "server thread started")
        if not self.server.started:
            raise RuntimeError("server thread did not start")
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def wait_healthy(url: str, proc: subprocess.Popen[bytes], timeout: float = START_TIMEOUT) -> None:
    wait_for(lambda: proc.poll() is not None or healthy(url), timeout, "the server healthy")
    if proc.poll() is not None:
        raise RuntimeError(f"the server exited with {proc.returncode}")


SETTINGS_PREFIXES = ("PROXY_", "ACEDATACLOUD_")  # the gateway's settings in the environment


def clean_env(workdir: Path, **env: str) -> dict[str, str]:
    """The test run's environment without any gateway settings, plus `env` and this checkout on the path; the
    usage ledger in `workdir` (shared by the processes one test starts), never in the user's own data directory."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(SETTINGS_PREFIXES)}
    return {**clean, "PYTHONPATH": str(ROOT), "PROXY_DATA_DIR": str(workdir / "data"), **env}


class CliProcess:
    """`python -m app ARGS` in `workdir`, output captured; with `listen=True`, given a listening loopback
    socket (`--fd`) so that it needs no port of its own choosing."""

    def __init__(self, workdir: Path, *args: str, listen: bool = False, host: str = "127.0.0.1", **env: str):
        sock = listening_socket(host) if listen else None
        fds = (sock.fileno(),) if sock else ()
        self.port = sock.getsockname()[1] if sock else 0
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app", *args, *(("--fd", str(fds[0])) if fds else ())],
            env=clean_env(workdir, **env),
            cwd=workdir,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            pass_fds=fds,
        )
        if sock:
            sock.close()  # the process holds it now; a copy left here would accept connections after it closed its own

    def output(self, timeout: float = START_TIMEOUT) -> bytes:
        """Everything it printed, once it exits (stopped with SIGTERM when `stop`)."""
        return self.proc.communicate(timeout=timeout)[0]

    def stop(self, timeout: float = START_TIMEOUT) -> bytes:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.output(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.output(timeout)


def run_cli(tmp_path: Path, *args: str, **env: str) -> subprocess.Popen[bytes]:
    """`python -m app ARGS` that needs no port (refusals, keys): its Popen, output captured."""
    return CliProcess(tmp_path, *args, listen=False, **env).proc


class LogReader:
    """The part of a gateway's log written since this reader was made: a test reads only its own lines, however
    many tests share the gateway, and waits for a line rather than guessing when it is written."""

    def __init__(self, gateway: GatewayProcess):
        self.gateway = gateway
        self.start = len(gateway.log())

    def text(self) -> str:
        return self.gateway.log()[self.start :]

    def wait_for(self, needle: str, timeout: float = 5.0) -> str:
        """The first line (since the reader began) that contains `needle`, once it is written."""
        wait_for(lambda: needle in self.text(), timeout, f"{needle!r} in the log")
        return next(line for line in self.text().splitlines() if needle in line)


def _split_host(args: tuple[str, ...]) -> tuple[str, tuple[str, ...]]:
    """`--host H` in a test's arguments becomes the address the handed-over socket is bound to."""
    if "--host" not in args:
        return "127.0.0.1", args
    at = args.index("--host")
    return args[at + 1], args[:at] + args[at + 2 :]


class GatewayProcess:
    """`python -m app serve ...` as a user runs it, in a clean directory (no stray .env), logging to a file, on
    a listening socket bound here and handed over with --fd."""

    def __init__(self, env: dict[str, str], workdir: Path, args: tuple[str, ...] = ()):
        host, args = _split_host(args)
        sock = listening_socket(host)
        self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"gateway-{self.port}.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app", "serve", "--fd", str(sock.fileno()), *args],
            env=clean_env(workdir, **env),
            cwd=workdir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            pass_fds=(sock.fileno(),),
        )
        sock.close()  # the gateway holds it now; a copy left here would accept connections after it closed its own

    def wait_ready(self, timeout: float = START_TIMEOUT) -> GatewayProcess:
        try:
            wait_healthy(self.url, self.proc, timeout)
        except (RuntimeError, AssertionError) as exc:
            raise RuntimeError(f"{exc}:\n{self.log()}") from None
        return self

    def log(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace")

    def log_from_now(self) -> LogReader:
        return LogReader(self)

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


def listening_ports(pid: int) -> set[int]:
    """The TCP ports process `pid` listens on, from /proc (Linux): how a test learns the port a server bound
    when it was told port 0, with no port picked beforehand."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):  # a descriptor closed while we look
            target = os.readlink(fd)
            if target.startswith("socket:["):
                inodes.add(target[8:-1])
    ports = set()
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] == "0A" and fields[9] in inodes:  # 0A: LISTEN
                ports.add(int(fields[1].rsplit(":", 1)[1], 16))
    return ports


def cpu_seconds(pid: int) -> float:
    """A process's CPU time so far (user + system), from /proc (Linux): unlike wall time, barely moved by what else
    the machine runs."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_bytes(pid: int) -> int:
    """A process's resident memory, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for process {pid}")
