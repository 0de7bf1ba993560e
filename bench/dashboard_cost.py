"""What an open dashboard costs the request path, in gateway CPU per proxied request.

    .venv/bin/python bench/dashboard_cost.py                # 6 interleaved rounds, 4 s each, JSON load at c=16

One gateway (1 worker, a client key, a price file) in front of the fixed-cost nginx upstream; wrk drives it in
rounds that alternate between no dashboard and dashboards open (GET /admin with an admin key every
--interval seconds: 0.2 s is 25 pages refreshing every 5 s). CPU µs per proxied request = the gateway's CPU
time over the round / the requests wrk got answered, so the dashboard's own work is charged to the traffic: the
figure it must not move beyond the rounds' spread. Loopback only; every server is stopped on exit.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository: `bench` and `tests` import

import argparse
import contextlib
import threading
from collections.abc import Iterator

from bench.cpu_cost import Gateways, cpu_rounds
from bench.harness import REPO, BenchError, Pinning, http_request, median, workspace
from bench.servers import start_gateway, start_nginx_upstream


@contextlib.contextmanager
def dashboards(port: int, admin: str, interval: float, looks: list[int]) -> Iterator[None]:
    """GET /admin every `interval` seconds while the block runs; each look must be the dashboard."""
    stop, errors = threading.Event(), []

    def look() -> None:
        while not stop.wait(interval):
            status, page = http_request(port, "GET", "/admin", headers={"Authorization": f"Bearer {admin}"})
            if status != 200 or b'data-route="openai.responses"' not in page:
                errors.append(f"the dashboard answered {status}")
                return
            looks.append(1)

    looker = threading.Thread(target=look)
    looker.start()
    try:
        yield
    finally:
        stop.set()
        looker.join()
    if errors:
        raise BenchError(errors[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--duration", type=int, default=4, help="seconds per wrk point")
    parser.add_argument("--interval", type=float, default=0.2, help="seconds between dashboard looks")
    args = parser.parse_args()
    from app.access import keys

    pinning = Pinning.choose()
    pinning.pin_self()
    looks: list[int] = []
    with workspace() as (workdir, procs):
        up = start_nginx_upstream(procs, pinning)
        path = workdir / "keys.toml"
        key, admin = keys.create(path, "bench"), keys.create(path, "lead", admin=True)
        prices = str(REPO / "deploy" / "prices.example.toml")
        settings = {"PROXY_KEYS_FILE": str(path), "PROXY_PRICES_FILE": prices}
        proc = start_gateway(procs, "tree", up.port, 1, pinning, settings=settings)
        gateways: Gateways = {"closed": (proc, f"Bearer {key}"), "open": (proc, f"Bearer {key}")}

        def around(state: str) -> contextlib.AbstractContextManager[object]:
            return dashboards(proc.port, admin, args.interval, looks) if state == "open" else contextlib.nullcontext()

        per_request = cpu_rounds(pinning, gateways, args.rounds, args.duration, around)
    for state, values in per_request.items():
        print(f"{state:<6} median {median(values):.1f} µs/request, rounds {min(values):.1f}..{max(values):.1f}")
    print(f"{len(looks)} dashboard looks")
    return 0


if __name__ == "__main__":
    sys.exit(main())
