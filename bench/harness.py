"""What every benchmark script shares: processes that always get cleaned up, CPU pinning, wrk, the gateway code
to run (the work tree or a `git archive` snapshot) and CPU time and memory read from /proc.

Sockets, raw HTTP and waiting come from tests.helpers: every listening socket is bound here and handed over (or
the server binds port 0 and its port is read back), so no port is picked, released and raced for.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from tests.helpers import cpu_seconds as process_cpu_seconds
from tests.helpers import listening_ports, raw_exchange, wait_for

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
HOST = "127.0.0.1"
REQUEST_BODY = b'{"model":"gpt-4.1","input":"hi"}'


class BenchError(Exception):
    """A target failed to start or answered wrongly."""


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class Failures(list[str]):
    """What went wrong in a run: logged as it happens, and the run's exit status at the end."""

    def add(self, message: str) -> None:
        log("FAIL " + message)
        self.append(message)


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def raise_nofile(wanted: int = 8192) -> int:
    """This process's (and so every server's it starts) open-file limit, raised to `wanted` where allowed."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < wanted:
        with contextlib.suppress(ValueError, OSError):  # past the hard limit only with the privilege to raise it
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, wanted))
            hard = wanted
    if soft < wanted:
        resource.setrlimit(
            resource.RLIMIT_NOFILE, (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard), hard)
        )
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

    def swapped(self) -> Pinning:
        """Servers on the client's core: an upstream that stands for the remote API, beside the load."""
        return Pinning(self.server_cpu, self.client_cpu)

    def pin_self(self) -> None:
        if self.client_cpu is not None:
            os.sched_setaffinity(0, {self.client_cpu})


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path
    port: int = 0

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    def wait_port(self, timeout: float = 40) -> int:
        """The port the server bound when told port 0, read back from /proc once it listens."""

        def bound() -> bool:
            if not self.alive():
                raise BenchError(f"{self.name} exited with {self.popen.returncode}:\n{self.log_tail()}")
            self.port = min((p for pid in process_tree(self.pid) for p in _ports(pid)), default=0)
            return self.port > 0

        _waiting(bound, timeout, f"{self.name} listening", self)
        return self.port


def _ports(pid: int) -> set[int]:
    with contextlib.suppress(OSError):  # a process that exits while we look
        return listening_ports(pid)
    return set()


def _waiting(condition: Callable[[], object], timeout: float, what: str, proc: Proc) -> None:
    try:
        wait_for(condition, timeout, what)
    except AssertionError as exc:
        raise BenchError(f"{exc}:\n{proc.log_tail()}") from None


class Processes:
    """Starts servers in their own process groups and stops every one of them (and only them) on exit."""

    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.procs: list[Proc] = []
        self.cleanups: list[Callable[[], None]] = []

    def start(self, name: str, argv: Sequence[str], env: dict[str, str] | None = None, fds: Sequence[int] = ()) -> Proc:
        log_path = self.workdir / f"{name}.log"
        run_dir = self.workdir / f"{name}.cwd"  # an empty directory: no stray .env is read
        run_dir.mkdir(parents=True, exist_ok=True)
        with open(log_path, "wb") as out:
            popen = subprocess.Popen(
                list(argv),
                cwd=run_dir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                pass_fds=tuple(fds),
            )
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
        with contextlib.suppress(ProcessLookupError, PermissionError):  # workers of a server that died first
            os.killpg(proc.pid, signal.SIGKILL)
        if proc in self.procs:
            self.procs.remove(proc)

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs)):
            try:
                self.stop(proc)
            except Exception as exc:  # keep cleaning up the others
                log(f"could not stop {proc.name} (pid {proc.pid}): {exc}")
        for cleanup in self.cleanups:
            cleanup()


@contextlib.contextmanager
def workspace(keep: bool = False) -> Iterator[tuple[Path, Processes]]:
    """A temp dir and a process registry; everything is stopped and removed on exit, Ctrl-C and SIGTERM included."""
    workdir = Path(tempfile.mkdtemp(prefix="acedata-bench-"))
    procs = Processes(workdir)

    def on_term(signum: int, _frame: FrameType | None) -> None:
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


def http_request(
    port: int, method: str, path: str, body: bytes = b"", headers: dict[str, str] | None = None, timeout: float = 5
) -> tuple[int, bytes]:
    """One HTTP/1.1 exchange with Connection: close, over a raw loopback socket."""
    head = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}", "Connection: close"]
    head += [f"{name}: {value}" for name, value in (headers or {}).items()]
    head += [f"Content-Length: {len(body)}"] if method != "GET" else []
    response = raw_exchange(port, ("\r\n".join(head) + "\r\n\r\n").encode() + body, timeout=timeout)
    return response.status, response.body


def wait_ready(proc: Proc, path: str, timeout: float, headers: dict[str, str] | None = None) -> None:
    """Poll GET `path` until it answers 200; raise (with the log's tail) if the process dies or time runs out."""

    def ready() -> bool:
        if not proc.alive():
            raise BenchError(f"{proc.name} exited with {proc.popen.returncode} while starting:\n{proc.log_tail()}")
        with contextlib.suppress(OSError, ValueError, IndexError):
            return http_request(proc.port, "GET", path, headers=headers, timeout=2)[0] == 200
        return False

    _waiting(ready, timeout, f"{proc.name} answering on port {proc.port}", proc)


# ---------------------------------------------------------------------------------------- the gateway's code


def git(*argv: str) -> str:
    """A read-only git command on the repository (no optional locks), its output or "" when it fails."""
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    result = subprocess.run(["git", "-C", str(REPO), *argv], capture_output=True, text=True, env=env, check=False)
    return result.stdout.strip() if result.returncode == 0 else ""


def git_describe(rev: str | None = None) -> dict[str, str | bool | None]:
    """The commit the gateway code comes from, and whether app/ has uncommitted changes when the work tree runs."""
    info: dict[str, str | bool | None] = {"commit": git("rev-parse", "--short=12", rev or "HEAD") or None}
    if rev is None:
        info["app_dirty"] = bool(git("status", "--porcelain", "--", "app"))
    return info


def snapshot_source(rev: str, workdir: Path) -> Path:
    """`git archive REV app` unpacked into workdir: a fixed version of the gateway to run. Read-only for the repo."""
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


# ------------------------------------------------------------------------------------------------------ wrk

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
        return not self.problems()

    def problems(self) -> str:
        errors = {k: v for k, v in self.socket_errors.items() if v}
        out = ["no request completed"] if self.requests == 0 else []
        out += [f"{self.non_2xx} non-2xx/3xx responses"] if self.non_2xx else []
        return "; ".join(out + ([f"socket errors {errors}"] if errors else []))


def run_wrk(
    pinning: Pinning,
    url: str,
    connections: int,
    duration: float,
    body: bytes = REQUEST_BODY,
    auth: str | None = None,
    timeout_s: float = 5.0,
) -> WrkResult:
    """wrk -t1 -c<connections> for `duration` seconds with bench/post.lua; bounded by a subprocess timeout."""
    env = {**os.environ, "BENCH_BODY": body.decode(), "BENCH_AUTH": auth or ""}
    seconds = max(1, round(duration))
    script = str(BENCH_DIR / "post.lua")
    argv = [WRK, "-t1", f"-c{connections}", f"-d{seconds}s", f"--timeout={timeout_s:g}s", "-s", script, url]
    result = subprocess.run(pinning.client(argv), env=env, capture_output=True, text=True, timeout=seconds + 30)
    line = next((ln for ln in result.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if result.returncode != 0 or line is None:
        raise BenchError(f"wrk failed ({result.returncode}): {result.stderr.strip() or result.stdout[-400:]}")
    data = json.loads(line.removeprefix("BENCH_JSON "))
    duration_s = data["duration_us"] / 1e6
    ms = {key: data[f"{key}_us"] / 1000 for key in ("p50", "p90", "p99", "mean", "max")}
    return WrkResult(
        data["requests"],
        duration_s,
        data["requests"] / duration_s if duration_s else 0.0,
        ms["p50"],
        ms["p90"],
        ms["p99"],
        ms["mean"],
        ms["max"],
        data["status"],
        {k: data[k] for k in ("connect", "read", "write", "timeout")},
    )


def version(argv: Sequence[str]) -> str:
    result = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    return ((result.stdout or result.stderr).splitlines() or ["?"])[0].split(" Copyright")[0].strip()


# ----------------------------------------------------------------------------------------------------- /proc


def process_tree(pid: int) -> list[int]:
    """A process and its descendants."""
    children: dict[int, list[int]] = {}
    for entry in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError):
            ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        out.append(todo.pop())
        todo.extend(children.get(out[-1], []))
    return out


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process and its descendants (tests.helpers reads one process's)."""
    total = 0.0
    for member in process_tree(pid):
        with contextlib.suppress(OSError):  # a member that exited meanwhile
            total += process_cpu_seconds(member)
    return total


def _sum_kb(pid: int, filename: str, key: str) -> float:
    total_kb = 0
    for member in process_tree(pid):
        with contextlib.suppress(OSError, StopIteration):
            lines = Path(f"/proc/{member}/{filename}").read_text().splitlines()
            total_kb += int(next(line for line in lines if line.startswith(key)).split()[1])
    return total_kb * 1024 / 1e6


def rss_mb(pid: int) -> float:
    """VmRSS summed over the process and all its descendants, in MB (10^6 bytes)."""
    return _sum_kb(pid, "status", "VmRSS:")


def pss_mb(pid: int) -> float:
    """Proportional set size summed over the tree (shared pages split between sharers), in MB."""
    return _sum_kb(pid, "smaps_rollup", "Pss:")
