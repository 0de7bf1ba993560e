"""Shared pieces of the benchmark scripts: processes that always get cleaned up, free loopback ports, the nginx
upstream and reverse proxy, wrk runs, raw-socket HTTP, stream timing and RSS.

Standard library only, so `bench/run.py` runs with the project venv's python (or any python 3.11+). Every
server listens on 127.0.0.1 and every load loop is bounded by a count or a duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
POST_LUA = BENCH_DIR / "post.lua"
HOST = "127.0.0.1"
UPSTREAM_TOKEN = "upstream-test-token"
REQUEST_BODY = b'{"model":"gpt-4.1","input":"hi"}'
STREAM_BODY = b'{"model":"gpt-4.1","input":"hi","stream":true}'
# the same through chat completions: the route must cost what the Responses route costs
CHAT_BODY = b'{"model":"gpt-4.1","messages":[{"role":"user","content":"hi"}]}'
CHAT_STREAM_BODY = (
    b'{"model":"gpt-4.1","messages":[{"role":"user","content":"hi"}],"stream":true,'
    b'"stream_options":{"include_usage":true}}'
)
# ... and through Anthropic's Messages API (Claude Code's route)
MESSAGES_BODY = b'{"model":"claude-sonnet-4-5-20250929","max_tokens":64,"messages":[{"role":"user","content":"hi"}]}'
MESSAGES_STREAM_BODY = MESSAGES_BODY[:-1] + b',"stream":true}'

# What the fixed-cost upstream answers to every request: a small but complete Responses object.
RESPONSES_JSON = (
    '{"id":"resp_bench","object":"response","created_at":1700000000,"status":"completed","model":"gpt-4.1",'
    '"output":[{"id":"msg_bench","type":"message","status":"completed","role":"assistant","content":'
    '[{"type":"output_text","text":"Hello!","annotations":[]}]}],"usage":{"input_tokens":1,'
    '"input_tokens_details":{"cached_tokens":0},"output_tokens":2,"output_tokens_details":'
    '{"reasoning_tokens":0},"total_tokens":3}}'
)
# ... and to /chat/completions (for clients such as LiteLLM that may turn a Responses call into a chat call).
CHAT_JSON = (
    '{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4.1","choices":'
    '[{"index":0,"message":{"role":"assistant","content":"Hello!"},"finish_reason":"stop"}],'
    '"usage":{"prompt_tokens":1,"completion_tokens":2,"total_tokens":3}}'
)
# ... and to /v1/messages: an Anthropic message.
MESSAGES_JSON = (
    '{"id":"msg_bench","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":'
    '[{"type":"text","text":"Hello!"}],"stop_reason":"end_turn","stop_sequence":null,'
    '"usage":{"input_tokens":1,"output_tokens":2}}'
)

# ... and to /embeddings: one embedding of text-embedding-3-small's 1536 dimensions, as floats (the API's default
# encoding), digits as OpenAI prints them; fixed values, so every run sends the same bytes.
EMBEDDINGS_BODY = b'{"model":"text-embedding-3-small","input":"hi"}'
EMBEDDING_DIMENSIONS = 1536


def embeddings_json() -> str:
    rng = random.Random(EMBEDDING_DIMENSIONS)
    vector = ",".join(f"{rng.gauss(0.0, 0.025):.10f}" for _ in range(EMBEDDING_DIMENSIONS))
    return (
        f'{{"object":"list","data":[{{"object":"embedding","index":0,"embedding":[{vector}]}}],'
        '"model":"text-embedding-3-small","usage":{"prompt_tokens":1,"total_tokens":1}}'
    )


class BenchError(Exception):
    """A target failed to start or answered wrongly."""


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def raise_nofile(wanted: int = 8192) -> int:
    """This process's (and so every server's it starts) open-file limit, raised to `wanted` where allowed: past
    the hard limit only with the privilege to raise that too (root, CAP_SYS_RESOURCE)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, wanted))
            hard = wanted
    if soft < wanted:
        target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


@dataclass
class Pinning:
    """wrk and the bench client on one core, every server on the other (when there are two or more)."""

    client_cpu: int | None
    server_cpu: int | None

    @classmethod
    def choose(cls, enabled: bool = True) -> Pinning:
        cpus = sorted(os.sched_getaffinity(0))
        if not enabled or len(cpus) < 2 or shutil.which("taskset") is None:
            return cls(None, None)
        return cls(cpus[0], cpus[1])

    def server(self, argv: Sequence[str]) -> list[str]:
        return ["taskset", "-c", str(self.server_cpu), *argv] if self.server_cpu is not None else list(argv)

    def client(self, argv: Sequence[str]) -> list[str]:
        return ["taskset", "-c", str(self.client_cpu), *argv] if self.client_cpu is not None else list(argv)

    def pin_self(self) -> None:
        if self.client_cpu is not None:
            os.sched_setaffinity(0, {self.client_cpu})


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Processes:
    """Starts servers in their own process groups and stops every one of them (and only them) on exit."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.procs: list[Proc] = []

    def start(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> Proc:
        log_path = self.workdir / f"{name}.log"
        run_dir = cwd or (self.workdir / f"{name}.cwd")
        run_dir.mkdir(parents=True, exist_ok=True)
        with open(log_path, "wb") as out:
            popen = subprocess.Popen(
                list(argv), cwd=run_dir, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        proc = Proc(name, popen, log_path)
        self.procs.append(proc)
        return proc

    def stop(self, proc: Proc, grace: float = 8.0) -> None:
        if proc.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)  # the group this script created for it, and nothing else
            try:
                proc.popen.wait(grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.popen.wait(5)
        # workers of a server that died first may outlive it in its group
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs)):
            try:
                self.stop(proc)
            except Exception as exc:  # keep cleaning up the others
                log(f"could not stop {proc.name} (pid {proc.pid}): {exc}")


@contextlib.contextmanager
def workspace(keep: bool = False) -> Iterator[tuple[Path, Processes]]:
    """A temp dir and a process registry; everything is stopped and removed on exit, Ctrl-C and SIGTERM
    included."""
    workdir = Path(tempfile.mkdtemp(prefix="acedata-bench-"))
    procs = Processes(workdir)

    def on_term(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, on_term)
    try:
        yield workdir, procs
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not interrupt the cleanup
        try:
            procs.stop_all()
        finally:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            signal.signal(signal.SIGTERM, previous)
            if keep:
                log(f"kept {workdir}")
            else:
                shutil.rmtree(workdir, ignore_errors=True)


# -------------------------------------------------------------------------------------------------- source


def git_describe(rev: str | None = None) -> dict[str, Any]:
    """The commit the gateway code comes from (`rev`, or HEAD plus whether app/ has uncommitted changes when the
    work tree runs), read without touching the index (no optional locks)."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}

    def git(*argv: str) -> str:
        result = subprocess.run(["git", "-C", str(REPO), *argv], capture_output=True, text=True, env=env, check=False)
        return result.stdout.strip() if result.returncode == 0 else ""

    info: dict[str, Any] = {"commit": git("rev-parse", "--short=12", rev or "HEAD") or None}
    if rev is None:
        info["app_dirty"] = bool(git("--no-optional-locks", "status", "--porcelain", "--", "app"))
    return info


def snapshot_source(rev: str, workdir: Path) -> Path:
    """`git archive REV app` unpacked into workdir: a fixed version of the gateway to run, whatever the work tree
    holds meanwhile. Read-only for the repository."""
    dest = workdir / f"src-{rev.replace('/', '_')}"
    dest.mkdir()
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "app"], capture_output=True, check=False)
    if archive.returncode != 0:
        raise BenchError(f"git archive {rev} failed: {archive.stderr.decode(errors='replace').strip()}")
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest


def gateway_python() -> str:
    """The project's python (the venv next to the repo), which has the gateway's dependencies."""
    venv = REPO / ".venv" / "bin" / "python"
    return str(venv) if venv.exists() else sys.executable


# ---------------------------------------------------------------------------------------------------- HTTP


def http_request(
    port: int, method: str, path: str, body: bytes | None = None, headers: dict[str, str] | None = None,
    timeout: float = 5.0,
) -> tuple[int, bytes]:  # fmt: skip
    """One HTTP/1.1 exchange with Connection: close, over a raw loopback socket."""
    head = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}", "Connection: close"]
    for name, value in (headers or {}).items():
        head.append(f"{name}: {value}")
    if body is not None:
        head.append(f"Content-Length: {len(body)}")
    data = ("\r\n".join(head) + "\r\n\r\n").encode() + (body or b"")
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    raw = b"".join(chunks)
    status_line, _, rest = raw.partition(b"\r\n")
    parts = status_line.split()
    if len(parts) < 2 or not parts[1].isdigit():
        raise BenchError(f"not an HTTP answer from port {port}: {raw[:80]!r}")
    _, _, payload = rest.partition(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in rest.split(b"\r\n\r\n", 1)[0].lower():
        payload = dechunk(payload)
    return int(parts[1]), payload


def dechunk(data: bytes) -> bytes:
    out = bytearray()
    while data:
        size_line, _, data = data.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out += data[:size]
        data = data[size + 2 :]
    return bytes(out)


def wait_ready(proc: Proc, port: int, path: str, timeout: float, headers: dict[str, str] | None = None) -> float:
    """Poll GET `path` until it answers 200; raise (with the log's tail) if the process dies or time runs out."""
    started = time.monotonic()
    last = ""
    while time.monotonic() - started < timeout:
        if not proc.alive():
            raise BenchError(f"{proc.name} exited with {proc.popen.returncode} while starting:\n{proc.log_tail()}")
        try:
            status, _ = http_request(port, "GET", path, headers=headers, timeout=2.0)
            if status == 200:
                return time.monotonic() - started
            last = f"HTTP {status}"
        except (OSError, BenchError) as exc:
            last = str(exc)
        time.sleep(0.1)
    raise BenchError(f"{proc.name} not ready on port {port} after {timeout:.0f} s ({last}):\n{proc.log_tail()}")


# --------------------------------------------------------------------------------------------------- nginx

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"


def _nginx_conf(workdir: Path, http_block: str, connections: int = 8192) -> str:
    temp = "\n".join(
        f"    {name}_temp_path {workdir / name};" for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""worker_processes 1;
pid {workdir / "nginx.pid"};
error_log {workdir / "error.log"} warn;
worker_rlimit_nofile {min(2 * connections, resource.getrlimit(resource.RLIMIT_NOFILE)[1])};
events {{ worker_connections {connections};{" multi_accept on;" if connections > 8192 else ""} }}
http {{
    access_log off;
{temp}
    keepalive_requests 10000000;
    keepalive_timeout 60s;
{http_block}
}}
"""


def start_nginx(procs: Processes, name: str, http_block: str, pinning: Pinning, connections: int = 8192) -> Proc:
    nginx_dir = procs.workdir / name
    nginx_dir.mkdir()
    conf = nginx_dir / "nginx.conf"
    conf.write_text(_nginx_conf(nginx_dir, http_block, connections))
    argv = [NGINX, "-e", str(nginx_dir / "error.log"), "-p", str(nginx_dir), "-c", str(conf), "-g", "daemon off;"]
    return procs.start(name, pinning.server(argv))


def start_nginx_upstream(procs: Processes, port: int, pinning: Pinning, name: str = "nginx-upstream") -> Proc:
    """The fixed-cost upstream: a canned Responses JSON for any path (a chat.completion on chat paths, a message
    on /v1/messages, an embedding list on embeddings paths). The embeddings answer (~20 KB) is past what a
    `return` string in nginx's config may hold, so it is a file; a POST to a file is 405 in nginx, and
    `error_page 405 =200` serves it."""
    root = procs.workdir / f"{name}-files"
    root.mkdir()
    (root / "embeddings.json").write_text(embeddings_json())
    for path in (procs.workdir, root, root / "embeddings.json"):  # nginx's workers run as nobody when we are root
        path.chmod(path.stat().st_mode | 0o005)
    block = f"""    server {{
        listen {HOST}:{port} backlog=4096;
        default_type application/json;
        location ~ /chat/completions$ {{ return 200 '{CHAT_JSON}'; }}
        location = /v1/messages {{ return 200 '{MESSAGES_JSON}'; }}
        location ~ /embeddings$ {{ error_page 405 =200 /embeddings.json; return 405; }}
        location = /embeddings.json {{ internal; root {root}; etag off; }}
        location / {{ return 200 '{RESPONSES_JSON}'; }}
    }}"""
    proc = start_nginx(procs, name, block, pinning)
    wait_ready(proc, port, "/healthz", 15)
    return proc


def start_nginx_proxy(procs: Processes, port: int, upstream_port: int, pinning: Pinning) -> Proc:
    """A near-limit reverse proxy: proxy_pass with a keep-alive upstream pool."""
    block = f"""    upstream bench_upstream {{
        server {HOST}:{upstream_port};
        keepalive 256;
        keepalive_requests 10000000;
    }}
    server {{
        listen {HOST}:{port} backlog=4096;
        location / {{
            proxy_pass http://bench_upstream;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}"""
    proc = start_nginx(procs, "nginx-proxy", block, pinning)
    wait_ready(proc, port, "/healthz", 15)
    return proc


def nginx_version() -> str:
    result = subprocess.run([NGINX, "-v"], capture_output=True, text=True, check=False)
    return (result.stderr or result.stdout).strip().removeprefix("nginx version: ")


# ----------------------------------------------------------------------------------------------------- wrk

WRK = shutil.which("wrk") or "/usr/bin/wrk"


@dataclass
class WrkResult:
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    non_2xx: int
    socket_errors: dict[str, int]

    @property
    def ok(self) -> bool:
        return self.requests > 0 and self.non_2xx == 0 and not any(self.socket_errors.values())

    def problems(self) -> str:
        out = []
        if self.requests == 0:
            out.append("no request completed")
        if self.non_2xx:
            out.append(f"{self.non_2xx} non-2xx/3xx responses")
        errors = {k: v for k, v in self.socket_errors.items() if v}
        if errors:
            out.append(f"socket errors {errors}")
        return "; ".join(out)


def run_wrk(
    pinning: Pinning, url: str, connections: int, duration: float, body: bytes = REQUEST_BODY,
    auth: str | None = None, timeout_s: float = 5.0,
) -> WrkResult:  # fmt: skip
    """wrk -t1 -c<connections> for `duration` seconds with bench/post.lua; bounded by a subprocess timeout."""
    env = {**os.environ, "BENCH_BODY": body.decode(), "BENCH_AUTH": auth or ""}
    seconds = max(1, round(duration))
    argv = pinning.client(
        [WRK, "-t1", f"-c{connections}", f"-d{seconds}s", f"--timeout={timeout_s:g}s", "-s", str(POST_LUA), url]
    )
    result = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=seconds + 30, check=False)
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if result.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({result.returncode}): {result.stderr.strip() or result.stdout[-400:]}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    duration_s = data["duration_us"] / 1e6
    return WrkResult(
        requests=data["requests"],
        duration_s=duration_s,
        rps=data["requests"] / duration_s if duration_s else 0.0,
        p50_ms=data["p50_us"] / 1000,
        p90_ms=data["p90_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        mean_ms=data["mean_us"] / 1000,
        max_ms=data["max_us"] / 1000,
        non_2xx=data["status"],
        socket_errors={k: data[k] for k in ("connect", "read", "write", "timeout")},
    )


def wrk_version() -> str:
    result = subprocess.run([WRK, "--version"], capture_output=True, text=True, check=False)
    return (result.stdout or result.stderr).splitlines()[0].split(" Copyright")[0].strip() if result else "?"


# ------------------------------------------------------------------------------------------------- streams


def _stream_request(port: int, path: str, auth: str | None, body: bytes = STREAM_BODY) -> bytes:
    head = [
        f"POST {path} HTTP/1.1", f"Host: {HOST}:{port}", "Content-Type: application/json",
        "Accept: text/event-stream", f"Content-Length: {len(body)}", "Connection: close",
    ]  # fmt: skip
    if auth:
        head.append(f"Authorization: {auth}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


@dataclass
class StreamTiming:
    status: int
    ttfb_ms: float
    total_ms: float
    body_bytes: int


async def time_stream(
    port: int, path: str, auth: str | None = None, timeout: float = 30.0, body: bytes = STREAM_BODY
) -> StreamTiming:
    """Connect, then time from sending the request to the first body byte and to the terminal chunk."""
    reader, writer = await asyncio.open_connection(HOST, port)
    try:
        request = _stream_request(port, path, auth, body)
        started = time.perf_counter()
        writer.write(request)
        buf = b""
        head_end = -1
        ttfb = None
        async with asyncio.timeout(timeout):
            while True:
                chunk = await reader.read(65536)
                if not chunk:
                    break
                buf += chunk
                if head_end < 0:
                    head_end = buf.find(b"\r\n\r\n")
                if ttfb is None and head_end >= 0 and len(buf) > head_end + 4:
                    ttfb = time.perf_counter() - started
                if head_end >= 0 and buf.endswith(b"\r\n0\r\n\r\n"):
                    break
        total = time.perf_counter() - started
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()
    status_parts = buf.split(b"\r\n", 1)[0].split()
    status = int(status_parts[1]) if len(status_parts) > 1 and status_parts[1].isdigit() else 0
    if ttfb is None:
        raise BenchError(f"stream on port {port} sent no body (status {status}, {len(buf)} bytes)")
    return StreamTiming(status, ttfb * 1000, total * 1000, max(0, len(buf) - head_end - 4))


class OpenStreams:
    """Holds `count` streaming requests open at once (each has received its first body byte), then closes them."""

    def __init__(self, port: int, path: str, count: int, auth: str | None = None, connect_parallelism: int = 100):
        self.port, self.path, self.count, self.auth = port, path, count, auth
        self.gate = asyncio.Semaphore(connect_parallelism)
        self.writers: list[asyncio.StreamWriter] = []
        self.failures: list[str] = []

    async def _open(self) -> None:
        try:
            async with self.gate:
                reader, writer = await asyncio.open_connection(HOST, self.port)
                self.writers.append(writer)
                writer.write(_stream_request(self.port, self.path, self.auth))
                buf = b""
                while True:
                    chunk = await reader.read(65536)
                    if not chunk:
                        raise BenchError(f"closed after {len(buf)} bytes: {buf[:60]!r}")
                    buf += chunk
                    end = buf.find(b"\r\n\r\n")
                    if end >= 0 and len(buf) > end + 4:
                        break
                if not buf.startswith(b"HTTP/1.1 200"):
                    status_line = buf.split(b"\r\n", 1)[0]
                    raise BenchError(f"status line {status_line!r}")
        except Exception as exc:
            self.failures.append(f"{type(exc).__name__}: {exc}")

    async def open(self, timeout: float) -> float:
        started = time.monotonic()
        tasks = [asyncio.create_task(self._open()) for _ in range(self.count)]
        _, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
            self.failures.append("timed out opening")
        await asyncio.gather(*pending, return_exceptions=True)
        return time.monotonic() - started

    @property
    def opened(self) -> int:
        return self.count - len(self.failures)

    async def close(self) -> None:
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()
        await asyncio.sleep(0)


# ----------------------------------------------------------------------------------------------------- RSS


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def process_tree(pid: int) -> list[int]:
    tree = _children()
    out, todo = [], [pid]
    while todo:
        current = todo.pop()
        out.append(current)
        todo.extend(tree.get(current, []))
    return out


def _sum_field(pid: int, filename: str, key: str) -> float:
    total_kb = 0
    for member in process_tree(pid):
        try:
            for line in Path(f"/proc/{member}/{filename}").read_text().splitlines():
                if line.startswith(key):
                    total_kb += int(line.split()[1])
                    break
        except OSError:
            continue
    return total_kb * 1024 / 1e6


CLOCK_TICKS = float(os.sysconf("SC_CLK_TCK"))


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its descendants (utime and stime in /proc/<pid>/stat)."""
    ticks = 0
    for member in process_tree(pid):
        try:
            fields = Path(f"/proc/{member}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / CLOCK_TICKS


def rss_mb(pid: int) -> float:
    """VmRSS summed over the process and all its descendants, in MB (10^6 bytes)."""
    return _sum_field(pid, "status", "VmRSS:")


def pss_mb(pid: int) -> float:
    """Proportional set size summed over the tree (shared pages split between sharers), in MB."""
    return _sum_field(pid, "smaps_rollup", "Pss:")


# -------------------------------------------------------------------------------------------------- stats


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


@dataclass
class Failures:
    items: list[str] = field(default_factory=list)

    def add(self, message: str) -> None:
        log("FAIL " + message)
        self.items.append(message)
