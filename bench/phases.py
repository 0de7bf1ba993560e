"""bench/run.py's phases after the JSON load: streaming TTFB through each route, memory with N open streams, the
usage ledger read back after the load, and the gateway unpinned with more workers (--scaling)."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench import servers
from bench.harness import (
    HOST,
    REQUEST_BODY,
    BenchError,
    Failures,
    Pinning,
    Proc,
    Processes,
    cpu_seconds,
    http_request,
    log,
    median,
    pss_mb,
    rss_mb,
    run_wrk,
)
from bench.report import NO_LEDGER, REDIS_LEDGER, SCALING_CONCURRENCY

STREAM_DELTAS, STREAM_DELAY = 100, 0.01  # the streaming-latency upstream: ~1.1 s per answer
SMOKE_STREAM_DELTAS = 25  # ~0.3 s: the smoke run times 16 streams, and must stay within its minute
HOLD_DELAY = 2.0  # the memory upstream: a chunk every 2 s, so 1000 streams stay open


def _request(port: int, path: str, body: bytes, auth: str | None) -> bytes:
    head = f"POST {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\nContent-Type: application/json\r\n"
    head += f"Accept: text/event-stream\r\nContent-Length: {len(body)}\r\nConnection: close\r\n"
    return (head + (f"Authorization: {auth}\r\n" if auth else "") + "\r\n").encode() + body


async def _first_body_byte(reader: asyncio.StreamReader, buf: bytearray) -> int:
    """Reads into `buf` until a body byte is in; the head's end. Raises when the connection closes first."""
    while (end := buf.find(b"\r\n\r\n")) < 0 or len(buf) <= end + 4:
        chunk = await reader.read(65536)
        if not chunk:
            raise BenchError(f"closed after {len(buf)} bytes: {bytes(buf[:60])!r}")
        buf += chunk
    return end


@dataclass
class StreamTiming:
    status: int
    ttfb_ms: float
    total_ms: float
    body_bytes: int


async def time_stream(port: int, path: str, body: bytes, auth: str | None = None) -> StreamTiming:
    """From writing the request on an open connection to the first body byte and to the terminal chunk."""
    reader, writer = await asyncio.open_connection(HOST, port)
    buf = bytearray()
    try:
        async with asyncio.timeout(30):
            started = time.perf_counter()
            writer.write(_request(port, path, body, auth))
            end = await _first_body_byte(reader, buf)
            ttfb = time.perf_counter() - started
            while not buf.endswith(b"\r\n0\r\n\r\n") and (chunk := await reader.read(65536)):
                buf += chunk
            total = time.perf_counter() - started
    finally:
        writer.close()
    status = buf.split(b"\r\n", 1)[0].split()[1]
    return StreamTiming(int(status) if status.isdigit() else 0, ttfb * 1000, total * 1000, len(buf) - end - 4)


class OpenStreams:
    """Holds `count` streams open at once (each has received its first body byte), then drops them."""

    def __init__(self, port: int, count: int):
        self.port, self.count = port, count
        self.gate = asyncio.Semaphore(100)
        self.writers: list[asyncio.StreamWriter] = []
        self.failures: list[str] = []

    async def _open(self) -> None:
        try:
            async with self.gate:
                reader, writer = await asyncio.open_connection(HOST, self.port)
                self.writers.append(writer)
                writer.write(_request(self.port, servers.RESPONSES_PATH, servers.STREAM_BODY, None))
                buf = bytearray()
                await _first_body_byte(reader, buf)
                if not buf.startswith(b"HTTP/1.1 200"):
                    status_line = bytes(buf[: buf.find(b"\r")])
                    raise BenchError(f"status line {status_line!r}")
        except (OSError, BenchError) as exc:
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

    def close(self) -> None:
        for writer in self.writers:
            writer.transport.abort()
        self.writers.clear()


StreamTarget = tuple[str, int, str | None, str, bytes]  # name, port, auth, path, body


async def _stream_runs(targets: list[StreamTarget], runs: int) -> dict[str, list[dict[str, float]]]:
    for _, port, auth, path, body in targets:  # warm-up: one stream each (opens the gateway's upstream connection)
        await time_stream(port, path, body, auth)
    out: dict[str, list[dict[str, float]]] = {target[0]: [] for target in targets}
    for _ in range(runs):
        for name, port, auth, path, body in targets:
            out[name].append(asdict(await time_stream(port, path, body, auth)))
    return out


def stream_phase(args: argparse.Namespace, procs: Processes, pinning: Pinning, failures: Failures) -> dict[str, Any]:
    deltas = SMOKE_STREAM_DELTAS if args.smoke else STREAM_DELTAS
    fake = servers.start_fake_upstream(procs, "fake-upstream-stream", deltas, STREAM_DELAY, pinning)
    targets: list[StreamTarget] = [
        ("direct", fake.port, f"Bearer {servers.UPSTREAM_TOKEN}", servers.RESPONSES_PATH, servers.STREAM_BODY)
    ]
    started = [fake]
    for workers in args.workers:
        try:
            proc = servers.start_gateway(procs, f"gateway-{workers}w-stream", fake.port, workers, pinning, args.src)
        except BenchError as exc:
            failures.add(f"gateway-{workers}w (streaming) did not start: {exc}")
            continue
        started.append(proc)
        targets.append((f"gateway-{workers}w", proc.port, None, servers.RESPONSES_PATH, servers.STREAM_BODY))
        for route, path, body in (
            ("chat", servers.CHAT_PATH, servers.CHAT_STREAM_BODY),
            ("messages", servers.MESSAGES_PATH, servers.MESSAGES_STREAM_BODY),
        ):
            if workers == 1 and servers.source_has(args.src, f'"{path}"'):
                targets.append((f"gateway-1w-{route}", proc.port, None, path, body))
    runs: dict[str, list[dict[str, float]]] = {}
    try:
        runs = asyncio.run(_stream_runs(targets, args.stream_runs))
    except (BenchError, OSError, TimeoutError) as exc:
        failures.add(f"streaming runs failed: {exc}")
    finally:
        for proc in reversed(started):
            procs.stop(proc)
    summary: dict[str, dict[str, float]] = {}
    for name, timings in runs.items():
        if bad := [t for t in timings if t["status"] != 200]:
            failures.add(f"streams through {name}: {len(bad)} answered HTTP {bad[0]['status']}")
        summary[name] = {key: median([t[key] for t in timings]) for key in ("ttfb_ms", "total_ms", "body_bytes")}
        summary[name]["runs"] = len(timings)
        if name != "direct" and "direct" in summary:
            for key in ("ttfb_ms", "total_ms"):
                summary[name]["added_" + key] = summary[name][key] - summary["direct"][key]
    return {"deltas": deltas, "delay_s": STREAM_DELAY, "summary": summary, "runs": runs}


async def _memory_under_streams(pid: int, port: int, count: int) -> dict[str, Any]:
    # warm-up: plain JSON answers and a few streams that the client drops after the first bytes
    for _ in range(200):
        status, _ = await asyncio.to_thread(http_request, port, "POST", servers.RESPONSES_PATH, REQUEST_BODY)
        if status != 200:
            raise BenchError(f"warm-up request answered HTTP {status}")
    warm = OpenStreams(port, 10)
    await warm.open(30)
    warm.close()
    if warm.failures:
        raise BenchError(f"warm-up streams failed: {warm.failures[0]}")
    await asyncio.sleep(1.5)  # a measurement interval, not a wait for an event: idle memory 1.5 s after the load
    idle, idle_pss = rss_mb(pid), pss_mb(pid)
    streams = OpenStreams(port, count)
    open_s = await streams.open(timeout=90)
    samples = []
    for _ in range(5):
        samples.append((rss_mb(pid), pss_mb(pid)))
        await asyncio.sleep(0.2)
    streams.close()
    await asyncio.sleep(2.0)  # the documented "2 s after the client dropped them"
    return {
        "idle_mb": round(idle, 1),
        "streams_mb": round(max(s[0] for s in samples), 1),
        "after_close_mb": round(rss_mb(pid), 1),
        "idle_pss_mb": round(idle_pss, 1),
        "streams_pss_mb": round(max(s[1] for s in samples), 1),
        "streams_requested": count,
        "streams_open": count - len(streams.failures),
        "open_seconds": round(open_s, 2),
        "stream_failures": streams.failures[:5],
    }


def memory_phase(args: argparse.Namespace, procs: Processes, pinning: Pinning, failures: Failures) -> dict[str, Any]:
    fake = servers.start_fake_upstream(procs, "fake-upstream-hold", STREAM_DELTAS, HOLD_DELAY, pinning)
    out: dict[str, Any] = {}
    for workers in args.workers:
        name = f"gateway-{workers}w"
        try:
            proc = servers.start_gateway(procs, f"{name}-rss", fake.port, workers, pinning, args.src)
            fresh = rss_mb(proc.pid)
            row = asyncio.run(_memory_under_streams(proc.pid, proc.port, args.streams))
        except (BenchError, OSError, TimeoutError) as exc:
            failures.add(f"{name} memory run failed: {exc}")
            continue
        out[name] = {**row, "fresh_mb": round(fresh, 1), "processes": workers + (1 if workers > 1 else 0)}
        log(f"RSS {name}: idle {row['idle_mb']} MB, {row['streams_open']} streams {row['streams_mb']} MB")
        if row["streams_open"] < args.streams:
            failures.add(
                f"{name}: only {row['streams_open']}/{args.streams} streams opened: {row['stream_failures'][:1]}"
            )
        if not proc.alive():
            failures.add(f"{name} died during the memory run:\n{proc.log_tail()}")
        procs.stop(proc)
    procs.stop(fake)
    return out


def recorded(workdir: Path, name: str, redis_url: str | None) -> tuple[str, int]:
    """Requests a stopped gateway's ledger holds, in Redis or in its SQLite file, read by the work tree's own
    stores (a store row: hour, key, route, model, requests, input and output tokens)."""
    from app.ledger.store import RedisStore, SqliteStore, Store

    store: Store = (
        RedisStore(redis_url)
        if name == REDIS_LEDGER and redis_url
        else SqliteStore(workdir / f"data-{name}" / "ledger.sqlite3")
    )
    try:
        return ("redis" if isinstance(store, RedisStore) else "sqlite"), sum(row[4] for row in store.rows(None, 0))
    finally:
        store.close()


def verify_ledgers(
    workdir: Path,
    points: list[dict[str, Any]],
    groups: dict[str, list[str]],
    redis_url: str | None,
    failures: Failures,
) -> dict[str, dict[str, Any]]:
    """Each stopped gateway's ledger (`groups`: process name -> the targets it served), read back: the ledger rows
    hold at least the requests wrk counted, the no-op none, so no row measures a ledger that records nothing."""
    out: dict[str, dict[str, Any]] = {}
    for name in ("gateway-1w", NO_LEDGER, REDIS_LEDGER):
        if name in groups:
            measured = sum(p["requests"] for p in points if p["target"] in groups[name])
            storage, count = recorded(workdir, name, redis_url)
            ok = count == 0 if name == NO_LEDGER else count >= measured > 0
            out[name] = {"storage": storage, "recorded": count, "measured": measured, "ok": ok}
            log(f"ledger of {name}: {count} requests recorded ({storage}), {measured} measured by wrk")
            if not ok:
                failures.add(
                    f"{name}'s ledger holds {count} requests, expected "
                    + ("none" if name == NO_LEDGER else f"at least the {measured} wrk counted")
                )
    return out


def summarize(points: list[dict[str, Any]], direct: str = "direct") -> dict[str, dict[str, dict[str, float]]]:
    """Per target and concurrency: medians over rounds, and latency added over `direct` at that concurrency."""
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for point in points:
        summary.setdefault(point["target"], {}).setdefault(str(point["concurrency"]), {})
    for name, by_conc in summary.items():
        for conc in by_conc:
            pts = [p for p in points if p["target"] == name and str(p["concurrency"]) == conc]
            by_conc[conc] = {
                key: median([p[key] for p in pts]) for key in ("rps", "p50_ms", "p99_ms", "cpu_us_per_req")
            }
            by_conc[conc]["rounds"] = len(pts)
    for by_conc in summary.values():
        for conc, row in by_conc.items():
            if base := summary.get(direct, {}).get(conc):
                row["added_p50_ms"], row["added_p99_ms"] = (
                    row["p50_ms"] - base["p50_ms"],
                    row["p99_ms"] - base["p99_ms"],
                )
    return summary


@dataclass
class Target:
    """What wrk loads: a server's route, with the body and Authorization it sends."""

    name: str  # direct, nginx, gateway-1w, gateway-2w, litellm ...
    label: str
    proc: Proc
    path: str = servers.RESPONSES_PATH
    body: bytes = REQUEST_BODY
    auth: str | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.proc.port}{self.path}"


def measure(pinning: Pinning, target: Target, conc: int, duration: float) -> tuple[dict[str, Any], str]:
    """One wrk point, with the target's CPU time (its process tree) per request answered; and its problems."""
    before = cpu_seconds(target.proc.pid)
    result = run_wrk(pinning, target.url, conc, duration, body=target.body, auth=target.auth)
    cpu_us = (cpu_seconds(target.proc.pid) - before) * 1e6 / max(1, result.requests)
    log(
        f"c={conc:<3} {target.name:<22} {result.rps:>9.0f} rps  p50 {result.p50_ms:7.3f} ms  "
        f"p99 {result.p99_ms:7.3f} ms  CPU {cpu_us:7.1f} µs/req"
    )
    return {"target": target.name, "concurrency": conc, **asdict(result), "cpu_us_per_req": cpu_us}, result.problems()


def interleaved(
    pinning: Pinning, targets: list[Target], warm: list[Target], concurrency: Sequence[int], rounds: int,
    duration: float, failures: Failures,
) -> list[dict[str, Any]]:  # fmt: skip
    """Round 0 warms `warm` up (1 s at c=16); then every target at each concurrency in turn, round after round
    (A, B, C, then A, B, C again), so a drift of the machine's load touches them all alike."""
    points = []
    for round_no in range(rounds + 1):
        for conc in concurrency if round_no else [16]:
            for target in targets if round_no else warm:
                try:
                    point, problems = measure(pinning, target, conc, duration if round_no else 1)
                except BenchError as exc:
                    failures.add(f"{target.label} c={conc} round {round_no}: {exc}")
                    continue
                if round_no and problems:
                    failures.add(f"{target.label} c={conc} round {round_no}: {problems}")
                points += [{**point, "round": round_no}] if round_no else []
    return points


def scaling_phase(args: argparse.Namespace, procs: Processes, pinning: Pinning, failures: Failures) -> dict[str, Any]:
    """The gateway unpinned with each of --scaling-workers; wrk and the upstream (it stands for the remote API,
    which costs the gateway's machine nothing) share CPU 0, so the rest of the machine is the gateway's."""
    loadavg = Path("/proc/loadavg").read_text().split()[:3]  # this phase runs minutes after the run began
    up = servers.start_nginx_upstream(procs, Pinning(pinning.client_cpu, pinning.client_cpu), "nginx-upstream-scaling")
    targets = [Target("direct", "direct", up)]
    for workers in args.scaling_workers:
        name = f"gateway-{workers}w-unpinned"
        try:
            proc = servers.start_gateway(procs, name, up.port, workers, Pinning(pinning.client_cpu, None), args.src)
            targets.append(Target(name, f"{name} (scaling)", proc))
        except BenchError as exc:
            failures.add(f"{name} did not start: {exc}")
    points = interleaved(pinning, targets, targets, SCALING_CONCURRENCY, args.rounds, args.duration, failures)
    summary = summarize(points)
    for by_conc in summary.values():
        for row in by_conc.values():
            row["cores"] = row["rps"] * row["cpu_us_per_req"] / 1e6  # the gateway's CPU-seconds per second
    layout = (
        f"wrk and the nginx upstream on CPU {pinning.client_cpu}, the gateway unpinned"
        if pinning.client_cpu is not None
        else "no CPU pinning"
    )
    return {
        "layout": layout,
        "loadavg_at_start": loadavg,
        "workers": args.scaling_workers,
        "points": points,
        "summary": summary,
    }
