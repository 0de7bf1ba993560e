"""Stream capacity: how many concurrent LLM-shaped streams one gateway worker holds, against nginx proxy_pass
(proxy_buffering off) in the same run, and what overload does to it.

    .venv/bin/python bench/streams.py               # 100, 1000, 5000 streams; writes bench/results/streams.json
    .venv/bin/python bench/streams.py --overload    # ... then JSON c=512/2048 and 10,000 streams, with and
                                                    # without PROXY_MAX_INFLIGHT
    .venv/bin/python bench/streams.py --rev HEAD~3  # also a gateway from an older commit, in the same rounds

The upstream is nginx serving a prepared SSE body (200 events of 120 bytes) paced with `limit_rate` at ~30 events
a second (one event per write: `sendfile_max_chunk` = one event). The load generator, bench/streamload.c, is
built with the machine's gcc at run time: one epoll loop holding every stream, reading at full speed. Both run on
CPU 0; the server under test alone on CPU 1. bench/README.md says what each figure means.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import render_streams as render
import run as runner
from harness import (
    BENCH_DIR,
    HOST,
    REPO,
    BenchError,
    Failures,
    Pinning,
    Proc,
    Processes,
    cpu_seconds,
    free_port,
    git_describe,
    log,
    raise_nofile,
    rss_mb,
    snapshot_source,
    start_nginx,
    wait_ready,
    workspace,
)

EVENT_BYTES, EVENTS, EVENTS_PER_S = 120, 200, 30
STREAM_REQUEST = b'{"model":"gpt-4.1","input":"hi","stream":true}'
CONNECTS_PER_S = 2000  # how fast the load generator opens streams (all 5,000 within the first 2.5 s)
NGINX_CONNECTIONS = 32768  # per worker: a proxied stream takes two (client and upstream), 10,000 streams 20,000
SERVER_SETTINGS = {"PROXY_MAX_CONNECTIONS": "20000"}  # the default pool (1000) would make stream 1001 wait


def sse_body() -> bytes:
    """200 Responses-API events of exactly 120 bytes (the last, response.completed with usage, a little longer)."""

    def event(kind: str, payload: dict[str, Any]) -> bytes:
        return f"event: {kind}\ndata: {json.dumps(payload, separators=(',', ':'))}\n\n".encode()

    def padded(kind: str, number: int, key: str) -> bytes:
        base = {"type": kind, "sequence_number": number, key: ""}
        pad = EVENT_BYTES - len(event(kind, base))
        return event(kind, {**base, key: "x" * pad})

    events = [padded("response.created", 0, "id")]
    events += [padded("response.output_text.delta", n, "delta") for n in range(1, EVENTS - 1)]
    usage = {"input_tokens": 1, "output_tokens": EVENTS - 2, "total_tokens": EVENTS - 1}
    events.append(event("response.completed", {"type": "response.completed", "response": {"usage": usage}}))
    return b"".join(events)


def build_loadgen(workdir: Path) -> Path:
    binary = workdir / "streamload"
    argv = ["gcc", "-O2", "-Wall", "-o", str(binary), str(BENCH_DIR / "streamload.c")]
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise BenchError(f"could not build bench/streamload.c (needs gcc): {result.stderr.strip()}")
    return binary


def request_file(workdir: Path, path: str) -> Path:
    head = f"POST {path} HTTP/1.1\r\nhost: {HOST}\r\ncontent-type: application/json\r\nconnection: close\r\n"
    out = workdir / "stream-request.bin"
    out.write_bytes(head.encode() + f"content-length: {len(STREAM_REQUEST)}\r\n\r\n".encode() + STREAM_REQUEST)
    return out


def start_sse_upstream(procs: Processes, port: int, pinning: Pinning) -> Proc:
    """nginx answering any POST with the prepared body, one 120-byte write every 1/30 s. POST to a static file is
    405 in nginx; `error_page 405 =200` serves the file instead (an internal redirect as GET)."""
    root = procs.workdir / "sse"
    root.mkdir()
    (root / "stream.sse").write_bytes(sse_body())
    for path in (procs.workdir, root, root / "stream.sse"):  # nginx's workers run as nobody when we are root
        path.chmod(path.stat().st_mode | 0o005)
    rate = EVENT_BYTES * EVENTS_PER_S
    # limit_rate_after: the head and the first event leave at once, as a model's first token would
    block = f"""    server {{
        listen {HOST}:{port} backlog=16384;
        location = /healthz {{ return 200 'ok'; }}
        location / {{ error_page 405 =200 /stream.sse; return 405; }}
        location = /stream.sse {{
            internal; root {root}; default_type text/event-stream;
            limit_rate {rate}; limit_rate_after 400; sendfile_max_chunk {EVENT_BYTES};
        }}
    }}"""
    on_client_core = Pinning(pinning.server_cpu, pinning.client_cpu)  # .server() pins to the client's core
    proc = start_nginx(procs, "sse-upstream", block, on_client_core, NGINX_CONNECTIONS)
    wait_ready(proc, port, "/healthz", 15)
    return proc


def start_stream_proxy(procs: Processes, port: int, upstream_port: int, pinning: Pinning) -> Proc:
    """nginx proxy_pass relaying each upstream write as it comes (proxy_buffering off), keep-alive upstream."""
    block = f"""    upstream sse_upstream {{ server {HOST}:{upstream_port}; keepalive 1024; }}
    server {{
        listen {HOST}:{port} backlog=16384;
        location = /healthz {{ return 200 'ok'; }}
        location / {{
            proxy_pass http://sse_upstream; proxy_http_version 1.1; proxy_set_header Connection "";
            proxy_buffering off;
        }}
    }}"""
    proc = start_nginx(procs, "stream-proxy", block, pinning, NGINX_CONNECTIONS)
    wait_ready(proc, port, "/healthz", 15)
    return proc


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


def settle(pid: int, timeout: float = 60) -> None:
    """Wait until a server has stopped spending CPU (what a finished run left it to do is done)."""
    deadline, last = time.monotonic() + timeout, cpu_seconds(pid)
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = cpu_seconds(pid)
        if now - last < 0.02:
            return
        last = now


@dataclass
class StreamTarget:
    name: str
    label: str
    port: int
    proc: Proc | None  # None: the upstream itself (its CPU is not the figure)


def run_streams(target: StreamTarget, count: int, tools: dict[str, Path], pinning: Pinning) -> dict[str, Any]:
    """One load-generator run of `count` streams against `target`, with the target's CPU time and peak RSS."""
    pid = target.proc.pid if target.proc is not None else None
    if pid is not None:
        settle(pid)
    idle = rss_mb(pid) if pid is not None else 0.0
    cpu_before = cpu_seconds(pid) if pid is not None else 0.0
    sampler = PeakRss(pid) if pid is not None else None
    if sampler is not None:
        sampler.start()
    timeout = 30 + count * EVENTS / 20_000  # past this the streams still open count as errors ("timeout")
    argv = [str(tools["loadgen"]), HOST, str(target.port), str(tools["request"]), str(count), str(EVENTS)]
    argv = pinning.client([*argv, f"{timeout:g}", str(CONNECTS_PER_S)])
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout + 30, check=False)
    peak = sampler.stop() if sampler is not None else 0.0
    if result.returncode != 0 or not result.stdout.strip():
        raise BenchError(f"streamload failed ({result.returncode}): {result.stderr.strip()[-400:]}")
    point: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    if pid is not None:
        settle(pid)
        cpu = cpu_seconds(pid) - cpu_before
        point.update(cpu_s=round(cpu, 3), cpu_us_per_event=round(cpu * 1e6 / max(1, point["events"]), 2))
        point.update(rss_idle_mb=round(idle, 1), rss_peak_mb=round(peak, 1))
        point["rss_kb_per_stream"] = round((peak - idle) * 1000 / max(1, point["peak_open"]), 1)
    return point


def capacity_phase(
    args: argparse.Namespace, targets: list[StreamTarget], tools: dict[str, Path], pinning: Pinning, failures: Failures
) -> list[dict[str, Any]]:
    points = []
    for round_no in range(1, args.rounds + 1):
        for count in args.streams:
            # interleaved as bench/run.py does, direct first, the others' order rotating round by round, so a
            # drift of the machine's load does not always favour the same one
            others = targets[1:]
            shift = (round_no - 1) % max(1, len(others))
            for target in [targets[0], *others[shift:], *others[:shift]]:
                try:
                    point = run_streams(target, count, tools, pinning)
                except (BenchError, subprocess.TimeoutExpired) as exc:
                    failures.add(f"{target.label}, {count} streams, round {round_no}: {exc}")
                    continue
                errors = sum(point["errors"].values())
                if errors and args.smoke:
                    failures.add(f"{target.label}, {count} streams: {point['errors']}")
                points.append({"target": target.name, "round": round_no, **point})
                log(
                    f"round {round_no} {count:>5} streams {target.name:<11} done {point['completed']:>5} "
                    f"errors {errors:>4}  gap p50 {point['gap_us']['p50'] / 1000:7.2f} ms p99 "
                    f"{point['gap_us']['p99'] / 1000:8.2f} ms  ttfb p99 {point['ttfb_us']['p99'] / 1000:8.2f} ms  "
                    f"cpu {point.get('cpu_us_per_event', 0):6.1f} us/event  rss {point.get('rss_peak_mb', 0):6.1f} MB"
                )
    return points


def start_targets(
    args: argparse.Namespace, procs: Processes, pinning: Pinning, failures: Failures, **settings: str
) -> tuple[Proc, list[StreamTarget]]:
    """The SSE upstream, nginx proxy_pass and one gateway worker (plus one from --rev), all pointed at it."""
    up_port, proxy_port = free_port(), free_port()
    upstream = start_sse_upstream(procs, up_port, pinning)
    targets = [StreamTarget("direct", "direct (nginx SSE upstream)", up_port, None)]
    proxy = start_stream_proxy(procs, proxy_port, up_port, pinning)
    targets.append(StreamTarget("nginx", "nginx proxy_pass, proxy_buffering off", proxy_port, proxy))
    sources = [("gateway-1w", "gateway, 1 worker", runner.GATEWAY_SRC)]
    if args.rev:
        label = f"gateway at {git_describe(args.rev).get('commit', args.rev)[:7]}, 1 worker"
        sources.append(("gateway-rev", label, snapshot_source(args.rev, procs.workdir)))
    for name, label, source in sources:
        runner.GATEWAY_SRC = source
        try:
            proc, port = runner.start_gateway(procs, name, up_port, 1, pinning, **SERVER_SETTINGS, **settings)
            targets.append(StreamTarget(name, label, port, proc))
        except BenchError as exc:
            failures.add(f"{name} did not start: {exc}")
    runner.GATEWAY_SRC = REPO
    return upstream, targets


def summarize(points: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per target and stream count: medians over rounds, and `added` figures against direct at that count."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    for name in dict.fromkeys(p["target"] for p in points):
        for count in dict.fromkeys(p["streams"] for p in points):
            mine = [p for p in points if p["target"] == name and p["streams"] == count]
            if not mine:
                continue
            row = {
                "completed": median([p["completed"] for p in mine]),
                "errors": median([sum(p["errors"].values()) for p in mine]),
                "refused": median([p["errors"]["refused"] for p in mine]),
                "peak_open": median([p["peak_open"] for p in mine]),
                "elapsed_s": median([p["elapsed_s"] for p in mine]),
                "events_per_s": median([p["events"] / p["elapsed_s"] for p in mine]),
                "gap_p50_ms": median([p["gap_us"]["p50"] / 1000 for p in mine]),
                "gap_p99_ms": median([p["gap_us"]["p99"] / 1000 for p in mine]),
                "ttfb_p99_ms": median([p["ttfb_us"]["p99"] / 1000 for p in mine]),
            }
            for key in ("cpu_us_per_event", "rss_peak_mb", "rss_idle_mb", "rss_kb_per_stream"):
                if key in mine[0]:
                    row[key] = median([p[key] for p in mine])
            out.setdefault(name, {})[str(count)] = row
    direct = out.get("direct", {})
    for rows in out.values():
        for count, row in rows.items():
            base = direct.get(count)
            if base is not None:
                for key in ("gap_p50_ms", "gap_p99_ms", "ttfb_p99_ms"):
                    row["added_" + key] = round(row[key] - base[key], 3)
    return out


def median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def meta(args: argparse.Namespace, pinning: Pinning) -> dict[str, Any]:
    """What a reader needs to weigh the figures, the machine's load when the run began included."""
    gcc = subprocess.run(["gcc", "--version"], capture_output=True, text=True, check=False).stdout.splitlines()
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "command": " ".join(["python", "bench/streams.py", *sys.argv[1:]]),
        "nproc": os.cpu_count(),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
        "nginx": runner.nginx_version(),
        "gcc": gcc[0] if gcc else "?",
        "gateway_source": git_describe(None),
        "rev": git_describe(args.rev) if args.rev else None,
        "layout": (
            f"load generator and upstream on CPU {pinning.client_cpu}, "
            f"the server under test on CPU {pinning.server_cpu}"
            if pinning.client_cpu is not None
            else "no CPU pinning"
        ),
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
    parser.add_argument("--streams", type=runner._ints, help="comma-separated counts (default 100,1000,5000)")
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds (default 1)")
    parser.add_argument("--rev", help="also run the gateway from this git revision, in the same rounds")
    parser.add_argument("--overload", action="store_true", help="also the overload runs (see bench/README.md)")
    parser.add_argument("--limit", type=int, default=500, help="PROXY_MAX_INFLIGHT for the overload runs")
    parser.add_argument("--plot-python", default=os.environ.get("BENCH_PLOT_PYTHON"),
                        help="a python with matplotlib, when this one has none (env BENCH_PLOT_PYTHON)")  # fmt: skip
    parser.add_argument("--no-pin", action="store_true", help="do not pin the load and the server to separate cores")
    parser.add_argument("--keep-temp", action="store_true", help="keep the temp dir (configs and server logs)")
    args = parser.parse_args(argv)
    args.streams = args.streams or ([100] if args.smoke else [100, 1000, 5000])
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    began = time.monotonic()
    raise_nofile(3 * max([*args.streams, 10_000 if args.overload else 0]) + 1024)
    pinning = Pinning.choose(not args.no_pin)
    failures = Failures()
    results: dict[str, Any] = {"meta": meta(args, pinning)}
    try:
        with workspace(keep=args.keep_temp) as (workdir, procs):
            tools = {"loadgen": build_loadgen(workdir), "request": request_file(workdir, "/openai/responses")}
            _, targets = start_targets(args, procs, pinning, failures)
            results["targets"] = [{"name": t.name, "label": t.label} for t in targets]
            results["points"] = capacity_phase(args, targets, tools, pinning, failures)
            results["summary"] = summarize(results["points"])
            if args.overload:
                for target in targets[1:]:
                    procs.stop(target.proc)  # type: ignore[arg-type]
                import overload  # imports this module: only now, once it is loaded

                results["overload"] = overload.run(args, procs, pinning, failures, targets[0].port, tools)
    except KeyboardInterrupt:
        log("interrupted; every server was stopped")
        return 130
    except BenchError as exc:
        failures.add(str(exc))
    results["failures"] = failures.items
    results["meta"]["elapsed_s"] = round(time.monotonic() - began, 1)
    out = BENCH_DIR / "results" / ("streams-smoke.json" if args.smoke else "streams.json")
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    if not args.smoke:
        results["chart"] = runner.make_chart(out, REPO / "docs" / "streams.png", args.plot_python)
        out.write_text(json.dumps(results, indent=1) + "\n")
    print(render.section(results))
    log(f"results: {out.relative_to(REPO)}; {results['meta']['elapsed_s']} s")
    return 1 if failures.items else 0


if __name__ == "__main__":
    sys.exit(main())
