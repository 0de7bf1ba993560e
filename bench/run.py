"""The acedata-proxy benchmark: one command, loopback only, everything started and stopped by itself.

    .venv/bin/python bench/run.py                 # full run (~5 min): docs/benchmark.md, docs/benchmark.png
    .venv/bin/python bench/run.py --litellm       # ... with LiteLLM's proxy as a comparison
    .venv/bin/python bench/run.py --smoke         # the whole pipeline in < 60 s; exit 1 on any failure (CI)

Targets, all answering the same POST {"model": "gpt-4.1", "input": "hi"}:
  direct    wrk against the fixed-cost nginx upstream itself (the limit)
  nginx     nginx proxy_pass (keep-alive pool) in front of that upstream (a near-limit reverse proxy)
  gateway   `acedata-proxy serve [--workers N]` in front of that upstream
  litellm   LiteLLM's proxy in front of that upstream (optional, --litellm)
wrk and this script run on one core, every server on the other (taskset). See bench/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import importlib.metadata
import json
import os
import platform
import shlex
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import rows
import scaling
from harness import (
    BENCH_DIR,
    CHAT_BODY,
    CHAT_STREAM_BODY,
    EMBEDDINGS_BODY,
    HOST,
    MESSAGES_BODY,
    MESSAGES_STREAM_BODY,
    REPO,
    REQUEST_BODY,
    STREAM_BODY,
    UPSTREAM_TOKEN,
    BenchError,
    Failures,
    OpenStreams,
    Pinning,
    Proc,
    Processes,
    cpu_seconds,
    free_port,
    gateway_python,
    git_describe,
    http_request,
    log,
    median,
    nginx_version,
    pss_mb,
    raise_nofile,
    rss_mb,
    run_wrk,
    snapshot_source,
    start_nginx_proxy,
    start_nginx_upstream,
    time_stream,
    wait_ready,
    workspace,
    wrk_version,
)
from rows import EMBEDDINGS_PATH, NO_LEDGER, REDIS_LEDGER, check_embeddings, ledger_cost, start_redis, verify_ledgers

RESPONSES_PATH, CHAT_PATH, MESSAGES_PATH = "/openai/responses", "/openai/chat/completions", "/v1/messages"
LITELLM_KEY = "sk-bench-master-key"
DEFAULT_LITELLM_BIN = "/tmp/litellm-venv/bin/litellm"
STREAM_DELTAS, STREAM_DELAY = 100, 0.01  # the streaming-latency upstream: ~1.1 s per answer
SMOKE_STREAM_DELTAS = 25  # ~0.3 s: the smoke run times 16 streams, and must stay within its minute
HOLD_DELAY = 2.0  # the RSS upstream: a chunk every 2 s, so 1000 streams stay open (100 deltas = minutes)

# The gateway's CPU per request over nginx proxy_pass's at c=16, one worker, as docs/benchmark.md measured it;
# a run past twice this fails (cpu_guard).
DOCUMENTED_CPU_RATIO = 10.0

# The performance targets (one worker).
TARGETS = {
    "rps_vs_nginx_c16": 0.18,
    "added_p50_ms_c16": 1.5,
    "added_p99_ms_c16": 4.0,
    "added_p50_ms_c1": 0.3,
    "tail_ratio_c64": 3.0,
    "rps_vs_litellm_c16": 5.0,
    "added_ttfb_ms": 1.0,
    "rss_idle_mb": 60.0,
    "rss_streams_mb": 200.0,
    "ledger_rps_cost_pct": 5.0,
}


@dataclass
class Target:
    name: str  # direct, nginx, gateway-1w, gateway-2w, litellm
    label: str
    port: int
    path: str
    auth: str | None = None
    proc: Proc | None = None
    body: bytes = REQUEST_BODY

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}{self.path}"


# ----------------------------------------------------------------------------------------------- starting


GATEWAY_SRC = REPO  # the tree whose `app` package runs: the work tree, or a `git archive` snapshot (--rev)


def gateway_argv() -> list[str]:
    """`python -m app` (= the `acedata-proxy` command) with the project's venv python."""
    return [gateway_python(), "-m", "app"]


def clean_env(src: Path | None = None, **extra: str) -> dict[str, str]:
    """This environment without any gateway setting that could skew a run, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROXY_", "ACEDATACLOUD_"))}
    env["PYTHONPATH"] = str(src or GATEWAY_SRC)  # ahead of the venv's editable install of the work tree
    env.update(extra)
    return env


def start_gateway(
    procs: Processes,
    name: str,
    upstream_port: int,
    workers: int,
    pinning: Pinning,
    src: Path | None = None,
    launcher: list[str] | None = None,
    **settings: str,
) -> tuple[Proc, int]:
    """`serve` with `--workers N` in front of the upstream, its data dir in the temp dir (data-<name>). `launcher`
    replaces `python -m app` (bench/no_ledger.py: the same command line without the usage ledger)."""
    port = free_port()
    env = clean_env(
        src, ACEDATACLOUD_API_TOKEN=UPSTREAM_TOKEN, ACEDATACLOUD_API_BASE_URL=f"http://{HOST}:{upstream_port}",
        PROXY_DATA_DIR=str(procs.workdir / f"data-{name}"), **settings,
    )  # fmt: skip
    argv = [*(launcher or gateway_argv()), "serve", "--host", HOST, "--port", str(port), "--workers", str(workers)]
    proc = procs.start(name, pinning.server(argv), env=env)  # cwd: an empty temp dir, so no stray .env is read
    wait_ready(proc, port, "/healthz", 40)
    return proc, port


def source_has(text: str) -> bool:
    """Whether the gateway code that runs (the work tree or a --rev snapshot) has `text` in its app package."""
    return any(text in path.read_text(errors="replace") for path in (GATEWAY_SRC / "app").rglob("*.py"))


def start_base_gateway(rev: str, procs: Processes, upstream_port: int, pinning: Pinning) -> Target:
    """One worker of the gateway as it was at `rev` (`git archive`), for the JSON load."""
    global GATEWAY_SRC
    own, GATEWAY_SRC = GATEWAY_SRC, snapshot_source(rev, procs.workdir)
    try:
        proc, port = start_gateway(procs, "gateway-base", upstream_port, 1, pinning)
    finally:
        GATEWAY_SRC = own
    label = f"gateway at {git_describe(rev).get('commit', rev)[:7]}, 1 worker"
    return Target("gateway-base", label, port, "/openai/responses", proc=proc)


def cpu_guard(summary: dict[str, dict[str, dict[str, float]]], failures: Failures) -> dict[str, float] | None:
    """The regression guard: the gateway's CPU per request over nginx's at c=16, in this run. CPU time, unlike
    throughput or latency, barely moves when the machine is busy, and a ratio taken in one run cancels the VM's
    drift, so only a real regression can pass twice the documented ratio."""
    row = summary.get("gateway-1w", {}).get("16")
    if row is None:
        return None
    ratio = row.get("cpu_x_nginx", float("nan"))
    guard = {"ratio": ratio, "documented": DOCUMENTED_CPU_RATIO, "limit": 2 * DOCUMENTED_CPU_RATIO}
    if not ratio <= guard["limit"]:  # a NaN (nothing measured) fails too
        failures.add(
            f"CPU per request at c=16 is {ratio:.1f}× nginx proxy_pass's, past twice the documented "
            f"{DOCUMENTED_CPU_RATIO:g}× (docs/benchmark.md)"
        )
    return guard


def start_fake_upstream(procs: Processes, name: str, deltas: int, delay: float, pinning: Pinning) -> tuple[Proc, int]:
    port = free_port()
    argv = [*gateway_argv(), "fake-upstream", "--host", HOST, "--port", str(port), "--token", UPSTREAM_TOKEN]
    argv += ["--deltas", str(deltas), "--delay", str(delay)]
    proc = procs.start(name, pinning.server(argv), env=clean_env())
    wait_ready(proc, port, "/openai/models", 30, headers={"Authorization": f"Bearer {UPSTREAM_TOKEN}"})
    return proc, port


def start_litellm(procs: Processes, binary: str, upstream_port: int, pinning: Pinning) -> tuple[Proc, int]:
    port = free_port()
    conf = procs.workdir / "litellm.yaml"
    conf.write_text(
        f"""model_list:
  - model_name: gpt-4.1
    litellm_params:
      model: openai/gpt-4.1
      api_base: http://{HOST}:{upstream_port}/v1
      api_key: {UPSTREAM_TOKEN}
general_settings:
  master_key: {LITELLM_KEY}
litellm_settings:
  telemetry: false
"""
    )
    # Offline start: no remote cost map, no telemetry; every address it is given is on loopback.
    env = clean_env(
        LITELLM_MASTER_KEY=LITELLM_KEY, LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_TELEMETRY="False",
        NO_PROXY="*", no_proxy="*",
    )  # fmt: skip
    argv = [binary, "--config", str(conf), "--host", HOST, "--port", str(port), "--num_workers", "1"]
    proc = procs.start("litellm", pinning.server(argv), env=env)
    wait_ready(proc, port, "/health/liveliness", 180)
    return proc, port


def litellm_version(binary: str) -> str | None:
    python = Path(binary).parent / "python"
    if not python.exists():
        return None
    code = "import importlib.metadata as m; print(m.version('litellm'))"
    result = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60, check=False)
    return result.stdout.strip() or None


def check_answer(target: Target) -> None:
    """One request before any load: it must be a 200 with a Responses (or chat, or embeddings) JSON object."""
    headers = {"Content-Type": "application/json"}
    if target.auth:
        headers["Authorization"] = target.auth
    status, body = http_request(target.port, "POST", target.path, target.body, headers, timeout=30)
    if status != 200:
        raise BenchError(f"{target.label}: HTTP {status}: {body[:300]!r}")
    try:
        answer = json.loads(body)
    except ValueError as exc:
        raise BenchError(f"{target.label}: answer is not JSON: {body[:200]!r}") from exc
    if target.path == EMBEDDINGS_PATH:
        check_embeddings(answer)
        return
    kind = answer.get("object", answer.get("type"))  # an Anthropic message has a `type`, no `object`
    if kind not in ("response", "chat.completion", "message"):
        raise BenchError(f"{target.label}: unexpected answer object {kind!r}")


# ------------------------------------------------------------------------------------------------- phases


def load_phase(args: argparse.Namespace, procs: Processes, pinning: Pinning, failures: Failures) -> dict[str, Any]:
    up_port, proxy_port = free_port(), free_port()
    up = start_nginx_upstream(procs, up_port, pinning)
    targets = [Target("direct", "direct (nginx upstream)", up_port, "/openai/responses", proc=up)]
    try:
        proxy = start_nginx_proxy(procs, proxy_port, up_port, pinning)
        targets.append(Target("nginx", "nginx proxy_pass", proxy_port, "/openai/responses", proc=proxy))
    except BenchError as exc:
        failures.add(f"nginx proxy did not start: {exc}")
    for workers in args.workers:
        name = f"gateway-{workers}w"
        try:
            proc, port = start_gateway(procs, name, up_port, workers, pinning)
        except BenchError as exc:
            failures.add(f"{name} did not start: {exc}")
            continue
        label = f"gateway, {workers} worker" + ("s" if workers > 1 else "")
        targets.append(Target(name, label, port, "/openai/responses", proc=proc))
        if workers != 1:
            continue
        # the same worker through chat completions and embeddings, in the same rounds (unless a --rev predates them)
        if source_has(f'"{CHAT_PATH}"'):
            targets.append(Target(f"{name}-chat", f"{label}, chat completions", port, CHAT_PATH, proc=proc,
                                  body=CHAT_BODY))  # fmt: skip
        if source_has(f'"{MESSAGES_PATH}"'):
            targets.append(Target(f"{name}-messages", f"{label}, Anthropic messages", port, MESSAGES_PATH, proc=proc,
                                  body=MESSAGES_BODY))  # fmt: skip
        if source_has(f'"{EMBEDDINGS_PATH}"'):
            targets.append(Target(f"{name}-embeddings", f"{label}, embeddings", port, EMBEDDINGS_PATH, proc=proc,
                                  body=EMBEDDINGS_BODY))  # fmt: skip
    redis = None
    if 1 in args.workers and (GATEWAY_SRC / "app" / "ledger").is_dir():  # a --rev from before the ledger has none
        ledger_rows, redis = ledger_targets(args, procs, up_port, pinning, failures)
        targets += ledger_rows
    if args.compare:  # an earlier commit's gateway in the same rounds: before/after ratios free of the VM's drift
        try:
            targets.append(start_base_gateway(args.compare, procs, up_port, pinning))
        except BenchError as exc:
            failures.add(f"gateway at {args.compare} did not start: {exc}")
    if args.httpx:  # the same gateway with httpx as its upstream client: what the custom client buys
        try:
            proc, port = start_gateway(procs, "gateway-httpx", up_port, 1, pinning, PROXY_UPSTREAM_CLIENT="httpx")
            label = "gateway, 1 worker, httpx client"
            targets.append(Target("gateway-httpx", label, port, "/openai/responses", proc=proc))
        except BenchError as exc:
            failures.add(f"gateway-httpx did not start: {exc}")
    extra: dict[str, Any] = {}
    if args.litellm:
        extra["litellm"] = {"version": litellm_version(args.litellm_bin)}
        if not Path(args.litellm_bin).exists():
            extra["litellm"]["skipped"] = f"{args.litellm_bin} not found (install it: see bench/README.md)"
            log("LiteLLM skipped: " + extra["litellm"]["skipped"])
        else:
            try:
                started = time.monotonic()
                proc, port = start_litellm(procs, args.litellm_bin, up_port, pinning)
                extra["litellm"]["startup_s"] = round(time.monotonic() - started, 1)
                targets.append(Target("litellm", "LiteLLM proxy", port, "/v1/responses", f"Bearer {LITELLM_KEY}", proc))
            except BenchError as exc:  # optional comparison: report it, go on without it
                extra["litellm"]["skipped"] = f"did not start: {exc}"
                log("LiteLLM skipped: " + str(exc))

    live: list[Target] = []
    for target in targets:
        try:
            check_answer(target)
            live.append(target)
        except (BenchError, OSError) as exc:
            failures.add(f"{target.label} answered wrongly: {exc}")
    rss_before = {t.name: round(rss_mb(t.proc.pid), 1) for t in live if t.proc is not None}

    # the smoke run warms each process once (the routes sharing a worker each had their check request), to stay
    # within its minute; a full run warms every target
    warm = live if not args.smoke else [t for i, t in enumerate(live) if all(o.proc is not t.proc for o in live[:i])]
    log(f"warm-up: {', '.join(t.name for t in warm)}")
    for target in warm:
        with contextlib.suppress(BenchError, subprocess.TimeoutExpired):
            run_wrk(pinning, target.url, 16, 1, body=target.body, auth=target.auth)

    points: list[dict[str, Any]] = []
    for round_no in range(1, args.rounds + 1):
        for conc in args.concurrency:
            for target in live:  # interleaved: A, B, C, then again A, B, C ...
                cpu_before = cpu_seconds(target.proc.pid) if target.proc is not None else 0.0
                try:
                    result = run_wrk(pinning, target.url, conc, args.duration, body=target.body, auth=target.auth)
                except (BenchError, subprocess.TimeoutExpired) as exc:
                    failures.add(f"{target.label} c={conc} round {round_no}: {exc}")
                    continue
                cpu = cpu_seconds(target.proc.pid) - cpu_before if target.proc is not None else 0.0
                if not result.ok:
                    failures.add(f"{target.label} c={conc} round {round_no}: {result.problems()}")
                point = {"target": target.name, "concurrency": conc, "round": round_no, **asdict(result)}
                point["cpu_us_per_req"] = cpu * 1e6 / max(1, result.requests)
                points.append(point)
                log(
                    f"round {round_no} c={conc:<3} {target.name:<11} {result.rps:>9.0f} rps  "
                    f"p50 {result.p50_ms:7.3f} ms  p99 {result.p99_ms:7.3f} ms"
                )
    rss_after = {t.name: round(rss_mb(t.proc.pid), 1) for t in live if t.proc is not None}
    groups: dict[str, list[str]] = {}
    for target in live:
        if target.proc is not None and target.name.startswith(("gateway", "litellm")):
            procs.stop(target.proc)  # SIGTERM: the ledger writes its last batch on the way out
            groups.setdefault(target.proc.name, []).append(target.name)
    if any(name in groups for name in (NO_LEDGER, REDIS_LEDGER)):
        extra["ledger"] = verify_ledgers(procs.workdir, points, groups, redis[1] if redis else None, failures)
    if redis:
        procs.stop(redis[0])
    return {
        "targets": [{"name": t.name, "label": t.label, "path": t.path} for t in live],
        "points": points,
        "rss_mb_before_load": rss_before,
        "rss_mb_after_load": rss_after,
        **extra,
    }


def ledger_targets(
    args: argparse.Namespace, procs: Processes, up_port: int, pinning: Pinning, failures: Failures
) -> tuple[list[Target], tuple[Proc, int] | None]:
    """Beside gateway-1w (its ledger in SQLite): one worker with the ledger a no-op (bench/no_ledger.py) and, in a
    full run with redis-server installed, one with the ledger in Redis; and that Redis, to read back."""
    out, redis = [], None
    launcher = [gateway_python(), str(BENCH_DIR / "no_ledger.py")]
    try:
        proc, port = start_gateway(procs, NO_LEDGER, up_port, 1, pinning, launcher=launcher)
        out.append(Target(NO_LEDGER, "gateway, 1 worker, no ledger", port, RESPONSES_PATH, proc=proc))
    except BenchError as exc:
        failures.add(f"{NO_LEDGER} did not start: {exc}")
    if args.smoke:
        return out, None
    try:
        redis = start_redis(procs, pinning)
        if redis:
            url = f"redis://{HOST}:{redis[1]}/0"
            proc, port = start_gateway(procs, REDIS_LEDGER, up_port, 1, pinning, PROXY_REDIS_URL=url)
            out.append(Target(REDIS_LEDGER, "gateway, 1 worker, ledger in Redis", port, RESPONSES_PATH, proc=proc))
    except BenchError as exc:
        failures.add(f"{REDIS_LEDGER} did not start: {exc}")
    return out, redis


def summarize_load(load: dict[str, Any], concurrencies: list[int]) -> dict[str, dict[str, dict[str, float]]]:
    summary: dict[str, dict[str, dict[str, float]]] = {}
    for target in load["targets"]:
        name = target["name"]
        for conc in concurrencies:
            pts = [p for p in load["points"] if p["target"] == name and p["concurrency"] == conc]
            if not pts:
                continue
            summary.setdefault(name, {})[str(conc)] = {
                "rps": median([p["rps"] for p in pts]),
                "p50_ms": median([p["p50_ms"] for p in pts]),
                "p99_ms": median([p["p99_ms"] for p in pts]),
                "cpu_us_per_req": median([p.get("cpu_us_per_req", float("nan")) for p in pts]),
                "rounds": len(pts),
            }
    for by_conc in summary.values():
        for conc, row in by_conc.items():
            direct = summary.get("direct", {}).get(conc)
            nginx = summary.get("nginx", {}).get(conc)
            litellm = summary.get("litellm", {}).get(conc)
            if direct:
                row["x_direct"] = row["rps"] / direct["rps"]
                row["added_p50_ms"] = row["p50_ms"] - direct["p50_ms"]
                row["added_p99_ms"] = row["p99_ms"] - direct["p99_ms"]
            if nginx:
                row["x_nginx"] = row["rps"] / nginx["rps"]
                row["cpu_x_nginx"] = row["cpu_us_per_req"] / nginx["cpu_us_per_req"]
            if litellm:
                row["x_litellm"] = row["rps"] / litellm["rps"]
    return summary


StreamTarget = tuple[str, int, str | None, str, bytes]  # name, port, auth, path, body


async def _stream_runs(targets: list[StreamTarget], runs: int) -> dict[str, list[dict[str, float]]]:
    out: dict[str, list[dict[str, float]]] = {target[0]: [] for target in targets}
    for _, port, auth, path, body in targets:  # warm-up: one stream each (opens the gateway's upstream connection)
        await time_stream(port, path, auth, body=body)
    for _ in range(runs):
        for name, port, auth, path, body in targets:
            timing = await time_stream(port, path, auth, body=body)
            out[name].append(asdict(timing))
    return out


def stream_phase(args: argparse.Namespace, procs: Processes, pinning: Pinning, failures: Failures) -> dict[str, Any]:
    deltas = SMOKE_STREAM_DELTAS if args.smoke else STREAM_DELTAS
    fake, fake_port = start_fake_upstream(procs, "fake-upstream-stream", deltas, STREAM_DELAY, pinning)
    targets: list[StreamTarget] = [("direct", fake_port, f"Bearer {UPSTREAM_TOKEN}", RESPONSES_PATH, STREAM_BODY)]
    started: list[Proc] = [fake]
    for workers in args.workers:
        try:
            proc, port = start_gateway(procs, f"gateway-{workers}w-stream", fake_port, workers, pinning)
        except BenchError as exc:
            failures.add(f"gateway-{workers}w (streaming) did not start: {exc}")
            continue
        started.append(proc)
        targets.append((f"gateway-{workers}w", port, None, RESPONSES_PATH, STREAM_BODY))
        if workers == 1 and source_has(f'"{CHAT_PATH}"'):
            targets.append((f"gateway-{workers}w-chat", port, None, CHAT_PATH, CHAT_STREAM_BODY))
        if workers == 1 and source_has(f'"{MESSAGES_PATH}"'):
            targets.append((f"gateway-{workers}w-messages", port, None, MESSAGES_PATH, MESSAGES_STREAM_BODY))
    try:
        runs = asyncio.run(_stream_runs(targets, args.stream_runs))
    except (BenchError, OSError, TimeoutError) as exc:
        failures.add(f"streaming runs failed: {exc}")
        runs = {}
    finally:
        for proc in reversed(started):
            procs.stop(proc)
    summary: dict[str, dict[str, float]] = {}
    for name, timings in runs.items():
        bad = [t for t in timings if t["status"] != 200]
        if bad:
            failures.add(f"streams through {name}: {len(bad)} answered HTTP {bad[0]['status']}")
        summary[name] = {
            "ttfb_ms": median([t["ttfb_ms"] for t in timings]),
            "total_ms": median([t["total_ms"] for t in timings]),
            "body_bytes": median([t["body_bytes"] for t in timings]),
            "runs": len(timings),
        }
    direct = summary.get("direct")
    for name, row in summary.items():
        if direct and name != "direct":
            row["added_ttfb_ms"] = row["ttfb_ms"] - direct["ttfb_ms"]
            row["added_total_ms"] = row["total_ms"] - direct["total_ms"]
    return {"deltas": deltas, "delay_s": STREAM_DELAY, "summary": summary, "runs": runs}


async def _rss_under_streams(pid: int, port: int, count: int) -> dict[str, Any]:
    # warm-up: plain JSON answers and a few streams that the client drops after the first bytes
    loop = asyncio.get_running_loop()
    for _ in range(200):
        status, _ = await loop.run_in_executor(
            None, http_request, port, "POST", "/openai/responses", REQUEST_BODY, {"Content-Type": "application/json"}
        )
        if status != 200:
            raise BenchError(f"warm-up request answered HTTP {status}")
    warm = OpenStreams(port, "/openai/responses", 10)
    await warm.open(30)
    await warm.close()
    if warm.failures:
        raise BenchError(f"warm-up streams failed: {warm.failures[0]}")
    await asyncio.sleep(1.5)
    idle, idle_pss = rss_mb(pid), pss_mb(pid)
    streams = OpenStreams(port, "/openai/responses", count)
    open_s = await streams.open(timeout=90)
    samples, pss_samples = [], []
    for _ in range(5):
        samples.append(rss_mb(pid))
        pss_samples.append(pss_mb(pid))
        await asyncio.sleep(0.2)
    await streams.close()
    await asyncio.sleep(2.0)
    after = rss_mb(pid)
    return {
        "idle_mb": round(idle, 1),
        "streams_mb": round(max(samples), 1),
        "after_close_mb": round(after, 1),
        "idle_pss_mb": round(idle_pss, 1),
        "streams_pss_mb": round(max(pss_samples), 1),
        "streams_requested": count,
        "streams_open": streams.opened,
        "open_seconds": round(open_s, 2),
        "stream_failures": streams.failures[:5],
    }


def rss_phase(args: argparse.Namespace, procs: Processes, pinning: Pinning, failures: Failures) -> dict[str, Any]:
    fake, fake_port = start_fake_upstream(procs, "fake-upstream-hold", STREAM_DELTAS, HOLD_DELAY, pinning)
    out: dict[str, Any] = {}
    try:
        for workers in args.workers:
            name = f"gateway-{workers}w"
            try:
                proc, port = start_gateway(procs, f"{name}-rss", fake_port, workers, pinning)
            except BenchError as exc:
                failures.add(f"{name} (RSS) did not start: {exc}")
                continue
            try:
                time.sleep(0.5)
                fresh = rss_mb(proc.pid)
                row = asyncio.run(_rss_under_streams(proc.pid, port, args.streams))
                row["fresh_mb"] = round(fresh, 1)
                row["processes"] = workers + (1 if workers > 1 else 0)
                out[name] = row
                log(f"RSS {name}: idle {row['idle_mb']} MB, {row['streams_open']} streams {row['streams_mb']} MB")
                if row["streams_open"] < args.streams:
                    failures.add(f"{name}: only {row['streams_open']}/{args.streams} streams opened: "
                                 f"{row['stream_failures'][:1]}")  # fmt: skip
                if not proc.alive():
                    failures.add(f"{name} died during the RSS run:\n{proc.log_tail()}")
            except (BenchError, OSError, TimeoutError) as exc:
                failures.add(f"{name} RSS run failed: {exc}")
            finally:
                procs.stop(proc)
    finally:
        procs.stop(fake)
    return out


# ------------------------------------------------------------------------------------------------- report


def target_checks(results: dict[str, Any]) -> list[dict[str, Any]]:
    s = results.get("load_summary", {})
    g = s.get("gateway-1w", {})
    stream = results.get("streaming", {}).get("summary", {}).get("gateway-1w", {})
    rss = results.get("rss", {}).get("gateway-1w", {})
    n_streams = rss.get("streams_requested", 0)

    def check(what: str, value: float | None, limit: float, higher_is_better: bool, fmt: str) -> dict[str, Any]:
        if value is None:
            return {"what": what, "value": None, "limit": limit, "ok": None, "text": "not measured"}
        ok = value >= limit if higher_is_better else value <= limit
        return {"what": what, "value": value, "limit": limit, "ok": ok, "text": fmt.format(value)}

    c16, c1, c64 = g.get("16", {}), g.get("1", {}), g.get("64", {})
    lite = s.get("litellm", {}).get("16")
    tail = c64["added_p99_ms"] / c64["added_p50_ms"] if c64.get("added_p50_ms", 0) > 0 else None
    ledger = ledger_cost(results)
    checks = [
        check("c16 RPS ≥ 0.18 × nginx", c16.get("x_nginx"), TARGETS["rps_vs_nginx_c16"], True, "{:.3f}×"),
        check("c16 added p50 ≤ 1.5 ms", c16.get("added_p50_ms"), TARGETS["added_p50_ms_c16"], False, "{:.3f} ms"),
        check("c16 added p99 ≤ 4 ms", c16.get("added_p99_ms"), TARGETS["added_p99_ms_c16"], False, "{:.3f} ms"),
        check("c1 added p50 ≤ 0.3 ms", c1.get("added_p50_ms"), TARGETS["added_p50_ms_c1"], False, "{:.3f} ms"),
        check(
            "c16 RPS ≥ 5 × LiteLLM",
            c16.get("x_litellm") if lite else None,
            TARGETS["rps_vs_litellm_c16"],
            True,
            "{:.1f}×",
        ),
        check("c64 added p99 ≤ 3 × added p50", tail, TARGETS["tail_ratio_c64"], False, "{:.2f}×"),
        check("stream added TTFB ≤ 1 ms", stream.get("added_ttfb_ms"), TARGETS["added_ttfb_ms"], False, "{:.3f} ms"),
        check("RSS idle ≤ 60 MB", rss.get("idle_mb"), TARGETS["rss_idle_mb"], False, "{:.1f} MB"),
        check(
            f"RSS with {n_streams} open streams ≤ 200 MB" if n_streams != 1000 else "RSS with 1000 streams ≤ 200 MB",
            rss.get("streams_mb"),
            TARGETS["rss_streams_mb"],
            False,
            "{:.1f} MB",
        ),
        check(
            "usage ledger costs ≤ 5% RPS" + (f" (c={ledger['concurrency']})" if ledger else ""),
            ledger["rps_pct"] if ledger else None,
            TARGETS["ledger_rps_cost_pct"],
            False,
            "{:.1f}%",
        ),
    ]
    return checks


def _f(value: float | None, digits: int = 2, suffix: str = "") -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}{suffix}"


def _source(meta: dict[str, Any]) -> str:
    src = meta.get("gateway_source", {})
    text = f"{src.get('tree', '?')} at commit {src.get('commit') or '?'}"
    if src.get("app_dirty"):
        text += " (app/ had uncommitted changes)"
    return text


def render_markdown(results: dict[str, Any], docs: bool) -> str:
    meta = results["meta"]
    lines: list[str] = []
    if docs:
        lines += [
            "# Benchmark",
            "",
            "Generated by `bench/run.py` (see `bench/README.md` for what each figure means and how to rerun it).",
            "",
        ]
    lines += [
        f"- date: {meta['date']}",
        f"- command: `{meta['command']}`",
        f"- machine: {meta['nproc']} cores ({meta['cpu']}), {meta['kernel']}, Python {meta['python']}",
        f"- tools: nginx {meta['nginx']}, {meta['wrk']}"
        + (f", LiteLLM {meta['litellm']}" if meta.get("litellm") else ""),
        f"- gateway code: {_source(meta)}",
        f"- layout: {meta['layout']}",
        *(
            [f"- machine load when the run began (1/5/15 min): {' / '.join(meta['loadavg_at_start'])}"]
            if meta.get("loadavg_at_start")
            else []
        ),
        f"- load: wrk -t1 -c<N>, {meta['duration_s']} s per point, {meta['rounds']} interleaved round(s), medians; "
        f"POST {REQUEST_BODY.decode()} (upstream answers a {meta['upstream_body_bytes']}-byte Responses JSON)",
        "",
    ]
    summary = results.get("load_summary", {})
    labels = {t["name"]: t["label"] for t in results.get("load", {}).get("targets", [])}
    if summary.get("gateway-1w", {}).get("16"):
        row = summary["gateway-1w"]["16"]
        lines += [
            "**Headline (one worker, concurrency 16):** "
            f"{_f(row['rps'], 0)} RPS = {_f(row.get('x_nginx'), 3)}× nginx proxy_pass, "
            f"{_f(row.get('x_direct'), 3)}× direct; added latency p50 {_f(row.get('added_p50_ms'), 3)} ms, "
            f"p99 {_f(row.get('added_p99_ms'), 3)} ms"
            + (f"; {_f(row.get('x_litellm'), 1)}× LiteLLM" if row.get("x_litellm") else "")
            + ".",
            "",
        ]
    lines += [
        "## JSON requests",
        "",
        "| target | conc. | RPS | × direct | × nginx | p50 ms | p99 ms | added p50 ms | added p99 ms "
        "| CPU µs/req | CPU × nginx |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for conc in results["meta"]["concurrency"]:
        for name, by_conc in summary.items():
            row = by_conc.get(str(conc))
            if not row:
                continue
            lines.append(
                f"| {labels.get(name, name)} | {conc} | {_f(row['rps'], 0)} | {_f(row.get('x_direct'), 3)} | "
                f"{_f(row.get('x_nginx'), 3)} | {_f(row['p50_ms'], 3)} | {_f(row['p99_ms'], 3)} | "
                f"{_f(row.get('added_p50_ms'), 3)} | {_f(row.get('added_p99_ms'), 3)} | "
                f"{_f(row.get('cpu_us_per_req'), 1)} | {_f(row.get('cpu_x_nginx'), 2)} |"
            )
    stream = results.get("streaming", {})
    if stream.get("summary"):
        lines += [
            "",
            f"## Streaming (fake upstream: {stream['deltas']} deltas, {stream['delay_s'] * 1000:g} ms apart; "
            f"median of {results['meta']['stream_runs']} streams each)",
            "",
            "| path | TTFB ms | total ms | added TTFB ms | added total ms |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, row in stream["summary"].items():
            label = "direct (fake upstream)" if name == "direct" else labels.get(name, name)
            lines.append(
                f"| {label} | {_f(row['ttfb_ms'], 3)} | {_f(row['total_ms'], 1)} | "
                f"{_f(row.get('added_ttfb_ms'), 3)} | {_f(row.get('added_total_ms'), 3)} |"
            )
    rss = results.get("rss", {})
    if rss:
        lines += [
            "",
            "## Memory (VmRSS, summed over the gateway's processes)",
            "",
            "| gateway | processes | fresh MB | idle after warm-up MB | with N open streams MB | N open | "
            "after closing MB | PSS idle / streams MB |",
            "|---|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for name, row in rss.items():
            lines.append(
                f"| {labels.get(name, name)} | {row['processes']} | {_f(row['fresh_mb'], 1)} | "
                f"{_f(row['idle_mb'], 1)} | {_f(row['streams_mb'], 1)} | {row['streams_open']}/"
                f"{row['streams_requested']} | {_f(row['after_close_mb'], 1)} | "
                f"{_f(row.get('idle_pss_mb'), 1)} / {_f(row.get('streams_pss_mb'), 1)} |"
            )
        after = results.get("load", {}).get("rss_mb_after_load", {})
        extra = [f"{labels.get(k, k)} {v} MB" for k, v in after.items() if k.startswith(("gateway", "litellm"))]
        if extra:
            lines += ["", "RSS right after the JSON load runs: " + ", ".join(extra) + "."]
    checks = results.get("checks", [])
    if checks:
        lines += ["", "## Targets (one worker)", "", "| target | measured | met |", "|---|---:|:---:|"]
        for c in checks:
            met = {True: "yes", False: "**no**", None: "–"}[c["ok"]]
            lines.append(f"| {c['what']} | {c['text']} | {met} |")
    route_rows = rows.section(results)
    if route_rows:
        lines += ["", *route_rows]
    if results.get("scaling"):
        lines += ["", *scaling.section(results["scaling"], meta.get("nproc"))]
    lite = results.get("load", {}).get("litellm", {})
    if lite.get("skipped"):
        lines += ["", f"LiteLLM: skipped ({lite['skipped'].splitlines()[0]})."]
    if results.get("failures"):
        lines += ["", "## Failures", ""] + [f"- {f.splitlines()[0]}" for f in results["failures"]]
    if docs:
        lines += [
            "",
            "## Reading these figures",
            "",
            "- *direct* at concurrency ≥ 16 is limited by wrk itself (one core), so `× direct` understates every "
            "target alike; `× nginx` is the fairer ratio. Direct's p99 of a few ms is scheduling noise on this VM "
            "(wrk saturates its core), which is why an *added p99* can come out negative.",
            "- Every server, the upstream included, shares CPU 1, so the two-worker gateway cannot gain CPU here: "
            "its row shows there is no delayed-ACK stall with workers (no ~40 ms added), and what two processes "
            "taking turns on one core cost. "
            + (
                "*More cores* above runs them unpinned, where they can scale."
                if results.get("scaling")
                else "docs/performance-steps.md has an unpinned run where they can scale (`--scaling` measures it)."
            ),
            "- A CPU-bound target's latency at concurrency N is mostly queueing: p50 ≈ N / RPS.",
        ]
    if docs and results.get("chart"):
        lines += ["", "![RPS and added p50 by target and concurrency](benchmark.png)"]
    streams = BENCH_DIR / "results" / "streams.json"
    if docs and streams.exists():  # bench/streams.py's latest full run
        import render_streams

        lines += ["", render_streams.section(json.loads(streams.read_text()))]
    return "\n".join(lines) + "\n"


def machine_meta(args: argparse.Namespace, pinning: Pinning) -> dict[str, Any]:
    cpu = "?"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {}
    for package in ("acedata-proxy", "uvicorn", "httpx", "httpcore", "fastapi", "pydantic", "uvloop", "httptools"):
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[package] = importlib.metadata.version(package)
    if pinning.client_cpu is not None:
        layout = (
            f"wrk and the bench client on CPU {pinning.client_cpu}, "
            f"every server (upstream included) on CPU {pinning.server_cpu}"
        )
    else:
        layout = "no CPU pinning"
    from harness import RESPONSES_JSON, embeddings_json

    return {
        "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "command": " ".join(shlex.quote(a) for a in ["python", "bench/run.py", *sys.argv[1:]]),
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "kernel": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "nginx": nginx_version(),
        "wrk": wrk_version(),
        "versions": versions,
        "layout": layout,
        "smoke": args.smoke,
        "rounds": args.rounds,
        "duration_s": args.duration,
        "concurrency": args.concurrency,
        "workers": args.workers,
        "streams": args.streams,
        "stream_runs": args.stream_runs,
        "upstream_body_bytes": len(RESPONSES_JSON),
        "upstream_embeddings_bytes": len(embeddings_json()),
        "loadavg_at_start": Path("/proc/loadavg").read_text().split()[:3],
    }


def make_chart(results_path: Path, png: Path, plot_python: str | None) -> bool:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        if plot_python:
            result = subprocess.run(
                [plot_python, str(BENCH_DIR / "plot.py"), str(results_path), str(png)],
                capture_output=True, text=True, timeout=120, check=False,
            )  # fmt: skip
            if result.returncode == 0:
                return True
            log(f"chart failed with {plot_python}: {result.stderr.strip()[-400:]}")
            return False
        log("matplotlib is not importable (and no --plot-python): no chart")
        return False
    from plot import plot, plot_streams

    data = json.loads(results_path.read_text())
    (plot if "load_summary" in data else plot_streams)(data, png)
    return True


# --------------------------------------------------------------------------------------------------- main


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="1 round, 1 s, c=16, 50 streams, no LiteLLM; < 60 s")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 3; smoke 1)")
    parser.add_argument("--duration", type=int, help="seconds per wrk point (default 5; smoke 1)")
    parser.add_argument("--concurrency", type=_ints, help="comma-separated (default 1,16,64; smoke 16)")
    parser.add_argument("--workers", type=_ints, default=[1, 2], help="gateway worker counts (default 1,2)")
    parser.add_argument("--litellm", action="store_true", help="also measure LiteLLM's proxy (not in smoke mode)")
    parser.add_argument("--no-httpx", dest="httpx", action="store_false",
                        help="skip the gateway with PROXY_UPSTREAM_CLIENT=httpx (JSON load only)")  # fmt: skip
    parser.add_argument("--litellm-bin", default=os.environ.get("LITELLM_BIN", DEFAULT_LITELLM_BIN))
    parser.add_argument("--streams", type=int, help="concurrent open streams for the RSS figure (default 1000)")
    parser.add_argument("--stream-runs", type=int, help="timed streams per path (default 8; smoke 3)")
    parser.add_argument("--plot-python", default=os.environ.get("BENCH_PLOT_PYTHON"),
                        help="a python with matplotlib, when this one has none (env BENCH_PLOT_PYTHON)")  # fmt: skip
    parser.add_argument("--no-pin", action="store_true", help="do not pin wrk and servers to separate cores")
    parser.add_argument("--no-docs", action="store_true", help="do not write docs/benchmark.md and .png")
    parser.add_argument("--rev", help="run the gateway from this git revision (a `git archive` snapshot) instead "
                        "of the work tree, e.g. HEAD")  # fmt: skip
    parser.add_argument("--compare", metavar="REV", help="also run one worker of the gateway at REV (JSON load), "
                        "in the same rounds")  # fmt: skip
    parser.add_argument("--render-only", action="store_true",
                        help="only rewrite docs/benchmark.md and .png from bench/results/latest.json")  # fmt: skip
    parser.add_argument("--scaling", action="store_true", help="also measure --scaling-workers unpinned, wrk and "
                        "the upstream pinned to one core (not in smoke mode)")  # fmt: skip
    parser.add_argument("--scaling-workers", type=_ints, default=[1, 2], help="worker counts for --scaling (1,2)")
    parser.add_argument("--keep-temp", action="store_true", help="keep the temp dir (configs and server logs)")
    args = parser.parse_args(argv)
    smoke = args.smoke
    args.rounds = args.rounds or (1 if smoke else 3)
    args.duration = args.duration or (1 if smoke else 5)
    args.concurrency = args.concurrency or ([16] if smoke else [1, 16, 64])
    args.streams = args.streams or (50 if smoke else 1000)
    args.stream_runs = args.stream_runs or (3 if smoke else 8)
    if smoke:
        args.litellm = args.scaling = False
        args.no_docs = True
    return args


STREAMS_SECTION = "\n## Stream capacity"  # bench/streams.py's section, measured on its own


def write_docs(markdown: str) -> None:
    """docs/benchmark.md from this run. Without bench/results/streams.json here (results stay out of git), the
    stream-capacity section the file already had follows, as it is."""
    path = REPO / "docs" / "benchmark.md"
    old = path.read_text() if path.exists() else ""
    at = old.find(STREAMS_SECTION)
    kept = old[at:] if at >= 0 and STREAMS_SECTION not in markdown else ""
    path.write_text(markdown.rstrip("\n") + "\n" + kept)


def render_only(args: argparse.Namespace) -> int:
    """Rewrite docs/benchmark.md (and the chart) from bench/results/latest.json, without measuring."""
    json_path = BENCH_DIR / "results" / "latest.json"
    results = json.loads(json_path.read_text())
    results["chart"] = make_chart(json_path, REPO / "docs" / "benchmark.png", args.plot_python)
    write_docs(render_markdown(results, docs=True))
    print(render_markdown(results, docs=False))
    return 0


def main(argv: list[str] | None = None) -> int:
    global GATEWAY_SRC
    args = parse_args(argv)
    if args.render_only:
        return render_only(args)
    began = time.monotonic()
    nofile = raise_nofile(max(8192, 4 * args.streams + 1024))
    pinning = Pinning.choose(not args.no_pin)
    pinning.pin_self()
    failures = Failures()
    results: dict[str, Any] = {"meta": machine_meta(args, pinning)}
    results["meta"]["nofile"] = nofile
    try:
        with workspace(keep=args.keep_temp) as (workdir, procs):
            if args.rev:
                GATEWAY_SRC = snapshot_source(args.rev, workdir)
            results["meta"]["gateway_source"] = {
                "tree": f"git archive {args.rev}" if args.rev else "work tree",
                **git_describe(args.rev),
            }
            results["load"] = load_phase(args, procs, pinning, failures)
            results["load_summary"] = summarize_load(results["load"], args.concurrency)
            results["cpu_guard"] = cpu_guard(results["load_summary"], failures)
            results["streaming"] = stream_phase(args, procs, pinning, failures)
            results["rss"] = rss_phase(args, procs, pinning, failures)
            if args.scaling:
                results["scaling"] = scaling.scaling_phase(args, procs, pinning, failures, start_gateway)
    except KeyboardInterrupt:
        log("interrupted; every server was stopped")
        return 130
    except BenchError as exc:  # the upstream itself did not start: nothing to measure
        failures.add(str(exc))
    if results["meta"].get("litellm") is None:
        results["meta"]["litellm"] = results.get("load", {}).get("litellm", {}).get("version")
    results["checks"] = target_checks(results)
    results["failures"] = failures.items
    results["meta"]["elapsed_s"] = round(time.monotonic() - began, 1)

    out_dir = BENCH_DIR / "results"
    out_dir.mkdir(exist_ok=True)
    # latest.json is what docs/ were drawn from; an experiment (--no-docs) keeps its own file
    name = (
        "smoke.json" if args.smoke else "latest.json" if not args.no_docs else time.strftime("run-%Y%m%d-%H%M%S.json")
    )
    json_path = out_dir / name
    json_path.write_text(json.dumps(results, indent=1) + "\n")
    if not args.no_docs:
        png = REPO / "docs" / "benchmark.png"
        results["chart"] = make_chart(json_path, png, args.plot_python)
        json_path.write_text(json.dumps(results, indent=1) + "\n")
        (REPO / "docs").mkdir(exist_ok=True)
        write_docs(render_markdown(results, docs=True))
    print(render_markdown(results, docs=False))
    log(f"results: {json_path.relative_to(REPO)}; {results['meta']['elapsed_s']} s")
    if failures.items:
        log(f"{len(failures.items)} failure(s)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
