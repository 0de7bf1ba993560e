"""What an open dashboard costs the request path, in gateway CPU per proxied request.

    .venv/bin/python bench/dashboard_cost.py                # 6 interleaved rounds, 4 s each, JSON load at c=16

One gateway (1 worker, a client key, a price file) in front of the fixed-cost nginx upstream; wrk drives it in
rounds that alternate between no dashboard and dashboards open (GET /admin with an admin key every
--interval seconds: 0.2 s is 25 pages refreshing every 5 s). CPU µs per proxied request = the gateway's CPU
time over the round / the requests wrk got answered, so the dashboard's own work is charged to the traffic: the
figure it must not move beyond the rounds' spread. Loopback only; every server is stopped on exit.
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cpu_cost import cpu_seconds
from harness import HOST, Pinning, free_port, http_request, log, median, run_wrk, start_nginx_upstream, workspace
from run import start_gateway

ROOT = Path(__file__).resolve().parent.parent


def open_dashboards(port: int, key: str, interval: float, stop: threading.Event, looks: list[int]) -> None:
    while not stop.wait(interval):
        status, page = http_request(port, "GET", "/admin", headers={"Authorization": f"Bearer {key}"})
        if status != 200 or b'data-route="openai.responses"' not in page:
            raise SystemExit(f"the dashboard answered {status}")
        looks.append(1)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--duration", type=int, default=4, help="seconds per wrk point")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between dashboard looks")
    args = parser.parse_args()
    from app.access import keys

    pinning = Pinning.choose()
    pinning.pin_self()
    with workspace() as (workdir, procs):
        up_port = free_port()
        start_nginx_upstream(procs, up_port, pinning)
        path = workdir / "keys.toml"
        key = keys.create(path, "bench")
        admin = keys.create(path, "lead", admin=True)
        prices = str(ROOT / "deploy" / "prices.example.toml")
        proc, port = start_gateway(procs, "tree", up_port, 1, pinning, PROXY_KEYS_FILE=str(path),
                                   PROXY_PRICES_FILE=prices)  # fmt: skip
        url = f"http://{HOST}:{port}/openai/responses"
        run_wrk(pinning, url, 16, 1, auth=f"Bearer {key}")  # warm-up, and rows in the ledger
        per_request: dict[str, list[float]] = {"closed": [], "open": []}
        for round_no in range(1, args.rounds + 1):
            for state in per_request:
                stop, looks = threading.Event(), []
                looker = threading.Thread(target=open_dashboards, args=(port, admin, args.interval, stop, looks))
                if state == "open":
                    looker.start()
                before = cpu_seconds(proc.pid)
                result = run_wrk(pinning, url, 16, args.duration, auth=f"Bearer {key}")
                used = cpu_seconds(proc.pid) - before
                stop.set()
                if looker.is_alive():
                    looker.join()
                if not result.ok:
                    log(f"{state}: {result.problems()}")
                    return 1
                per_request[state].append(used / result.requests * 1e6)
                log(f"round {round_no} {state:<6} {result.rps:8.0f} rps  {per_request[state][-1]:7.1f} CPU µs/request"
                    f"  p99 {result.p99_ms:.2f} ms  {len(looks)} dashboard looks")  # fmt: skip
    for state, values in per_request.items():
        print(f"{state:<6} median {median(values):.1f} µs/request, rounds {min(values):.1f}..{max(values):.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
