"""Profile the gateway under load: nginx upstream + `acedata-proxy serve` (one worker), wrk at concurrency 16,
py-spy sampling the gateway meanwhile. Prints where the time goes: by package (self time of the innermost
Python frame) and by stage (inclusive time of the functions that mark each stage).

    python3 -m venv /tmp/bench-venv && /tmp/bench-venv/bin/pip install py-spy
    .venv/bin/python bench/profile_gateway.py [--seconds 10] [--concurrency 16] [--native] [--speedscope out.json]
    .venv/bin/python bench/profile_gateway.py --streams 1000   # relaying streams instead (bench/streams.py's load)

py-spy is not a project dependency: pass --py-spy PATH, set PY_SPY, or have it on PATH or in /tmp/bench-venv.
It needs ptrace rights over the gateway (root, or CAP_SYS_PTRACE in a container).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run
from harness import (
    BenchError,
    Pinning,
    free_port,
    log,
    run_wrk,
    snapshot_source,
    start_nginx_upstream,
    workspace,
)

# Who owns a sample: walking from the innermost frame outwards, the first frame that matches a stage's markers.
# Generic frames (asyncio, contextlib, typing, ...) match none, so they count for whoever called them: anyio's
# many asyncio.current_task() calls are the upstream client's cost, a task switch in our endpoint is ours.
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("access log (logging, formatter)", ("ObserveMiddleware._log", "logging/__init__.py", "app/logs.py")),
    ("body validation (pydantic, model check)", ("parse_body", "pydantic")),
    ("metrics (prometheus_client)", ("prometheus_client", "app/metrics.py")),
    ("upstream client (httpx, httpcore, anyio, h11)", ("httpx/", "httpcore/", "anyio/", "h11/", "sniffio/")),
    ("our endpoint and middleware (app/, rest)", ("app/",)),
    ("server (uvicorn protocol, httptools callbacks)", ("uvicorn/", "httptools/")),
]
IDLE_OR_C = "event loop itself (uvloop C code, syscalls, idle)"


def find_py_spy(explicit: str | None) -> str | None:
    for candidate in (explicit, os.environ.get("PY_SPY"), shutil.which("py-spy"), "/tmp/bench-venv/bin/py-spy"):
        if candidate and Path(candidate).exists():
            return candidate
    return None


def frame_file(frame: str) -> str:
    # "func (path/file.py:123)" -> "path/file.py"
    if frame.endswith(")") and " (" in frame:
        return frame.rsplit(" (", 1)[1][:-1].rsplit(":", 1)[0]
    return frame


def summarize(raw: Path, top: int = 25) -> dict[str, object]:
    stacks: list[tuple[list[str], int]] = []
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    total = sum(count for _, count in stacks) or 1

    by_package: collections.Counter[str] = collections.Counter()
    self_frames: collections.Counter[str] = collections.Counter()
    stage_exclusive: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    for frames, count in stacks:
        leaf = frames[-1]
        self_frames[leaf] += count
        path = frame_file(leaf)
        parts = path.split("/")
        package = parts[0] if len(parts) > 1 else path
        if "site-packages" in path:
            package = path.split("site-packages/", 1)[1].split("/", 1)[0]
        by_package[package] += count
        # exclusive stage: walk from the leaf up, first frame that matches any stage's markers
        stage = IDLE_OR_C
        for frame in reversed(frames):
            hit = next((name for name, marks in STAGES if any(mark in frame for mark in marks)), None)
            if hit:
                stage = hit
                break
        stage_exclusive[stage] += count
        seen = set()
        for frame in frames:
            name = frame.split(" (", 1)[0] + " (" + frame_file(frame).split("site-packages/")[-1] + ")"
            if name not in seen:
                inclusive[name] += count
                seen.add(name)

    def pct(counter: collections.Counter[str], n: int) -> list[tuple[str, float]]:
        return [(key, round(100 * value / total, 1)) for key, value in counter.most_common(n)]

    return {
        "samples": total,
        "stages_exclusive_pct": pct(stage_exclusive, 20),
        "packages_self_pct": pct(by_package, 15),
        "top_self_frames_pct": pct(self_frames, top),
        "top_inclusive_pct": pct(inclusive, top + 15),
    }


def profile_streams(args: argparse.Namespace, py_spy: str, pinning: Pinning) -> int:
    """The gateway relaying `args.streams` concurrent paced streams (bench/streams.py's upstream and load
    generator), py-spy sampling it for `args.seconds` from the moment the streams are opening."""
    import streams

    with workspace() as (workdir, procs):
        up = free_port()
        streams.start_sse_upstream(procs, up, pinning)
        proc, port = run.start_gateway(procs, "gateway-profile", up, 1, pinning, **streams.SERVER_SETTINGS)
        tools = {
            "loadgen": streams.build_loadgen(workdir),
            "request": streams.request_file(workdir, "/openai/responses"),
        }
        argv = [py_spy, "record", "--pid", str(proc.pid), "--rate", str(args.rate), "--duration", str(args.seconds),
                "--format", "raw", "--output", args.raw] + (["--native"] if args.native else [])  # fmt: skip
        spy = subprocess.Popen(pinning.client(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        target = streams.StreamTarget("gateway-1w", "gateway", port, proc)
        point = streams.run_streams(target, args.streams, tools, pinning)
        spy.communicate(timeout=args.seconds + 60)
    summary = summarize(Path(args.raw))
    summary["streams"] = {k: point[k] for k in ("completed", "events", "elapsed_s", "cpu_us_per_event", "errors")}
    print(json.dumps(summary, indent=1, ensure_ascii=False))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--rate", type=int, default=200, help="py-spy samples per second")
    parser.add_argument("--native", action="store_true", help="include C frames (py-spy --native)")
    parser.add_argument("--py-spy", dest="py_spy")
    parser.add_argument("--raw", default="/tmp/acedata-profile.raw", help="where to keep py-spy's collapsed stacks")
    parser.add_argument("--rev", help="profile this git revision (git archive snapshot) instead of the work tree")
    parser.add_argument("--speedscope", help="also record a speedscope profile here (a second run)")
    parser.add_argument("--summarize", metavar="RAW", help="only summarize an existing raw profile")
    parser.add_argument("--streams", type=int, help="profile N concurrent streams (bench/streams.py) instead of wrk")
    args = parser.parse_args()
    if args.summarize:
        print(json.dumps(summarize(Path(args.summarize)), indent=1, ensure_ascii=False))
        return 0
    py_spy = find_py_spy(args.py_spy)
    if py_spy is None:
        sys.exit("py-spy not found: python3 -m venv /tmp/bench-venv && /tmp/bench-venv/bin/pip install py-spy")
    pinning = Pinning.choose()
    pinning.pin_self()
    if args.streams:
        return profile_streams(args, py_spy, pinning)
    with workspace() as (workdir, procs):
        if args.rev:
            run.GATEWAY_SRC = snapshot_source(args.rev, workdir)
        up = free_port()
        start_nginx_upstream(procs, up, pinning)
        proc, port = run.start_gateway(procs, "gateway-profile", up, 1, pinning)
        url = f"http://127.0.0.1:{port}/openai/responses"
        run_wrk(pinning, url, args.concurrency, 2)  # warm-up
        baseline = run_wrk(pinning, url, args.concurrency, args.seconds)
        log(f"unprofiled: {baseline.rps:.0f} rps, p50 {baseline.p50_ms:.2f} ms")
        outputs = [("raw", args.raw)] + ([("speedscope", args.speedscope)] if args.speedscope else [])
        profiled = None
        for fmt, out in outputs:
            argv = [py_spy, "record", "--pid", str(proc.pid), "--rate", str(args.rate), "--duration",
                    str(args.seconds + 1), "--format", fmt, "--output", out]  # fmt: skip
            if args.native:
                argv.append("--native")
            spy = subprocess.Popen(pinning.client(argv), stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            time.sleep(0.5)
            profiled = run_wrk(pinning, url, args.concurrency, args.seconds)
            output, _ = spy.communicate(timeout=args.seconds + 60)
            if spy.returncode != 0:
                raise BenchError(f"py-spy failed: {output.decode(errors='replace')[-600:]}")
            log(output.decode(errors="replace").strip().splitlines()[-2] if output else "py-spy done")
    summary = summarize(Path(args.raw))
    summary["unprofiled"] = {"rps": round(baseline.rps), "p50_ms": baseline.p50_ms, "p99_ms": baseline.p99_ms}
    if profiled:
        summary["while_profiled"] = {"rps": round(profiled.rps), "p50_ms": profiled.p50_ms}
    print(json.dumps(summary, indent=1, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
