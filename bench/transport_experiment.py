"""Which upstream client should the gateway use: its own (http1), httpx with httpcore, or httpx with httpx-aiohttp?

Builds the app in-process with `create_app(Settings(...), transport=...)` for each transport, serves each with
uvicorn (uvloop + httptools, as `acedata-proxy serve` does) pinned to the server core, and measures:
  - JSON requests against the fixed-cost nginx upstream with wrk (interleaved rounds, medians);
  - one stream at a time against the paced fake upstream (TTFB, total, bytes and events relayed);
  - what the client gets when the upstream resets the connection (should be 502 upstream_unavailable).

    .venv/bin/python bench/transport_experiment.py [--rounds 5] [--duration 5] [--concurrency 16] [--rev HEAD]

Nothing in app/ changes: the transport is injected through create_app's `transport` argument.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import (
    BENCH_DIR,
    HOST,
    REPO,
    REQUEST_BODY,
    UPSTREAM_TOKEN,
    BenchError,
    Pinning,
    Processes,
    free_port,
    gateway_python,
    git_describe,
    http_request,
    log,
    median,
    raise_nofile,
    run_wrk,
    snapshot_source,
    start_nginx_upstream,
    time_stream,
    wait_ready,
    workspace,
)

# http1 = the gateway's own client (its default); httpcore = httpx's default transport (PROXY_UPSTREAM_CLIENT=httpx);
# aiohttp = httpx with httpx-aiohttp's transport (pip install httpx-aiohttp first)
TRANSPORTS = ("http1", "httpcore", "aiohttp")


# ------------------------------------------------------------------------------------------ server process


def make_transport(kind: str, settings: Any) -> Any:
    if kind in ("http1", "httpcore"):
        return None
    import httpx
    from httpx_aiohttp import AiohttpTransport

    # The client's `limits` do not reach a custom transport: give the same pool size to aiohttp's connector.
    return AiohttpTransport(
        limits=httpx.Limits(
            max_connections=settings.max_connections,
            max_keepalive_connections=settings.max_keepalive_connections,
            keepalive_expiry=30.0,
        )
    )


def serve(kind: str, port: int, upstream: str) -> None:
    import uvicorn

    from app.main import create_app
    from app.settings import Settings

    client = "http1" if kind == "http1" else "httpx"
    settings = Settings(api_token=UPSTREAM_TOKEN, api_base_url=upstream, upstream_client=client)
    app = create_app(settings, transport=make_transport(kind, settings))
    uvicorn.run(
        app, host=HOST, port=port, loop="uvloop", http="httptools", log_config=None, access_log=False,
        lifespan="on", server_header=False,
    )  # fmt: skip


def raw_fault(port: int) -> None:
    """An upstream that accepts, reads the request and resets the connection (tests/helpers/raw_faults.py)."""
    from tests.helpers.raw_faults import RawFaultServer

    async def main() -> None:
        server = RawFaultServer("reset")
        await server.start(HOST, port)
        await asyncio.sleep(3600)

    asyncio.run(main())


def client_only(upstream_port: int, concurrencies: list[int], requests: int) -> None:
    """The upstream client alone, no server: CPU per request of httpx.AsyncClient with each transport, the way
    the gateway uses it (stream=True, aiter_raw, aclose), at several concurrencies. Prints JSON."""
    import resource

    import httpx
    import uvloop

    url = f"http://{HOST}:{upstream_port}/openai/responses"
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=200, keepalive_expiry=30.0)

    async def run_http1(conc: int) -> dict[str, float]:
        from app.clients import ClientOptions
        from app.clients.http1 import Http1Client

        options = ClientOptions(
            connect_timeout=5, first_byte_timeout=60, read_timeout=60, max_connections=1000, max_keepalive=200
        )
        client = Http1Client(f"http://{HOST}:{upstream_port}", options)

        async def worker(count: int) -> None:
            for _ in range(count):
                response = await client.request("POST", b"/openai/responses", [(b"content-type", b"application/json")],
                                             REQUEST_BODY)  # fmt: skip
                while await response.read():
                    pass
                await response.aclose()

        await asyncio.gather(*(worker(50) for _ in range(conc)))
        per = max(1, requests // conc)
        before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
        await asyncio.gather(*(worker(per) for _ in range(conc)))
        after, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - started
        await client.aclose()
        n = per * conc
        return {
            "cpu_us_per_request": (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / n * 1e6,
            "requests_per_s": n / wall,
        }

    async def run(kind: str, conc: int) -> dict[str, float]:
        if kind == "http1":
            return await run_http1(conc)
        transport = None
        if kind == "aiohttp":
            from httpx_aiohttp import AiohttpTransport

            transport = AiohttpTransport(limits=limits)
        async with httpx.AsyncClient(transport=transport, limits=limits) as client:

            async def worker(count: int) -> None:
                for _ in range(count):
                    request = client.build_request("POST", url, content=REQUEST_BODY)
                    response = await client.send(request, stream=True)
                    async for _ in response.aiter_raw():
                        pass
                    await response.aclose()

            await asyncio.gather(*(worker(50) for _ in range(conc)))  # warm-up: open the connections
            per = max(1, requests // conc)
            before, started = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
            await asyncio.gather(*(worker(per) for _ in range(conc)))
            after, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - started
        n = per * conc
        return {
            "cpu_us_per_request": (after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) / n * 1e6,
            "requests_per_s": n / wall,
        }

    async def main() -> dict[str, Any]:
        out: dict[str, Any] = {}
        for conc in concurrencies:
            for kind in TRANSPORTS:
                out.setdefault(kind, {})[str(conc)] = await run(kind, conc)
        return out

    print(json.dumps(uvloop.run(main())))


# -------------------------------------------------------------------------------------------- orchestration


class Servers:
    def __init__(self, procs: Processes, pinning: Pinning, src: Path):
        self.procs, self.pinning, self.src = procs, pinning, src

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PROXY_", "ACEDATACLOUD_"))}
        env["PYTHONPATH"] = str(self.src)
        return env

    def start(self, name: str, argv: list[str], ready_path: str | None, port: int, **kw: Any) -> None:
        proc = self.procs.start(name, self.pinning.server([gateway_python(), *argv]), env=self.env())
        if ready_path:
            wait_ready(proc, port, ready_path, 40, **kw)
        else:
            time.sleep(1.5)
            if not proc.alive():
                raise BenchError(f"{name} exited:\n{proc.log_tail()}")

    def gateway(self, kind: str, tag: str, upstream: str) -> int:
        port = free_port()
        argv = [
            str(BENCH_DIR / "transport_experiment.py"),
            "--serve",
            kind,
            "--port",
            str(port),
            "--upstream",
            upstream,
        ]
        self.start(f"{kind}-{tag}", argv, "/healthz", port)
        return port


def json_load(args: argparse.Namespace, servers: Servers, pinning: Pinning) -> dict[str, Any]:
    up = free_port()
    start_nginx_upstream(servers.procs, up, pinning)
    ports = {kind: servers.gateway(kind, "json", f"http://{HOST}:{up}") for kind in TRANSPORTS}
    for kind, port in ports.items():
        status, body = http_request(
            port, "POST", "/openai/responses", REQUEST_BODY, {"Content-Type": "application/json"}
        )
        if status != 200 or json.loads(body).get("object") != "response":
            raise BenchError(f"{kind}: HTTP {status} {body[:200]!r}")
        run_wrk(pinning, f"http://{HOST}:{port}/openai/responses", 16, 2)  # warm-up
    points: list[dict[str, Any]] = []
    for round_no in range(1, args.rounds + 1):
        for conc in args.concurrency:
            for kind in TRANSPORTS if round_no % 2 else TRANSPORTS[::-1]:  # alternate who goes first
                r = run_wrk(pinning, f"http://{HOST}:{ports[kind]}/openai/responses", conc, args.duration)
                if not r.ok:
                    raise BenchError(f"{kind} c={conc}: {r.problems()}")
                points.append({"transport": kind, "concurrency": conc, "round": round_no, "rps": r.rps,
                               "p50_ms": r.p50_ms, "p99_ms": r.p99_ms})  # fmt: skip
                log(
                    f"round {round_no} c={conc:<3} {kind:<9} {r.rps:8.0f} rps  p50 {r.p50_ms:7.3f}  p99 {r.p99_ms:7.3f}"
                )
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for kind in TRANSPORTS:
        for conc in args.concurrency:
            pts = [p for p in points if p["transport"] == kind and p["concurrency"] == conc]
            summary.setdefault(kind, {})[str(conc)] = {
                "rps": median([p["rps"] for p in pts]),
                "p50_ms": median([p["p50_ms"] for p in pts]),
                "p99_ms": median([p["p99_ms"] for p in pts]),
                "rps_min": min(p["rps"] for p in pts),
                "rps_max": max(p["rps"] for p in pts),
            }
    return {"points": points, "summary": summary, "upstream_port": up}


def client_cpu(args: argparse.Namespace, servers: Servers, pinning: Pinning, upstream_port: int) -> dict[str, Any]:
    """The client-only measurement, in a subprocess on the server core (the upstream shares it, as in the load)."""
    argv = [gateway_python(), str(BENCH_DIR / "transport_experiment.py"), "--client-only", str(upstream_port),
            "--concurrency", ",".join(str(c) for c in args.concurrency)]  # fmt: skip
    result = subprocess.run(
        pinning.server(argv), capture_output=True, text=True, timeout=300, env=servers.env(), check=False
    )
    if result.returncode != 0:
        raise BenchError(f"client-only run failed: {result.stderr[-600:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


async def _streams(ports: dict[str, int], direct: int, runs: int) -> dict[str, Any]:
    targets = [("direct", direct, f"Bearer {UPSTREAM_TOKEN}")] + [(k, p, None) for k, p in ports.items()]
    for _, port, auth in targets:
        await time_stream(port, "/openai/responses", auth)
    timings: dict[str, list[Any]] = {name: [] for name, _, _ in targets}
    for _ in range(runs):
        for name, port, auth in targets:
            timings[name].append(await time_stream(port, "/openai/responses", auth))
    # what the client receives, decoded: the same events as the upstream sent?
    events: dict[str, int] = {}
    lengths: dict[str, int] = {}
    for name, port, auth in targets:
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if auth:
            headers["Authorization"] = auth
        body = b'{"model":"gpt-4.1","input":"hi","stream":true}'
        status, payload = await asyncio.to_thread(http_request, port, "POST", "/openai/responses", body, headers, 30.0)
        if status != 200:
            raise BenchError(f"stream through {name}: HTTP {status}")
        events[name] = payload.count(b"\n\n")
        lengths[name] = len(payload)
    out: dict[str, Any] = {}
    for name, ts in timings.items():
        out[name] = {
            "ttfb_ms": median([t.ttfb_ms for t in ts]),
            "total_ms": median([t.total_ms for t in ts]),
            "events": events[name],
            "body_bytes": lengths[name],
        }
    for name in ports:
        out[name]["added_ttfb_ms"] = out[name]["ttfb_ms"] - out["direct"]["ttfb_ms"]
        out[name]["added_total_ms"] = out[name]["total_ms"] - out["direct"]["total_ms"]
    return out


def streaming(args: argparse.Namespace, servers: Servers) -> dict[str, Any]:
    fake = free_port()
    servers.start(
        "fake-upstream", ["-m", "app", "fake-upstream", "--port", str(fake), "--token", UPSTREAM_TOKEN,
                          "--deltas", "100", "--delay", "0.01"],
        "/openai/models", fake, headers={"Authorization": f"Bearer {UPSTREAM_TOKEN}"},
    )  # fmt: skip
    ports = {kind: servers.gateway(kind, "stream", f"http://{HOST}:{fake}") for kind in TRANSPORTS}
    return asyncio.run(_streams(ports, fake, args.stream_runs))


def reset_semantics(servers: Servers) -> dict[str, Any]:
    fault = free_port()
    servers.start("raw-fault", [str(BENCH_DIR / "transport_experiment.py"), "--raw-fault", str(fault)], None, fault)
    out: dict[str, Any] = {}
    for kind in TRANSPORTS:
        port = servers.gateway(kind, "reset", f"http://{HOST}:{fault}")
        status, body = http_request(
            port, "POST", "/openai/responses", REQUEST_BODY, {"Content-Type": "application/json"}
        )
        with contextlib.suppress(ValueError):
            body = json.loads(body)["error"]
        out[kind] = {"status": status, "error": body if isinstance(body, dict) else body[:200].decode(errors="replace")}
    return out


def render(results: dict[str, Any]) -> str:
    lines = [
        f"Transport experiment, {results['meta']['date']}: {results['meta']['command']}",
        f"gateway code: {results['meta']['source']}; wrk -t1, {results['meta']['duration_s']} s per point, "
        f"{results['meta']['rounds']} interleaved rounds, medians",
        "",
        "| transport | conc. | RPS (median) | RPS min–max | p50 ms | p99 ms |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    summary = results["json"]["summary"]
    for conc in results["meta"]["concurrency"]:
        for kind in TRANSPORTS:
            row = summary[kind][str(conc)]
            lines.append(
                f"| {kind} | {conc} | {row['rps']:,.0f} | {row['rps_min']:,.0f}–{row['rps_max']:,.0f} | "
                f"{row['p50_ms']:.3f} | {row['p99_ms']:.3f} |"
            )
        base = summary["httpcore"][str(conc)]
        for kind in ("aiohttp", "http1"):
            lines.append(f"| {kind} / httpcore | {conc} | {summary[kind][str(conc)]['rps'] / base['rps']:.2f}× | | | |")
    if "client_only" in results:
        lines += [
            "",
            "The upstream client alone (httpx.AsyncClient, stream=True, no server), CPU per request:",
            "",
            "| transport | " + " | ".join(f"c={c}" for c in results["meta"]["concurrency"]) + " |",
            "|---|" + "---:|" * len(results["meta"]["concurrency"]),
        ]
        for kind in TRANSPORTS:
            cells = [f"{results['client_only'][kind][str(c)]['cpu_us_per_request']:.0f} µs"
                     for c in results["meta"]["concurrency"]]  # fmt: skip
            lines.append(f"| {kind} | " + " | ".join(cells) + " |")
    if "streaming" in results:
        lines += [
            "",
            "| stream via | TTFB ms | total ms | added TTFB ms | events | body bytes |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, row in results["streaming"].items():
            added = f"{row['added_ttfb_ms']:.3f}" if "added_ttfb_ms" in row else "–"
            lines.append(
                f"| {name} | {row['ttfb_ms']:.3f} | {row['total_ms']:.1f} | {added} | {row['events']} | "
                f"{row['body_bytes']} |"
            )
    if "reset" in results:
        lines += ["", "Upstream resets the connection on request:"]
        for kind, row in results["reset"].items():
            lines.append(f"- {kind}: HTTP {row['status']} {row['error']}")
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--concurrency", type=lambda t: [int(x) for x in t.split(",")], default=[16])
    parser.add_argument("--stream-runs", type=int, default=8)
    parser.add_argument("--no-streams", action="store_true")
    parser.add_argument("--rev", help="run this git revision's app (git archive snapshot) instead of the work tree")
    parser.add_argument("--serve", choices=TRANSPORTS, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--upstream", help=argparse.SUPPRESS)
    parser.add_argument("--raw-fault", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--client-only", type=int, metavar="UPSTREAM_PORT", help=argparse.SUPPRESS)
    parser.add_argument("--no-client", action="store_true", help="skip the client-only CPU measurement")
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.upstream)
        return 0
    if args.raw_fault:
        raw_fault(args.raw_fault)
        return 0
    if args.client_only:
        client_only(args.client_only, args.concurrency, 4000)
        return 0

    raise_nofile()
    pinning = Pinning.choose()
    pinning.pin_self()
    results: dict[str, Any] = {
        "meta": {
            "date": time.strftime("%Y-%m-%d %H:%M %Z"),
            "command": "python bench/transport_experiment.py " + " ".join(sys.argv[1:]),
            "rounds": args.rounds,
            "duration_s": args.duration,
            "concurrency": args.concurrency,
        }
    }
    with workspace() as (workdir, procs):
        src = snapshot_source(args.rev, workdir) if args.rev else REPO
        info = git_describe(args.rev)
        results["meta"]["source"] = f"{'git archive ' + args.rev if args.rev else 'work tree'} at {info['commit']}" + (
            " (app/ dirty)" if info.get("app_dirty") else ""
        )
        servers = Servers(procs, pinning, src)
        results["json"] = json_load(args, servers, pinning)
        if not args.no_client:
            results["client_only"] = client_cpu(args, servers, pinning, results["json"]["upstream_port"])
        if not args.no_streams:
            results["streaming"] = streaming(args, servers)
            results["reset"] = reset_semantics(servers)
    out = BENCH_DIR / "results" / "transport.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n")
    print(render(results))
    log(f"results: {out.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
