"""What a change costs per request in CPU time, which a noisy shared machine disturbs far less than RPS.

    .venv/bin/python bench/cpu_cost.py --base REV           # work tree vs REV, JSON load at c=16
    .venv/bin/python bench/cpu_cost.py --base REV --keyed   # ... each with a client key (the work tree's has a budget)

Each gateway (1 worker) runs in front of the fixed-cost nginx upstream; wrk drives them in interleaved rounds,
and each gateway's own CPU time (utime + stime from /proc, its worker included) is read around every point.
CPU µs per request = CPU time / requests answered; the ratio of the two is the change's cost in RPS terms when
the gateway is CPU-bound (RPS ~ 1 / CPU per request). Loopback only; every server is stopped on exit.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    HOST,
    Pinning,
    Proc,
    free_port,
    log,
    median,
    run_wrk,
    snapshot_source,
    start_nginx_upstream,
    workspace,
)
from run import start_gateway

TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    """CPU time of a process and its children still running (the uvicorn worker is the process itself here)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def keys_file(workdir: Path, name: str, budget: bool) -> tuple[Path, str]:
    from app.access import keys  # the work tree's: its file format is one every revision reads when no budget is set

    path = workdir / f"{name}.toml"
    key = keys.create(path, "bench", budget_tokens=10**15) if budget else keys.create(path, "bench")
    return path, key


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", required=True, help="git revision to compare the work tree with")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--duration", type=int, default=4, help="seconds per wrk point")
    parser.add_argument("--keyed", action="store_true", help="send a client key (a budget on the work tree's)")
    args = parser.parse_args()
    pinning = Pinning.choose()
    pinning.pin_self()
    with workspace() as (workdir, procs):
        up_port = free_port()
        start_nginx_upstream(procs, up_port, pinning)
        targets: dict[str, tuple[Proc, int, str | None]] = {}
        for name, src in (("base", snapshot_source(args.base, workdir)), ("tree", None)):
            settings, auth = {}, None
            if args.keyed:
                path, key = keys_file(workdir, name, budget=name == "tree")
                settings, auth = {"PROXY_KEYS_FILE": str(path)}, f"Bearer {key}"
            proc, port = start_gateway(procs, name, up_port, 1, pinning, src, **settings)
            targets[name] = (proc, port, auth)
        for _proc, port, auth in targets.values():  # warm-up
            run_wrk(pinning, f"http://{HOST}:{port}/openai/responses", 16, 1, auth=auth)
        per_request: dict[str, list[float]] = {name: [] for name in targets}
        for round_no in range(1, args.rounds + 1):
            for name, (proc, port, auth) in targets.items():
                before = cpu_seconds(proc.pid)
                result = run_wrk(pinning, f"http://{HOST}:{port}/openai/responses", 16, args.duration, auth=auth)
                used = cpu_seconds(proc.pid) - before
                if not result.ok:
                    log(f"{name}: {result.problems()}")
                    return 1
                per_request[name].append(used / result.requests * 1e6)
                log(f"round {round_no} {name:<5} {result.rps:8.0f} rps  {per_request[name][-1]:7.1f} CPU µs/request")
    base, tree = median(per_request["base"]), median(per_request["tree"])
    print(f"CPU per request (median of {args.rounds}): base {args.base} {base:.1f} µs, work tree {tree:.1f} µs")
    print(f"work tree / base = {tree / base:.3f}  ->  RPS when CPU-bound: {base / tree:.3f} x base")
    return 0


if __name__ == "__main__":
    sys.exit(main())
