"""Stream capacity: how many concurrent LLM-shaped streams one gateway worker holds, against nginx proxy_pass
(proxy_buffering off) in the same run, and what overload does to it.

    .venv/bin/python bench/streams.py               # 100, 1000, 5000 streams; writes bench/results/streams.json
    .venv/bin/python bench/streams.py --overload    # ... then JSON c=512/2048 and 10,000 streams, without and
                                                    # with PROXY_MAX_INFLIGHT
    .venv/bin/python bench/streams.py --rev HEAD~3  # also a gateway from an older commit, in the same rounds

The upstream is nginx serving a prepared SSE body (200 events of 120 bytes) paced with `limit_rate` at ~30 events
a second. The load generator, bench/streamload.c, is built with the machine's gcc at run time: one epoll loop
holding every stream. Both run on CPU 0; the server under test alone on CPU 1. bench/README.md has the figures.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository: `bench` and `tests` import

import argparse
import json
import os
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from bench import report, servers
from bench.harness import (
    BENCH_DIR,
    HOST,
    REPO,
    BenchError,
    Failures,
    Pinning,
    Proc,
    Processes,
    cpu_seconds,
    git_describe,
    log,
    median,
    raise_nofile,
    rss_mb,
    run_wrk,
    snapshot_source,
    version,
    workspace,
)
from tests.helpers import wait_for

EVENT_BYTES, EVENTS, EVENTS_PER_S = 120, 200, 30
CONNECTS_PER_S = 2000  # how fast the load generator opens streams (all 5,000 within the first 2.5 s)
SERVER_SETTINGS = {"PROXY_MAX_CONNECTIONS": "20000"}  # the default pool (1000) would make stream 1001 wait
OVERLOAD_JSON, OVERLOAD_STREAMS = (512, 2048), 10_000  # wrk for 5 s, timeout 5 s; then that many streams


def sse_body() -> bytes:
    """200 Responses-API events of exactly 120 bytes (the last, response.completed with usage, a little longer)."""

    def event(kind: str, payload: dict[str, Any]) -> bytes:
        return f"event: {kind}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()

    def padded(kind: str, number: int, key: str) -> bytes:
        base = {"type": kind, "sequence_number": number, key: ""}
        return event(kind, {**base, key: "x" * (EVENT_BYTES - len(event(kind, base)))})

    events = [padded("response.created", 0, "id")]
    events += [padded("response.output_text.delta", n, "delta") for n in range(1, EVENTS - 1)]
    usage = {"input_tokens": 1, "output_tokens": EVENTS - 2, "total_tokens": EVENTS - 1}
    events.append(event("response.completed", {"type": "response.completed", "response": {"usage": usage}}))
    return b"".join(events)


def start_sse_upstream(procs: Processes, pinning: Pinning) -> Proc:
    """nginx answering any POST with the prepared body, one 120-byte write every 1/30 s, on the load's core. POST to
    a static file is 405 in nginx; `error_page 405 =200` serves the file instead (an internal redirect as GET)."""
    root = procs.workdir / "sse"
    root.mkdir()
    (root / "stream.sse").write_bytes(sse_body())
    servers.readable_by_nginx(procs.workdir, root, root / "stream.sse")
    # limit_rate_after: the head and the first event leave at once, as a model's first token would
    block = f"""    server {{
        {servers.LISTEN};
        location = /healthz {{ return 200 'ok'; }}
        location / {{ error_page 405 =200 /stream.sse; return 405; }}
        location = /stream.sse {{
            internal; root {root}; default_type text/event-stream;
            limit_rate {EVENT_BYTES * EVENTS_PER_S}; limit_rate_after 400; sendfile_max_chunk {EVENT_BYTES};
        }}
    }}"""
    return servers.start_nginx(procs, "sse-upstream", block, pinning.swapped(), 32768)


class PeakRss(threading.Thread):
    """Samples a process tree's RSS every 0.2 s until stopped; keeps the highest."""

    def __init__(self, pid: int):
        super().__init__(daemon=True)
        self.pid, self.peak, self.done = pid, 0.0, threading.Event()

    def run(self) -> None:
        while not self.done.wait(0.2):
            self.peak = max(self.peak, rss_mb(self.pid))

    def stop(self) -> float:
        self.done.set()
        self.join()
        return max(self.peak, rss_mb(self.pid))


def settle(pid: int) -> None:
    """Wait until a server has stopped spending CPU: what a finished run left it to do is done."""
    last = cpu_seconds(pid)

    def idle() -> bool:
        nonlocal last
        time.sleep(0.5)  # the interval CPU time is compared over, not a guess at when something happens
        before, last = last, cpu_seconds(pid)
        return last - before < 0.02

    try:
        wait_for(idle, 60, "the server idle")
    except AssertionError:
        log(f"process {pid} still busy after 60 s; measuring anyway")


class Load:
    """bench/streamload.c, built here, and the request it sends."""

    def __init__(self, workdir: Path, pinning: Pinning):
        self.binary, self.request, self.pinning = workdir / "streamload", workdir / "stream-request.bin", pinning
        argv = ["gcc", "-O2", "-Wall", "-o", str(self.binary), str(BENCH_DIR / "streamload.c")]
        built = subprocess.run(argv, capture_output=True, text=True, check=False)
        if built.returncode != 0:
            raise BenchError(f"could not build bench/streamload.c (needs gcc): {built.stderr.strip()}")
        head = f"POST {servers.RESPONSES_PATH} HTTP/1.1\r\nhost: {HOST}\r\ncontent-type: application/json\r\n"
        body = servers.STREAM_BODY
        self.request.write_bytes(f"{head}connection: close\r\ncontent-length: {len(body)}\r\n\r\n".encode() + body)

    def run(self, port: int, count: int, proc: Proc | None) -> dict[str, Any]:
        """`count` streams against `port`; with `proc` (a server under test), its CPU time and peak RSS."""
        if proc:
            settle(proc.pid)
        idle, cpu_before = (rss_mb(proc.pid), cpu_seconds(proc.pid)) if proc else (0.0, 0.0)
        sampler = PeakRss(proc.pid) if proc else None
        if sampler:
            sampler.start()
        timeout = 30 + count * EVENTS / 20_000  # past this the streams still open count as errors ("timeout")
        argv = [
            str(self.binary),
            HOST,
            str(port),
            str(self.request),
            str(count),
            str(EVENTS),
            f"{timeout:g}",
            str(CONNECTS_PER_S),
        ]
        result = subprocess.run(self.pinning.client(argv), capture_output=True, text=True, timeout=timeout + 30)
        peak = sampler.stop() if sampler else 0.0
        if result.returncode != 0 or not result.stdout.strip():
            raise BenchError(f"streamload failed ({result.returncode}): {result.stderr.strip()[-400:]}")
        point: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
        if proc:
            settle(proc.pid)
            cpu = cpu_seconds(proc.pid) - cpu_before
            point.update(cpu_s=round(cpu, 3), cpu_us_per_event=round(cpu * 1e6 / max(1, point["events"]), 2))
            point.update(rss_idle_mb=round(idle, 1), rss_peak_mb=round(peak, 1))
            point["rss_kb_per_stream"] = round((peak - idle) * 1000 / max(1, point["peak_open"]), 1)
        return point


Target = tuple[str, str, int, Proc | None]  # name, label, port, the server under test (None: the upstream itself)


def capacity(args: argparse.Namespace, targets: list[Target], load: Load, failures: Failures) -> list[dict[str, Any]]:
    points = []
    for round_no in range(1, args.rounds + 1):
        for count in args.streams:
            # direct first, the others' order rotating round by round, so a drift of the machine's load does not
            # always favour the same one
            shift = (round_no - 1) % max(1, len(targets) - 1)
            for name, label, port, proc in [targets[0], *targets[1 + shift :], *targets[1 : 1 + shift]]:
                try:
                    point = load.run(port, count, proc)
                except (BenchError, subprocess.TimeoutExpired) as exc:
                    failures.add(f"{label}, {count} streams, round {round_no}: {exc}")
                    continue
                if (errors := sum(point["errors"].values())) and args.smoke:
                    failures.add(f"{label}, {count} streams: {point['errors']}")
                points.append({"target": name, "round": round_no, **point})
                log(
                    f"round {round_no} {count:>5} streams {name:<11} done {point['completed']:>5} errors {errors:>4}  "
                    f"gap p99 {point['gap_us']['p99'] / 1000:8.2f} ms  "
                    f"cpu {point.get('cpu_us_per_event', 0):6.1f} us/event"
                )
    return points


def summarize(points: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per target and stream count: medians over rounds, and `added` figures against direct at that count."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    figures: dict[str, Callable[[dict[str, Any]], float]] = {
        "completed": lambda p: p["completed"],
        "errors": lambda p: sum(p["errors"].values()),
        "refused": lambda p: p["errors"]["refused"],
        "peak_open": lambda p: p["peak_open"],
        "elapsed_s": lambda p: p["elapsed_s"],
        "events_per_s": lambda p: p["events"] / p["elapsed_s"],
        "gap_p50_ms": lambda p: p["gap_us"]["p50"] / 1000,
        "gap_p99_ms": lambda p: p["gap_us"]["p99"] / 1000,
        "ttfb_p99_ms": lambda p: p["ttfb_us"]["p99"] / 1000,
    }
    for point in points:
        mine = [p for p in points if p["target"] == point["target"] and p["streams"] == point["streams"]]
        row = {key: median([figure(p) for p in mine]) for key, figure in figures.items()}
        for key in ("cpu_us_per_event", "rss_peak_mb", "rss_idle_mb", "rss_kb_per_stream"):
            row.update({key: median([p[key] for p in mine])} if key in point else {})
        out.setdefault(point["target"], {})[str(point["streams"])] = row
    for rows in out.values():
        for count, row in rows.items():
            if base := out.get("direct", {}).get(count):
                row.update(
                    {f"added_{k}": round(row[k] - base[k], 3) for k in ("gap_p50_ms", "gap_p99_ms", "ttfb_p99_ms")}
                )
    return out


def overload(
    args: argparse.Namespace, procs: Processes, pinning: Pinning, sse: Proc, load: Load, failures: Failures
) -> list[dict[str, Any]]:
    """One worker far past what it can serve, without and with PROXY_MAX_INFLIGHT: JSON at wrk concurrency 512 and
    2,048 (nginx `return 200` upstream), then 10,000 concurrent streams. What completed, what was refused, RSS."""
    up = servers.start_nginx_upstream(procs, pinning.swapped())
    out = []
    for limit in (None, args.limit):
        settings = {**SERVER_SETTINGS, **({"PROXY_MAX_INFLIGHT": str(limit)} if limit else {})}
        name = "gateway-limited" if limit else "gateway-unlimited"
        try:
            proc = servers.start_gateway(procs, name + "-json", up.port, 1, pinning, settings=settings)
            points = []
            for conc in OVERLOAD_JSON:
                sampler = PeakRss(proc.pid)
                sampler.start()
                result = run_wrk(pinning, f"http://{HOST}:{proc.port}{servers.RESPONSES_PATH}", conc, 5, timeout_s=5.0)
                points.append({"concurrency": conc, **asdict(result), "rss_peak_mb": round(sampler.stop(), 1)})
                log(
                    f"overload {name} c={conc}: {result.rps:.0f} rps, non-2xx {result.non_2xx}, "
                    f"socket errors {result.socket_errors}"
                )
            procs.stop(proc)
            proc = servers.start_gateway(procs, name + "-streams", sse.port, 1, pinning, settings=settings)
            streams = load.run(proc.port, OVERLOAD_STREAMS, proc)
            log(
                f"overload {name} {OVERLOAD_STREAMS} streams: completed {streams['completed']}, "
                f"errors {streams['errors']}"
            )
            procs.stop(proc)
            out.append({"limit": limit, "json": points, "streams": streams})
        except (BenchError, subprocess.TimeoutExpired) as exc:
            failures.add(f"overload, PROXY_MAX_INFLIGHT={limit}: {exc}")
    return out


def start_targets(
    args: argparse.Namespace, procs: Processes, pinning: Pinning, failures: Failures
) -> tuple[Proc, list[Target]]:
    """The SSE upstream, nginx proxy_pass and one gateway worker (plus one from --rev), all pointed at it."""
    up = start_sse_upstream(procs, pinning)
    proxy = servers.start_nginx_proxy(procs, up.port, pinning, buffering=False)
    targets: list[Target] = [("direct", "direct (nginx SSE upstream)", up.port, None)]
    targets.append(("nginx", "nginx proxy_pass, proxy_buffering off", proxy.port, proxy))
    sources = [("gateway-1w", "gateway, 1 worker", REPO)]
    if args.rev:
        label = f"gateway at {str(git_describe(args.rev).get('commit') or args.rev)[:7]}, 1 worker"
        sources.append(("gateway-rev", label, snapshot_source(args.rev, procs.workdir)))
    for name, label, src in sources:
        try:
            proc = servers.start_gateway(procs, name, up.port, 1, pinning, src, settings=SERVER_SETTINGS)
            targets.append((name, label, proc.port, proc))
        except BenchError as exc:
            failures.add(f"{name} did not start: {exc}")
    return up, targets


def meta(args: argparse.Namespace, pinning: Pinning) -> dict[str, Any]:
    """What a reader needs to weigh the figures, the machine's load when the run began included."""
    layout = (
        f"load generator and upstream on CPU {pinning.client_cpu}, the server under test on CPU {pinning.server_cpu}"
    )
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "nproc": os.cpu_count(),
        "command": " ".join(["python", "bench/streams.py", *sys.argv[1:]]),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
        "gcc": version(["gcc", "--version"]),
        "nginx": version([servers.NGINX, "-v"]),
        "gateway_source": git_describe(None),
        "rev": git_describe(args.rev) if args.rev else None,
        "layout": layout if pinning.client_cpu is not None else "no CPU pinning",
        "streams": args.streams,
        "rounds": args.rounds,
        "events": EVENTS,
        "event_bytes": EVENT_BYTES,
        "events_per_s": EVENTS_PER_S,
        "connects_per_s": CONNECTS_PER_S,
        "settings": SERVER_SETTINGS,
        "limit": args.limit,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="100 streams once; exit 1 on any stream error")
    parser.add_argument("--streams", type=lambda t: [int(n) for n in t.split(",")], help="counts (100,1000,5000)")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds (default 1)")
    parser.add_argument("--rev", help="also run the gateway from this git revision, in the same rounds")
    parser.add_argument("--overload", action="store_true", help="also the overload runs (see bench/README.md)")
    parser.add_argument("--limit", type=int, default=500, help="PROXY_MAX_INFLIGHT for the overload runs")
    parser.add_argument("--plot-python", default=os.environ.get("BENCH_PLOT_PYTHON"), help="a python with matplotlib")
    parser.add_argument("--no-pin", action="store_true", help="do not pin the load and the server to separate cores")
    parser.add_argument("--keep-temp", action="store_true", help="keep the temp dir (configs and server logs)")
    args = parser.parse_args(argv)
    args.streams = args.streams or ([100] if args.smoke else [100, 1000, 5000])
    return args


def main(argv: list[str] | None = None) -> int:
    args, failures, began = parse_args(argv), Failures(), time.monotonic()
    raise_nofile(3 * max([*args.streams, OVERLOAD_STREAMS if args.overload else 0]) + 1024)
    pinning = Pinning.choose(not args.no_pin)
    results: dict[str, Any] = {"meta": meta(args, pinning)}
    try:
        with workspace(keep=args.keep_temp) as (workdir, procs):
            load = Load(workdir, pinning)
            sse, targets = start_targets(args, procs, pinning, failures)
            results["targets"] = [{"name": name, "label": label} for name, label, _, _ in targets]
            results["points"] = capacity(args, targets, load, failures)
            results["summary"] = summarize(results["points"])
            if args.overload:
                for _, _, _, proc in targets[1:]:
                    if proc:
                        procs.stop(proc)
                results["overload"] = overload(args, procs, pinning, sse, load, failures)
    except KeyboardInterrupt:
        log("interrupted; every server was stopped")
        return 130
    except BenchError as exc:
        failures.add(str(exc))
    results["failures"], results["meta"]["elapsed_s"] = failures, round(time.monotonic() - began, 1)
    out = BENCH_DIR / "results" / ("streams-smoke.json" if args.smoke else "streams.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    if not args.smoke and "summary" in results:
        from bench.run import make_chart

        results["chart"] = make_chart(results, REPO / "docs" / "streams.png", args.plot_python, out)
        out.write_text(json.dumps(results, indent=1) + "\n")
    print(report.streams_section(results) if "summary" in results else "")
    log(f"results: {out.relative_to(REPO)}; {results['meta']['elapsed_s']} s")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
