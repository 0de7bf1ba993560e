"""More cores, unpinned (`bench/run.py --scaling`): what `serve --workers N` gains when the gateway may use every
core, and the per-core figure that projects it to a bigger machine.

The JSON load pins every server to one core, so there a second worker cannot add CPU. Here only the load side is
pinned: wrk and the nginx upstream on CPU 0 (`taskset`), the gateway unpinned, with --workers 1, then 2, ...
in interleaved rounds at c=16 and c=64, beside wrk against the upstream alone (direct: the base for the added
latency). The upstream stays on wrk's core because it stands for the remote API, which costs the gateway's
machine nothing: unpinned it would take CPU from the gateway's workers on the very cores being measured, while on
CPU 0 it and wrk take a bounded share (each ~10-15 µs a request) and leave the rest of the machine to the
gateway. CPU per request is summed over the gateway's processes (the supervisor included, with N > 1).
"""

from __future__ import annotations

import argparse
import contextlib
import subprocess
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

from harness import (
    REQUEST_BODY,
    BenchError,
    Failures,
    Pinning,
    Proc,
    Processes,
    cpu_seconds,
    free_port,
    log,
    median,
    run_wrk,
    start_nginx_upstream,
)

CONCURRENCY = (16, 64)
PATH = "/openai/responses"
SPARE_CORES = 1  # on a bigger machine: one core left to the kernel, the network and whatever else runs there
BIG_MACHINE = 16
StartGateway = Callable[..., tuple[Proc, int]]  # bench/run.py's start_gateway


def scaling_phase(
    args: argparse.Namespace, procs: Processes, pinning: Pinning, failures: Failures, start_gateway: StartGateway
) -> dict[str, Any]:
    loadavg = Path("/proc/loadavg").read_text().split()[:3]  # this phase runs minutes after the run began
    load_side = Pinning(pinning.client_cpu, pinning.client_cpu)  # .server() pins to wrk's core
    unpinned = Pinning(pinning.client_cpu, None)  # .server() runs as is
    up_port = free_port()
    up = start_nginx_upstream(procs, up_port, load_side, name="nginx-upstream-scaling")
    targets: list[tuple[str, int, Proc]] = [("direct", up_port, up)]
    for workers in args.scaling_workers:
        name = f"gateway-{workers}w-unpinned"
        try:
            proc, port = start_gateway(procs, name, up_port, workers, unpinned)
            targets.append((name, port, proc))
        except BenchError as exc:
            failures.add(f"{name} did not start: {exc}")
    for _, port, _ in targets:  # warm-up
        with contextlib.suppress(BenchError, subprocess.TimeoutExpired):
            run_wrk(pinning, f"http://127.0.0.1:{port}{PATH}", 16, 1, body=REQUEST_BODY)
    points = []
    for round_no in range(1, args.rounds + 1):
        for conc in CONCURRENCY:
            for name, port, proc in targets:
                point = _measure(pinning, name, port, proc, up, conc, args.duration, failures)
                if point is not None:
                    points.append({**point, "round": round_no})
    for name, _, proc in targets:
        if name != "direct":
            procs.stop(proc)
    procs.stop(up)
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
        "summary": summarize(points),
    }


def _measure(
    pinning: Pinning, name: str, port: int, proc: Proc, up: Proc, conc: int, duration: float, failures: Failures
) -> dict[str, Any] | None:
    before, up_before = cpu_seconds(proc.pid), cpu_seconds(up.pid)
    try:
        result = run_wrk(pinning, f"http://127.0.0.1:{port}{PATH}", conc, duration, body=REQUEST_BODY)
    except (BenchError, subprocess.TimeoutExpired) as exc:
        failures.add(f"{name} (scaling) c={conc}: {exc}")
        return None
    cpu, up_cpu = cpu_seconds(proc.pid) - before, cpu_seconds(up.pid) - up_before
    if not result.ok:
        failures.add(f"{name} (scaling) c={conc}: {result.problems()}")
    requests = max(1, result.requests)
    log(f"scaling c={conc:<3} {name:<20} {result.rps:>8.0f} rps  CPU {cpu * 1e6 / requests:6.1f} µs/req")
    return {
        "target": name,
        "concurrency": conc,
        **asdict(result),
        "cpu_us_per_req": cpu * 1e6 / requests,
        "upstream_cpu_us_per_req": up_cpu * 1e6 / requests,
    }


def summarize(points: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for point in points:
        summary.setdefault(point["target"], {}).setdefault(str(point["concurrency"]), {})
    for name, by_conc in summary.items():
        for conc in by_conc:
            pts = [p for p in points if p["target"] == name and str(p["concurrency"]) == conc]
            row = {key: median([p[key] for p in pts]) for key in ("rps", "p50_ms", "p99_ms", "cpu_us_per_req")}
            row["cores"] = row["rps"] * row["cpu_us_per_req"] / 1e6  # the gateway's CPU-seconds per second
            row["rounds"] = len(pts)
            by_conc[conc] = row
    for name, by_conc in summary.items():
        for conc, row in by_conc.items():
            direct = summary.get("direct", {}).get(conc)
            if direct and name != "direct":
                row["added_p50_ms"] = row["p50_ms"] - direct["p50_ms"]
                row["added_p99_ms"] = row["p99_ms"] - direct["p99_ms"]
    return summary


def _f(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def projection(scaling: dict[str, Any], conc: str = "16") -> dict[str, float] | None:
    """Requests per gateway CPU-second with one worker (1e6 / CPU µs per request) and what a BIG_MACHINE-core
    machine would serve at that figure with one worker per core but SPARE_CORES."""
    one = scaling.get("summary", {}).get("gateway-1w-unpinned", {}).get(conc)
    if not one or not one["cpu_us_per_req"] > 0:
        return None
    per_core = 1e6 / one["cpu_us_per_req"]
    workers = BIG_MACHINE - SPARE_CORES
    return {"per_core_rps": per_core, "workers": workers, "projected_rps": workers * per_core}


def section(scaling: dict[str, Any], nproc: int | None) -> list[str]:
    summary = scaling.get("summary", {})
    names = [n for n in summary if n != "direct"]
    if not names:
        return []
    lines = [
        "## More cores: workers unpinned",
        "",
        f"`bench/run.py --scaling`: {scaling['layout']} (the upstream stands for the remote API, so it stays "
        "off the gateway's cores); wrk -t1 at c=16 and c=64 in interleaved rounds, medians. *cores* = RPS × CPU "
        "per request: the gateway's CPU-seconds per second, summed over its processes."
        + (
            f" Load average when this phase began: {' / '.join(load)}."
            if (load := scaling.get("loadavg_at_start"))
            else ""
        ),
        "",
        "| gateway | c | RPS | × 1 worker | CPU µs/req | cores | added p50 ms | added p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for conc in (str(c) for c in CONCURRENCY):
        one = summary.get("gateway-1w-unpinned", {}).get(conc)
        for name in names:
            row = summary[name].get(conc)
            if not row:
                continue
            workers = name.removeprefix("gateway-").removesuffix("w-unpinned")
            lines.append(
                f"| {workers} worker{'s' if workers != '1' else ''} | {conc} | {_f(row['rps'], 0)} | "
                f"{_f(row['rps'] / one['rps'] if one else None, 2)} | {_f(row['cpu_us_per_req'], 1)} | "
                f"{_f(row['cores'], 2)} | {_f(row.get('added_p50_ms'), 3)} | {_f(row.get('added_p99_ms'), 3)} |"
            )
    return [*lines, "", *_reading(summary, projection(scaling), nproc)]


def _reading(summary: dict[str, Any], proj: dict[str, float] | None, nproc: int | None) -> list[str]:
    one, two = summary.get("gateway-1w-unpinned", {}).get("16"), summary.get("gateway-2w-unpinned", {}).get("16")
    if not proj or not one:
        return []
    text = (
        f"Per core: one worker spends {one['cpu_us_per_req']:.1f} µs of CPU per request at c=16, so one gateway "
        f"core serves about {proj['per_core_rps']:,.0f} requests a second (1e6 / CPU µs per request). By that "
        f"figure a {BIG_MACHINE}-core machine running {proj['workers']:.0f} workers (one core left to the kernel "
        f"and the network) would serve about {proj['projected_rps']:,.0f} RPS of this request"
    )
    if two:
        text += (
            f"; at the two-worker row's CPU per request ({two['cpu_us_per_req']:.1f} µs), "
            f"{proj['workers'] * 1e6 / two['cpu_us_per_req']:,.0f}. Measured here, two workers did "
            f"{two['rps'] / one['rps']:.2f}× one worker's RPS, keeping {two['cores']:.2f} cores busy against "
            f"{one['cores']:.2f}"
        )
    text += (
        f". The projection is arithmetic, not a measurement: this machine has {nproc or '?'} cores and wrk and "
        "the upstream are pinned to one of them, so a second worker shares that core with them and the two-worker "
        "row cannot show what a second core of its own would give. It assumes CPU per request stays flat from "
        "one worker to fifteen, and an upstream elsewhere that costs the machine nothing."
    )
    return [text]
