"""Every route the same cost: the JSON-load rows that compare routes and the usage ledger on one worker.

  gateway-1w-embeddings   POST /openai/embeddings on the same worker as gateway-1w (Responses), its -chat and
                          -messages (POST /v1/messages) rows
  gateway-1w-noledger     a second one-worker gateway, started by bench/no_ledger.py: the ledger is a no-op
  gateway-1w-redis        a third, with PROXY_REDIS_URL: the ledger in Redis (when redis-server is installed)

gateway-1w keeps its ledger in SQLite (the default, under PROXY_DATA_DIR), so gateway-1w against
gateway-1w-noledger, measured in the same interleaved rounds, is what the ledger costs. After the load each
ledger is read back, so a row cannot silently measure a ledger that records nothing (or a no-op that records).
Requests without a client key are recorded too (as key "-"), so the gateways run without a keys file.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

from harness import EMBEDDING_DIMENSIONS, HOST, BenchError, Failures, Pinning, Proc, Processes, free_port, log

EMBEDDINGS_PATH = "/openai/embeddings"
RESPONSES_ROW = "gateway-1w"  # the row the others are compared with: Responses, ledger in SQLite
NO_LEDGER, REDIS_LEDGER = "gateway-1w-noledger", "gateway-1w-redis"
ROW_ORDER = (
    RESPONSES_ROW,
    "gateway-1w-chat",
    "gateway-1w-messages",
    "gateway-1w-embeddings",
    NO_LEDGER,
    REDIS_LEDGER,
    "gateway-base",
)
LEDGER_ROWS = (RESPONSES_ROW, NO_LEDGER, REDIS_LEDGER)


def check_embeddings(answer: dict[str, Any]) -> None:
    """An OpenAI embeddings list: one embedding of EMBEDDING_DIMENSIONS floats, and its usage."""
    data = answer.get("data")
    item = data[0] if isinstance(data, list) and len(data) == 1 and isinstance(data[0], dict) else {}
    vector = item.get("embedding")
    usage = answer.get("usage") or {}
    if (
        answer.get("object") != "list"
        or item.get("object") != "embedding"
        or not isinstance(vector, list)
        or len(vector) != EMBEDDING_DIMENSIONS
        or not all(isinstance(usage.get(k), int) for k in ("prompt_tokens", "total_tokens"))
    ):
        raise BenchError(f"not an embeddings list of one {EMBEDDING_DIMENSIONS}-float embedding with usage")


# ---------------------------------------------------------------------------------------------------- Redis


def redis_command(port: int, *words: str) -> str:
    result = subprocess.run(
        ["redis-cli", "-h", HOST, "-p", str(port), "--raw", *words], capture_output=True, text=True, timeout=10,
        check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise BenchError(f"redis-cli {words[0]}: {result.stderr.strip()}")
    return result.stdout


def start_redis(procs: Processes, pinning: Pinning) -> tuple[Proc, int] | None:
    """A throwaway redis-server on loopback (no persistence), on the servers' core; None when not installed."""
    if shutil.which("redis-server") is None or shutil.which("redis-cli") is None:
        log("Redis ledger row skipped: redis-server (Debian redis-server) is not installed")
        return None
    port = free_port()
    argv = ["redis-server", "--bind", HOST, "--port", str(port), "--save", "", "--appendonly", "no"]
    proc = procs.start("redis", pinning.server(argv))
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection((HOST, port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            if sock.recv(64).startswith(b"+PONG"):
                return proc, port
        if not proc.alive():
            break
        time.sleep(0.1)
    raise BenchError(f"redis-server did not answer on port {port}:\n{proc.log_tail()}")


# ------------------------------------------------------------------------------------------- ledger check


def recorded_sqlite(path: Path) -> int:
    """Requests the ledger holds in its SQLite file (0 when there is no file or no table)."""
    if not path.exists():
        return 0
    with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
        try:
            return int(db.execute("SELECT COALESCE(SUM(requests), 0) FROM usage").fetchone()[0])
        except sqlite3.OperationalError:
            return 0


def recorded_redis(port: int) -> int:
    """Requests the ledger holds in Redis: the `r` fields of every hour's hash (app/ledger/store.py)."""
    total = 0
    for hour in redis_command(port, "ZRANGE", "acedata-proxy:usage:hours", "0", "-1").split():
        lines = redis_command(port, "HGETALL", f"acedata-proxy:usage:{hour}").splitlines()
        total += sum(int(value) for field, value in zip(lines[::2], lines[1::2], strict=True) if field.endswith('"r"]'))
    return total


def verify_ledgers(
    workdir: Path, points: list[dict[str, Any]], groups: dict[str, list[str]], redis_port: int | None,
    failures: Failures,
) -> dict[str, dict[str, Any]]:  # fmt: skip
    """Read back each stopped gateway's ledger (`groups`: process name -> the targets it served): the ledger rows
    must hold at least the requests wrk counted, the no-op none."""
    out: dict[str, dict[str, Any]] = {}
    for name in LEDGER_ROWS:
        if name not in groups:
            continue
        measured = sum(p["requests"] for p in points if p["target"] in groups[name])
        if name == REDIS_LEDGER:
            storage, recorded = "redis", recorded_redis(redis_port) if redis_port is not None else 0
        else:
            storage, recorded = "sqlite", recorded_sqlite(workdir / f"data-{name}" / "ledger.sqlite3")
        ok = recorded == 0 if name == NO_LEDGER else recorded >= measured > 0
        out[name] = {"storage": storage, "recorded": recorded, "measured": measured, "ok": ok}
        log(f"ledger of {name}: {recorded} requests recorded ({storage}), {measured} measured by wrk")
        if not ok:
            expected = "none" if name == NO_LEDGER else f"at least the {measured} wrk counted"
            failures.add(f"{name}'s ledger holds {recorded} requests, expected {expected}")
    return out


# ----------------------------------------------------------------------------------------------- figures


def ledger_cost(results: dict[str, Any], with_ledger: str = RESPONSES_ROW) -> dict[str, Any] | None:
    """What the ledger costs at c=16 (else the highest concurrency measured): RPS lost and CPU per request
    added against the no-ledger gateway, from the medians, and the RPS cost in each round (paired)."""
    summary = results.get("load_summary", {})
    with_rows, without_rows = summary.get(with_ledger, {}), summary.get(NO_LEDGER, {})
    common = [c for c in with_rows if c in without_rows]
    if not common:
        return None
    conc = "16" if "16" in common else max(common, key=int)
    w, wo = with_rows[conc], without_rows[conc]
    by_round: dict[int, dict[str, float]] = {}
    for p in results.get("load", {}).get("points", []):
        if str(p["concurrency"]) == conc and p["target"] in (with_ledger, NO_LEDGER):
            by_round.setdefault(p["round"], {})[p["target"]] = p["rps"]
    rounds = [(1 - r[with_ledger] / r[NO_LEDGER]) * 100 for r in by_round.values() if len(r) == 2 and r[NO_LEDGER]]
    return {
        "concurrency": int(conc),
        "rps_pct": (1 - w["rps"] / wo["rps"]) * 100,
        "cpu_pct": (w["cpu_us_per_req"] / wo["cpu_us_per_req"] - 1) * 100,
        "rps": w["rps"],
        "rps_without": wo["rps"],
        "cpu_us": w["cpu_us_per_req"],
        "cpu_us_without": wo["cpu_us_per_req"],
        "rounds_rps_pct": rounds,
    }


def _f(value: float | None, digits: int) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def _ledger_line(what: str, cost: dict[str, Any]) -> str:
    rounds = cost["rounds_rps_pct"]
    spread = f"; per round {min(rounds):+.1f} to {max(rounds):+.1f}%" if len(rounds) > 1 else ""
    return (
        f"- **{what}** costs {cost['rps_pct']:.1f}% RPS at c={cost['concurrency']} ({_f(cost['rps'], 0)} against "
        f"{_f(cost['rps_without'], 0)} without it{spread}) and {cost['cpu_pct']:+.1f}% CPU per request "
        f"({_f(cost['cpu_us'], 1)} against {_f(cost['cpu_us_without'], 1)} µs)."
    )


def section(results: dict[str, Any]) -> list[str]:
    """The markdown section: every route and ledger row, relative to the Responses row of the same rounds."""
    summary = results.get("load_summary", {})
    names = [name for name in ROW_ORDER if name in summary]
    if RESPONSES_ROW not in summary or len(names) < 2:
        return []
    labels = {t["name"]: t["label"] for t in results.get("load", {}).get("targets", [])}
    size = results["meta"].get("upstream_embeddings_bytes")
    redis = " and with the ledger in Redis (`PROXY_REDIS_URL`; Redis's own CPU is not counted)"
    lines = [
        "## Every route the same cost (one worker, same rounds)",
        "",
        "Responses, chat completions, Anthropic messages and embeddings on one worker, and beside it in the same "
        "interleaved rounds the same gateway without its usage ledger (`bench/no_ledger.py`: the ledger replaced by "
        "a no-op)"
        f"{redis if REDIS_LEDGER in summary else ''}. *gateway, 1 worker* keeps its ledger in SQLite, the default. "
        f"The embeddings answer is one {EMBEDDING_DIMENSIONS}-float embedding{f' ({size:,} bytes)' if size else ''}"
        "; × Responses divides by the *gateway, 1 worker* row at the same concurrency.",
        "",
        "| target | c | RPS | × Responses | CPU µs/req | CPU × Responses | added p50 ms | added p99 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for conc in results["meta"]["concurrency"]:
        base = summary[RESPONSES_ROW].get(str(conc))
        for name in names:
            row = summary[name].get(str(conc))
            if not row or not base:
                continue
            lines.append(
                f"| {labels.get(name, name)} | {conc} | {_f(row['rps'], 0)} | {_f(row['rps'] / base['rps'], 3)} | "
                f"{_f(row['cpu_us_per_req'], 1)} | {_f(row['cpu_us_per_req'] / base['cpu_us_per_req'], 2)} | "
                f"{_f(row.get('added_p50_ms'), 3)} | {_f(row.get('added_p99_ms'), 3)} |"
            )
    lines.append("")
    for what, with_ledger in (("The usage ledger in SQLite", RESPONSES_ROW), ("In Redis, it", REDIS_LEDGER)):
        cost = ledger_cost(results, with_ledger)
        if cost:
            lines.append(_ledger_line(what, cost))
    checked = results.get("load", {}).get("ledger", {})
    if checked:
        parts = [f"{labels.get(n, n)} {c['recorded']:,} ({c['storage']})" for n, c in checked.items()]
        lines.append(
            "- Requests each ledger held after the run (wrk counted the measured ones; check requests and "
            f"warm-ups come on top): {', '.join(parts)}; the no-op's SQLite file has no rows."
            if NO_LEDGER in checked and checked[NO_LEDGER]["ok"]
            else f"- Requests each ledger held after the run: {', '.join(parts)}."
        )
    return lines
