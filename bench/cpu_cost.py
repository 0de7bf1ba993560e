"""What a change costs per request in CPU time, which a noisy shared machine disturbs far less than RPS.

    .venv/bin/python bench/cpu_cost.py --base REV           # work tree vs REV, JSON load at c=16
    .venv/bin/python bench/cpu_cost.py --base REV --keyed   # ... each with a client key (the work tree's has a budget)

Each gateway (1 worker) runs in front of the fixed-cost nginx upstream; wrk drives them in interleaved rounds,
and each gateway's own CPU time (utime + stime from /proc, its worker included) is read around every point.
CPU µs per request = CPU time / requests answered; the ratio of the two is the change's cost in RPS terms when
the gateway is CPU-bound (RPS ~ 1 / CPU per request). Loopback only; every server is stopped on exit.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository: `bench` and `tests` import

import argparse
import contextlib
from collections.abc import Callable
from contextlib import AbstractContextManager

from bench.harness import (
    HOST,
    REPO,
    BenchError,
    Pinning,
    Proc,
    cpu_seconds,
    log,
    median,
    run_wrk,
    snapshot_source,
    workspace,
)
from bench.servers import RESPONSES_PATH, start_gateway, start_nginx_upstream

Gateways = dict[str, tuple[Proc, str | None]]  # name -> the process and the Authorization it is sent


def keys_file(workdir: Path, name: str, budget: bool) -> tuple[Path, str]:
    """A keys file with one key, in the work tree's format: every revision reads it when it sets no budget."""
    from app.access import keys

    path = workdir / f"{name}.toml"
    return path, keys.create(path, "bench", budget_tokens=10**15) if budget else keys.create(path, "bench")


def cpu_rounds(
    pinning: Pinning,
    gateways: Gateways,
    rounds: int,
    duration: int,
    around: Callable[[str], AbstractContextManager[object]] = lambda _name: contextlib.nullcontext(),
) -> dict[str, list[float]]:
    """CPU µs per request of each gateway at c=16, in interleaved rounds after a warm-up; `around(name)` is
    entered for each point (what runs beside the load)."""
    per_request: dict[str, list[float]] = {name: [] for name in gateways}
    for round_no in range(rounds + 1):  # round 0: the warm-up
        for name, (proc, auth) in gateways.items():
            with around(name):
                before = cpu_seconds(proc.pid)
                result = run_wrk(
                    pinning, f"http://{HOST}:{proc.port}{RESPONSES_PATH}", 16, duration if round_no else 1, auth=auth
                )
                used = cpu_seconds(proc.pid) - before
            if not result.ok:
                raise BenchError(f"{name}: {result.problems()}")
            if round_no:
                per_request[name].append(used / result.requests * 1e6)
                log(
                    f"round {round_no} {name:<6} {result.rps:8.0f} rps  {per_request[name][-1]:7.1f} CPU µs/request  "
                    f"p99 {result.p99_ms:.2f} ms"
                )
    return per_request


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
        up = start_nginx_upstream(procs, pinning)
        gateways: Gateways = {}
        for name, src in (("base", snapshot_source(args.base, workdir)), ("tree", REPO)):
            settings: dict[str, str] = {}
            auth = None
            if args.keyed:
                path, key = keys_file(workdir, name, budget=name == "tree")
                settings, auth = {"PROXY_KEYS_FILE": str(path)}, f"Bearer {key}"
            gateways[name] = (start_gateway(procs, name, up.port, 1, pinning, src, settings=settings), auth)
        per_request = cpu_rounds(pinning, gateways, args.rounds, args.duration)
    base, tree = median(per_request["base"]), median(per_request["tree"])
    print(f"CPU per request (median of {args.rounds}): base {args.base} {base:.1f} µs, work tree {tree:.1f} µs")
    print(f"work tree / base = {tree / base:.3f}  ->  RPS when CPU-bound: {base / tree:.3f} x base")
    return 0


if __name__ == "__main__":
    sys.exit(main())
