"""Overload runs for bench/streams.py --overload: one gateway worker far past what it can serve, without and with
PROXY_MAX_INFLIGHT. JSON at wrk concurrency 512 and 2,048 (nginx `return 200` upstream), then 10,000 concurrent
streams (the paced SSE upstream). Per run: what completed, what was refused and how, latency, peak RSS."""

from __future__ import annotations

import argparse
import subprocess
from dataclasses import asdict
from pathlib import Path
from typing import Any

import run as runner
from harness import BenchError, Failures, Pinning, Processes, free_port, log, run_wrk, start_nginx_upstream
from streams import SERVER_SETTINGS, PeakRss, StreamTarget, run_streams

JSON_CONCURRENCY = (512, 2048)
STREAMS = 10_000
WRK_SECONDS, WRK_TIMEOUT_S = 5, 5.0  # a request still unanswered after 5 s counts as a timeout


def json_point(pinning: Pinning, port: int, pid: int, concurrency: int) -> dict[str, Any]:
    sampler = PeakRss(pid)
    sampler.start()
    url = f"http://127.0.0.1:{port}/openai/responses"
    try:
        result = run_wrk(pinning, url, concurrency, WRK_SECONDS, timeout_s=WRK_TIMEOUT_S)
    finally:
        peak = sampler.stop()
    return {"concurrency": concurrency, **asdict(result), "rss_peak_mb": round(peak, 1)}


def one_setting(
    args: argparse.Namespace, procs: Processes, pinning: Pinning, ports: dict[str, int], tools: dict[str, Path],
    limit: int | None,
) -> dict[str, Any]:  # fmt: skip
    settings = {**SERVER_SETTINGS, **({"PROXY_MAX_INFLIGHT": str(limit)} if limit else {})}
    name = "gateway-limited" if limit else "gateway-unlimited"
    out: dict[str, Any] = {"limit": limit, "json": [], "streams": None}
    proc, port = runner.start_gateway(procs, name + "-json", ports["json"], 1, pinning, **settings)
    for concurrency in JSON_CONCURRENCY:
        point = json_point(pinning, port, proc.pid, concurrency)
        log(
            f"overload {name} c={concurrency}: {point['rps']:.0f} rps, p50 {point['p50_ms']:.1f} ms, p99 "
            f"{point['p99_ms']:.1f} ms, max {point['max_ms']:.0f} ms, non-2xx {point['non_2xx']}, "
            f"socket errors {point['socket_errors']}, rss {point['rss_peak_mb']} MB"
        )
        out["json"].append(point)
    procs.stop(proc)
    proc, port = runner.start_gateway(procs, name + "-streams", ports["sse"], 1, pinning, **settings)
    point = run_streams(StreamTarget(name, name, port, proc), STREAMS, tools, pinning)
    log(f"overload {name} {STREAMS} streams: completed {point['completed']}, errors {point['errors']}, "
        f"gap p99 {point['gap_us']['p99'] / 1000:.1f} ms, rss {point['rss_peak_mb']} MB")  # fmt: skip
    out["streams"] = point
    procs.stop(proc)
    return out


def run(
    args: argparse.Namespace, procs: Processes, pinning: Pinning, failures: Failures, sse_port: int,
    tools: dict[str, Path],
) -> list[dict[str, Any]]:  # fmt: skip
    ports = {"json": free_port(), "sse": sse_port}
    on_client_core = Pinning(pinning.server_cpu, pinning.client_cpu)
    start_nginx_upstream(procs, ports["json"], on_client_core)
    results = []
    for limit in (None, args.limit):
        try:
            results.append(one_setting(args, procs, pinning, ports, tools, limit))
        except (BenchError, subprocess.TimeoutExpired) as exc:
            failures.add(f"overload, PROXY_MAX_INFLIGHT={limit}: {exc}")
    return results
