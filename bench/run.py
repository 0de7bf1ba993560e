"""The acedata-proxy benchmark: one command, loopback only, everything started and stopped by itself.

    .venv/bin/python bench/run.py                 # full run: docs/benchmark.md, docs/benchmark.png
    .venv/bin/python bench/run.py --litellm       # ... with LiteLLM's proxy as a comparison
    .venv/bin/python bench/run.py --smoke         # the whole pipeline in about a minute; exit 1 on any failure (CI)

Every target answers the same POST {"model": "gpt-4.1", "input": "hi"}: direct (the fixed-cost nginx upstream),
nginx proxy_pass, the gateway with N workers (and its other routes, without and with other ledgers, at --compare
REV, with httpx), LiteLLM. wrk and this script run on one core, every server on the other. See bench/README.md.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository: `bench` and `tests` import

import argparse
import contextlib
import datetime as dt
import importlib.metadata
import json
import os
import platform
import shlex
import subprocess
import time
from typing import Any

from bench import phases, report, servers
from bench.harness import (
    BENCH_DIR,
    REPO,
    REQUEST_BODY,
    WRK,
    BenchError,
    Failures,
    Pinning,
    Proc,
    Processes,
    gateway_python,
    git_describe,
    http_request,
    log,
    raise_nofile,
    rss_mb,
    snapshot_source,
    version,
    workspace,
)

# The gateway's CPU per request over nginx proxy_pass's at c=16, one worker, as docs/benchmark.md measured it;
# a run past twice this fails (cpu_guard).
DOCUMENTED_CPU_RATIO = 12.9


def check_answer(target: phases.Target) -> None:
    """One request before any load: a 200 with a Responses, chat, message or embeddings JSON object."""
    headers = {"Content-Type": "application/json", **({"Authorization": target.auth} if target.auth else {})}
    status, body = http_request(target.proc.port, "POST", target.path, target.body, headers, timeout=30)
    try:
        answer = json.loads(body) if status == 200 else {}
    except ValueError:
        answer = {}
    kind = answer.get("object", answer.get("type"))  # an Anthropic message has a `type`, no `object`
    if target.path == servers.EMBEDDINGS_PATH:
        data = answer.get("data") or [{}]
        vector, usage = data[0].get("embedding") or [], answer.get("usage") or {}
        if (
            kind != "list"
            or len(data) != 1
            or len(vector) != servers.EMBEDDING_DIMENSIONS
            or "total_tokens" not in usage
        ):
            raise BenchError(
                f"HTTP {status}, not one {servers.EMBEDDING_DIMENSIONS}-float embedding with usage: {body[:200]!r}"
            )
    elif kind not in ("response", "chat.completion", "message"):
        raise BenchError(f"HTTP {status}, not a Responses, chat or message object: {body[:300]!r}")


def gateway_targets(
    args: argparse.Namespace, procs: Processes, up: Proc, pinning: Pinning, failures: Failures
) -> list[phases.Target]:
    """The gateway with each worker count; one worker also through its other routes (unless a --rev predates them),
    without its ledger and with it in Redis, an older commit's (--compare) and with httpx as its client."""
    out: list[phases.Target] = []

    def start(
        name: str, label: str, workers: int = 1, src: Path | None = None, launcher: list[str] | None = None, **env: str
    ) -> Proc | None:
        try:
            proc = servers.start_gateway(procs, name, up.port, workers, pinning, src or args.src, launcher, env)
        except BenchError as exc:
            failures.add(f"{name} did not start: {exc}")
            return None
        out.append(phases.Target(name, label, proc))
        return proc

    for workers in args.workers:
        proc = start(f"gateway-{workers}w", f"gateway, {workers} worker" + "s" * (workers > 1), workers)
        routes = (
            ("chat", "chat completions", servers.CHAT_PATH, servers.CHAT_BODY),
            ("messages", "Anthropic messages", servers.MESSAGES_PATH, servers.MESSAGES_BODY),
            ("embeddings", "embeddings", servers.EMBEDDINGS_PATH, servers.EMBEDDINGS_BODY),
        )
        for route, what, path, body in routes if workers == 1 else ():
            if proc and servers.source_has(args.src, f'"{path}"'):
                out.append(phases.Target(f"gateway-1w-{route}", f"gateway, 1 worker, {what}", proc, path, body))
    if 1 in args.workers and (args.src / "app" / "ledger").is_dir():  # a --rev from before the ledger has none
        launcher = [gateway_python(), str(BENCH_DIR / "no_ledger.py")]
        start(report.NO_LEDGER, "gateway, 1 worker, no ledger", launcher=launcher)
        if not args.smoke and (redis := servers.start_redis(procs, pinning)):
            args.redis_url = redis.url
            start(report.REDIS_LEDGER, "gateway, 1 worker, ledger in Redis", PROXY_REDIS_URL=redis.url)
    if args.compare:  # an earlier commit's gateway in the same rounds: before/after ratios free of the VM's drift
        commit = str(git_describe(args.compare).get("commit") or args.compare)[:7]
        start("gateway-base", f"gateway at {commit}, 1 worker", src=snapshot_source(args.compare, procs.workdir))
    if args.httpx:  # what the gateway's own upstream client buys over httpx
        start("gateway-httpx", "gateway, 1 worker, httpx client", PROXY_UPSTREAM_CLIENT="httpx")
    return out


def litellm_target(
    args: argparse.Namespace, procs: Processes, up: Proc, pinning: Pinning
) -> tuple[list[phases.Target], dict[str, Any]]:
    info: dict[str, Any] = {"version": servers.litellm_version(args.litellm_bin)}
    if not Path(args.litellm_bin).exists():
        info["skipped"] = f"{args.litellm_bin} not found (install it: see bench/README.md)"
        return [], info
    try:
        started = time.monotonic()
        proc = servers.start_litellm(procs, args.litellm_bin, up.port, pinning)
        info["startup_s"] = round(time.monotonic() - started, 1)
        return [
            phases.Target("litellm", "LiteLLM proxy", proc, "/v1/responses", auth=f"Bearer {servers.LITELLM_KEY}")
        ], info
    except BenchError as exc:  # optional comparison: report it, go on without it
        info["skipped"] = f"did not start: {exc}"
        return [], info


def load_phase(args: argparse.Namespace, procs: Processes, pinning: Pinning, failures: Failures) -> dict[str, Any]:
    up = servers.start_nginx_upstream(procs, pinning)
    targets = [phases.Target("direct", "direct (nginx upstream)", up)]
    try:
        targets.append(phases.Target("nginx", "nginx proxy_pass", servers.start_nginx_proxy(procs, up.port, pinning)))
    except BenchError as exc:
        failures.add(f"nginx proxy did not start: {exc}")
    targets += gateway_targets(args, procs, up, pinning, failures)
    extra: dict[str, Any] = {}
    if args.litellm:
        lite, extra["litellm"] = litellm_target(args, procs, up, pinning)
        targets += lite
    live = []
    for target in targets:
        try:
            check_answer(target)
            live.append(target)
        except (BenchError, OSError) as exc:
            failures.add(f"{target.label} answered wrongly: {exc}")
    rss_before = {t.name: round(rss_mb(t.proc.pid), 1) for t in live}
    # the smoke run warms each process once (its other routes had their check request) to stay within its minute
    warm = [t for i, t in enumerate(live) if not args.smoke or all(o.proc is not t.proc for o in live[:i])]
    points = phases.interleaved(pinning, live, warm, args.concurrency, args.rounds, args.duration, failures)
    rss_after = {t.name: round(rss_mb(t.proc.pid), 1) for t in live}
    groups: dict[str, list[str]] = {}
    for target in live:
        if target.name.startswith(("gateway", "litellm")):
            procs.stop(target.proc)  # SIGTERM: the ledger writes its last batch on the way out
            groups.setdefault(target.proc.name, []).append(target.name)
    if report.NO_LEDGER in groups:
        extra["ledger"] = phases.verify_ledgers(procs.workdir, points, groups, args.redis_url, failures)
    return {
        "targets": [{"name": t.name, "label": t.label, "path": t.path} for t in live],
        "points": points,
        "rss_mb_before_load": rss_before,
        "rss_mb_after_load": rss_after,
        **extra,
    }


def summarize_load(points: list[dict[str, Any]]) -> dict[str, dict[str, dict[str, float]]]:
    summary = phases.summarize(points)
    for by_conc in summary.values():
        for conc, row in by_conc.items():
            for base, key in (("direct", "x_direct"), ("nginx", "x_nginx"), ("litellm", "x_litellm")):
                if other := summary.get(base, {}).get(conc):
                    row[key] = row["rps"] / other["rps"]
            if nginx := summary.get("nginx", {}).get(conc):
                row["cpu_x_nginx"] = row["cpu_us_per_req"] / nginx["cpu_us_per_req"]
    return summary


def cpu_guard(summary: dict[str, dict[str, dict[str, float]]], failures: Failures) -> dict[str, float] | None:
    """The regression guard: the gateway's CPU per request over nginx's at c=16, in this run. CPU time moves far
    less than throughput when the machine is busy, and a ratio taken in one run cancels the VM's drift."""
    row = summary.get("gateway-1w", {}).get("16")
    if row is None:
        return None
    ratio = row.get("cpu_x_nginx", float("nan"))
    if not ratio <= 2 * DOCUMENTED_CPU_RATIO:  # a NaN (nothing measured) fails too
        failures.add(
            f"CPU per request at c=16 is {ratio:.1f}× nginx proxy_pass's, past twice the documented "
            f"{DOCUMENTED_CPU_RATIO:g}× (docs/benchmark.md)"
        )
    return {"ratio": ratio, "documented": DOCUMENTED_CPU_RATIO, "limit": 2 * DOCUMENTED_CPU_RATIO}


def target_checks(results: dict[str, Any]) -> list[dict[str, Any]]:
    """The performance targets (one worker), measured or not; missing them does not change the exit status."""
    g = results.get("load_summary", {}).get("gateway-1w", {})
    c16, c1, c64 = g.get("16", {}), g.get("1", {}), g.get("64", {})
    stream = results.get("streaming", {}).get("summary", {}).get("gateway-1w", {})
    memory = results.get("rss", {}).get("gateway-1w", {})
    ledger = report.ledger_cost(results)
    n = memory.get("streams_requested", 1000)
    tail = c64["added_p99_ms"] / c64["added_p50_ms"] if c64.get("added_p50_ms", 0) > 0 else None
    ledger_c = f" (c={ledger['concurrency']})" if ledger else ""
    checks = [  # a negative limit is an upper bound, a positive one a lower bound
        ("c16 RPS ≥ 0.18 × nginx", c16.get("x_nginx"), 0.18, "{:.3f}×"),
        ("c16 added p50 ≤ 1.5 ms", c16.get("added_p50_ms"), -1.5, "{:.3f} ms"),
        ("c16 added p99 ≤ 4 ms", c16.get("added_p99_ms"), -4.0, "{:.3f} ms"),
        ("c1 added p50 ≤ 0.3 ms", c1.get("added_p50_ms"), -0.3, "{:.3f} ms"),
        ("c16 RPS ≥ 5 × LiteLLM", c16.get("x_litellm"), 5.0, "{:.1f}×"),
        ("c64 added p99 ≤ 3 × added p50", tail, -3.0, "{:.2f}×"),
        ("stream added TTFB ≤ 1 ms", stream.get("added_ttfb_ms"), -1.0, "{:.3f} ms"),
        ("RSS idle ≤ 60 MB", memory.get("idle_mb"), -60.0, "{:.1f} MB"),
        (f"RSS with {n} {'open ' * (n != 1000)}streams ≤ 200 MB", memory.get("streams_mb"), -200.0, "{:.1f} MB"),
        (f"usage ledger costs ≤ 5% RPS{ledger_c}", ledger and ledger["rps_pct"], -5.0, "{:.1f}%"),
    ]
    return [
        {"what": what, "value": value, "limit": abs(limit), "ok": None if value is None else value >= limit if limit > 0
         else value <= -limit, "text": "not measured" if value is None else fmt.format(value)}
        for what, value, limit, fmt in checks
    ]  # fmt: skip


def machine_meta(args: argparse.Namespace, pinning: Pinning) -> dict[str, Any]:
    lines = Path("/proc/cpuinfo").read_text().splitlines()
    cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "?")
    versions = {}
    for package in ("acedata-proxy", "uvicorn", "httpx", "fastapi", "pydantic", "uvloop", "httptools"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    layout = f"wrk and the bench client on CPU {pinning.client_cpu}, every server (upstream included) on CPU "
    layout += str(pinning.server_cpu)
    return {
        "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "command": " ".join(shlex.quote(a) for a in ["python", "bench/run.py", *sys.argv[1:]]),
        "nproc": os.cpu_count(), "cpu": cpu, "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(), "nginx": version([servers.NGINX, "-v"]).removeprefix("nginx version: "),
        "wrk": version([WRK, "--version"]), "versions": versions,
        "layout": layout if pinning.client_cpu is not None else "no CPU pinning", "smoke": args.smoke,
        "rounds": args.rounds, "duration_s": args.duration, "concurrency": args.concurrency, "workers": args.workers,
        "streams": args.streams, "stream_runs": args.stream_runs, "request": REQUEST_BODY.decode(),
        "upstream_body_bytes": len(servers.RESPONSES_JSON), "upstream_embeddings_bytes": len(servers.embeddings_json()),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
        "gateway_source": {"tree": f"git archive {args.rev}" if args.rev else "work tree", **git_describe(args.rev)},
    }  # fmt: skip


def make_chart(results: dict[str, Any], png: Path, plot_python: str | None, json_path: Path) -> bool:
    """The chart, drawn here when matplotlib is importable, else by `plot_python` running bench/report.py."""
    try:
        report.chart(results, png)
        return True
    except ImportError:
        if not plot_python:
            log("matplotlib is not importable (and no --plot-python): no chart")
            return False
    done = subprocess.run(
        [plot_python, str(BENCH_DIR / "report.py"), str(json_path), str(png)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        log(f"chart failed with {plot_python}: {done.stderr.strip()[-400:]}")
    return done.returncode == 0


def ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add = parser.add_argument
    add("--smoke", action="store_true", help="1 round, 1 s, c=16, 50 streams, no LiteLLM; about a minute")
    add("--rounds", type=int, help="interleaved rounds (default 3; smoke 1)")
    add("--duration", type=int, help="seconds per wrk point (default 5; smoke 1)")
    add("--concurrency", type=ints, help="comma-separated (default 1,16,64; smoke 16)")
    add("--workers", type=ints, default=[1, 2], help="gateway worker counts (default 1,2)")
    add("--litellm", action="store_true", help="also measure LiteLLM's proxy (not in smoke mode)")
    add("--litellm-bin", default=os.environ.get("LITELLM_BIN", "/tmp/litellm-venv/bin/litellm"))
    add("--no-httpx", dest="httpx", action="store_false", help="skip the gateway with PROXY_UPSTREAM_CLIENT=httpx")
    add("--streams", type=int, help="concurrent open streams for the memory figure (default 1000; smoke 50)")
    add("--stream-runs", type=int, help="timed streams per path (default 8; smoke 3)")
    add(
        "--plot-python",
        default=os.environ.get("BENCH_PLOT_PYTHON"),
        help="a python with matplotlib (env BENCH_PLOT_PYTHON)",
    )
    add("--no-pin", action="store_true", help="do not pin wrk and servers to separate cores")
    add("--no-docs", action="store_true", help="do not write docs/benchmark.md and .png")
    add("--rev", help="run the gateway from this git revision (a `git archive` snapshot), e.g. HEAD")
    add("--compare", metavar="REV", help="also one worker of the gateway at REV (JSON load), in the same rounds")
    add("--render-only", action="store_true", help="only rewrite docs/benchmark.md from bench/results/latest.json")
    add("--scaling", action="store_true", help="also --scaling-workers unpinned, wrk and the upstream on one core")
    add("--scaling-workers", type=ints, default=[1, 2], help="worker counts for --scaling (1,2)")
    add("--keep-temp", action="store_true", help="keep the temp dir (configs and server logs)")
    args = parser.parse_args(argv)
    smoke = args.smoke
    args.rounds, args.duration = args.rounds or (1 if smoke else 3), args.duration or (1 if smoke else 5)
    args.concurrency = args.concurrency or ([16] if smoke else [1, 16, 64])
    args.streams, args.stream_runs = args.streams or (50 if smoke else 1000), args.stream_runs or (3 if smoke else 8)
    args.litellm, args.scaling, args.no_docs = (
        args.litellm and not smoke,
        args.scaling and not smoke,
        args.no_docs or smoke,
    )
    args.src, args.redis_url = REPO, None  # the gateway code that runs: the work tree, or a snapshot (--rev)
    return args


def write_docs(results: dict[str, Any]) -> None:
    """docs/benchmark.md from this run, with bench/streams.py's section from bench/results/streams.json, or the
    section the page already has when that file is not on this machine (results stay out of git)."""
    path, streams = REPO / "docs" / "benchmark.md", BENCH_DIR / "results" / "streams.json"
    markdown = report.render(results, docs=True, streams=json.loads(streams.read_text()) if streams.exists() else None)
    old = path.read_text() if path.exists() else ""
    at = old.find("\n## Stream capacity")
    path.write_text(markdown.rstrip("\n") + "\n" + (old[at:] if at >= 0 and not streams.exists() else ""))


def measure_all(args: argparse.Namespace, failures: Failures) -> dict[str, Any]:
    pinning = Pinning.choose(not args.no_pin)
    pinning.pin_self()
    results: dict[str, Any] = {
        "meta": {**machine_meta(args, pinning), "nofile": raise_nofile(max(8192, 4 * args.streams + 1024))}
    }
    with workspace(keep=args.keep_temp) as (workdir, procs):
        args.src = snapshot_source(args.rev, workdir) if args.rev else REPO
        results["load"] = load_phase(args, procs, pinning, failures)
        results["load_summary"] = summarize_load(results["load"]["points"])
        results["cpu_guard"] = cpu_guard(results["load_summary"], failures)
        results["streaming"] = phases.stream_phase(args, procs, pinning, failures)
        results["rss"] = phases.memory_phase(args, procs, pinning, failures)
        if args.scaling:
            results["scaling"] = phases.scaling_phase(args, procs, pinning, failures)
    results["meta"]["litellm"] = results["load"].get("litellm", {}).get("version")
    return results


def main(argv: list[str] | None = None) -> int:
    args, failures, began = parse_args(argv), Failures(), time.monotonic()
    json_path = (
        BENCH_DIR
        / "results"
        / (
            "smoke.json"
            if args.smoke
            else "latest.json"
            if not args.no_docs
            else time.strftime("run-%Y%m%d-%H%M%S.json")
        )
    )
    if args.render_only:
        results = json.loads((BENCH_DIR / "results" / "latest.json").read_text())
    else:
        try:
            results = measure_all(args, failures)
        except KeyboardInterrupt:
            log("interrupted; every server was stopped")
            return 130
        except BenchError as exc:  # the upstream itself did not start: nothing to measure
            failures.add(str(exc))
            return 1
        results["checks"], results["failures"] = target_checks(results), failures
        results["meta"]["elapsed_s"] = round(time.monotonic() - began, 1)
        json_path.parent.mkdir(exist_ok=True)
        json_path.write_text(json.dumps(results, indent=1) + "\n")  # latest.json is what docs/ are drawn from
    if not args.no_docs:
        results["chart"] = make_chart(results, REPO / "docs" / "benchmark.png", args.plot_python, json_path)
        write_docs(results)
    print(report.render(results, docs=False))
    elapsed, failed = results["meta"].get("elapsed_s"), len(results["failures"])
    log(f"results: {json_path.relative_to(REPO)}; {elapsed} s; {failed} failure(s)")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
