"""docs/benchmark.md and its charts from a run's results: bench/run.py's JSON load, streaming, memory, routes and
ledger, targets and scaling sections, and bench/streams.py's stream-capacity section. The one renderer.

Standard library only (matplotlib for the chart), so that any python with matplotlib can draw the chart:

    python bench/report.py bench/results/latest.json docs/benchmark.png
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

Results = dict[str, Any]
NO_LEDGER, REDIS_LEDGER = "gateway-1w-noledger", "gateway-1w-redis"
SCALING_CONCURRENCY = (16, 64)
ROW_ORDER = (
    "gateway-1w",
    "gateway-1w-chat",
    "gateway-1w-messages",
    "gateway-1w-embeddings",
    NO_LEDGER,
    REDIS_LEDGER,
    "gateway-base",
)
BIG_MACHINE, SPARE_CORES = 16, 1  # the projection: a 16-core machine, one core left to the kernel and the network
STREAM_TARGETS = {"rss_peak_mb": 300.0, "added_gap_p99_ms": 50.0, "cpu_vs_nginx": 2.0}  # one worker, 5,000 streams


def f(value: float | None, digits: int = 2) -> str:
    return "–" if value is None else f"{value:,.{digits}f}"


def cells(row: Results, spec: str) -> list[str]:
    """The values of `row` named in `spec` ("key:digits key:digits ..."), formatted; a missing one as "–"."""
    return [f(row.get(key), int(digits)) for key, _, digits in (item.partition(":") for item in spec.split())]


def table(header: str, rows: Iterable[Iterable[object]]) -> list[str]:
    """A markdown table; the header's cells say their alignment: a leading ':' for left, else right-aligned."""
    cells = [c.strip() for c in header.split("|")]
    rule = "|".join("---" if c.startswith(":") else "---:" for c in cells)
    return ["| " + " | ".join(c.lstrip(":") for c in cells) + " |", f"|{rule}|"] + [
        "| " + " | ".join(str(cell) for cell in row) + " |" for row in rows
    ]


def labels(results: Results) -> dict[str, str]:
    return {t["name"]: t["label"] for t in results.get("load", {}).get("targets", results.get("targets", []))}


def header(results: Results) -> list[str]:
    meta, src = results["meta"], results["meta"].get("gateway_source", {})
    source = f"{src.get('tree', '?')} at commit {src.get('commit') or '?'}"
    source += " (app/ had uncommitted changes)" if src.get("app_dirty") else ""
    lines = [
        f"- date: {meta['date']}",
        f"- command: `{meta['command']}`",
        f"- machine: {meta['nproc']} cores ({meta['cpu']}), {meta['kernel']}, Python {meta['python']}",
        f"- tools: nginx {meta['nginx']}, {meta['wrk']}"
        + (f", LiteLLM {meta['litellm']}" if meta.get("litellm") else ""),
        f"- gateway code: {source}",
        f"- layout: {meta['layout']}",
        f"- machine load when the run began (1/5/15 min): {' / '.join(meta['loadavg_at_start'])}",
        f"- load: wrk -t1 -c<N>, {meta['duration_s']} s per point, {meta['rounds']} interleaved round(s), medians; "
        f"POST {meta['request']} (upstream answers a {meta['upstream_body_bytes']}-byte Responses JSON)",
        "",
    ]
    row = results.get("load_summary", {}).get("gateway-1w", {}).get("16")
    if row:
        lite = f"; {f(row.get('x_litellm'), 1)}× LiteLLM" if row.get("x_litellm") else ""
        lines += [
            f"**Headline (one worker, concurrency 16):** {f(row['rps'], 0)} RPS = {f(row.get('x_nginx'), 3)}× nginx "
            f"proxy_pass, {f(row.get('x_direct'), 3)}× direct; added latency p50 {f(row.get('added_p50_ms'), 3)} ms, "
            f"p99 {f(row.get('added_p99_ms'), 3)} ms{lite}.",
            "",
        ]
    return lines


def load_section(results: Results) -> list[str]:
    summary, names = results.get("load_summary", {}), labels(results)
    spec = "rps:0 x_direct:3 x_nginx:3 p50_ms:3 p99_ms:3 added_p50_ms:3 added_p99_ms:3 cpu_us_per_req:1 cpu_x_nginx:2"
    rows = [
        [names.get(name, name), conc, *cells(r, spec)]
        for conc in results["meta"]["concurrency"]
        for name, by_conc in summary.items()
        if (r := by_conc.get(str(conc)))
    ]
    head = ":target | conc. | RPS | × direct | × nginx | p50 ms | p99 ms | added p50 ms | added p99 ms | CPU µs/req"
    head += " | CPU × nginx"
    return ["## JSON requests", "", *table(head, rows)]


def streaming_section(results: Results) -> list[str]:
    stream, names = results.get("streaming", {}), labels(results)
    if not stream.get("summary"):
        return []
    rows = [
        ["direct (fake upstream)" if name == "direct" else names.get(name, name),
         *cells(r, "ttfb_ms:3 total_ms:1 added_ttfb_ms:3 added_total_ms:3")]
        for name, r in stream["summary"].items()
    ]  # fmt: skip
    return [
        "",
        f"## Streaming (fake upstream: {stream['deltas']} deltas, {stream['delay_s'] * 1000:g} ms apart; "
        f"median of {results['meta']['stream_runs']} streams each)",
        "",
        *table(":path | TTFB ms | total ms | added TTFB ms | added total ms", rows),
    ]


def memory_section(results: Results) -> list[str]:
    memory, names = results.get("rss", {}), labels(results)
    if not memory:
        return []
    rows = [
        [names.get(name, name), r["processes"], *cells(r, "fresh_mb:1 idle_mb:1 streams_mb:1"),
         f"{r['streams_open']}/{r['streams_requested']}", *cells(r, "after_close_mb:1"),
         " / ".join(cells(r, "idle_pss_mb:1 streams_pss_mb:1"))]
        for name, r in memory.items()
    ]  # fmt: skip
    head = (
        ":gateway | processes | fresh MB | idle after warm-up MB | with N open streams MB | N open | after closing MB"
    )
    head += " | PSS idle / streams MB"
    lines = ["", "## Memory (VmRSS, summed over the gateway's processes)", "", *table(head, rows)]
    after = results.get("load", {}).get("rss_mb_after_load", {})
    extra = [f"{names.get(k, k)} {v} MB" for k, v in after.items() if k.startswith(("gateway", "litellm"))]
    return lines + (["", "RSS right after the JSON load runs: " + ", ".join(extra) + "."] if extra else [])


def checks_section(results: Results) -> list[str]:
    rows = [
        [c["what"], c["text"], {True: "yes", False: "**no**", None: "–"}[c["ok"]]] for c in results.get("checks", [])
    ]
    return ["", "## Targets (one worker)", "", *table(":target | measured | :met", rows)] if rows else []


def ledger_cost(results: Results, with_ledger: str = "gateway-1w") -> dict[str, Any] | None:
    """What the ledger costs at c=16 (else the highest concurrency measured) against the no-ledger gateway: RPS
    lost and CPU per request added, from the medians, and the RPS cost in each round (paired)."""
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
        "concurrency": int(conc), "rps_pct": (1 - w["rps"] / wo["rps"]) * 100,
        "cpu_pct": (w["cpu_us_per_req"] / wo["cpu_us_per_req"] - 1) * 100, "rps": w["rps"], "rps_without": wo["rps"],
        "cpu_us": w["cpu_us_per_req"], "cpu_us_without": wo["cpu_us_per_req"], "rounds_rps_pct": rounds,
    }  # fmt: skip


def routes_section(results: Results) -> list[str]:
    """Every route and ledger row, relative to the Responses row (ledger in SQLite) of the same rounds."""
    summary, names = results.get("load_summary", {}), labels(results)
    order = [name for name in ROW_ORDER if name in summary]
    if "gateway-1w" not in summary or len(order) < 2:
        return []
    size = results["meta"].get("upstream_embeddings_bytes")
    redis = " and with the ledger in Redis (`PROXY_REDIS_URL`; Redis's own CPU is not counted)"
    spec = "rps:0 x:3 cpu_us_per_req:1 cpu_x:2 added_p50_ms:3 added_p99_ms:3"
    rows = [
        [
            names.get(name, name),
            conc,
            *cells({**r, "x": r["rps"] / base["rps"], "cpu_x": r["cpu_us_per_req"] / base["cpu_us_per_req"]}, spec),
        ]
        for conc in results["meta"]["concurrency"]
        if (base := summary["gateway-1w"].get(str(conc)))
        for name in order
        if (r := summary[name].get(str(conc)))
    ]
    lines = [
        "",
        "## Every route the same cost (one worker, same rounds)",
        "",
        "Responses, chat completions, Anthropic messages and embeddings on one worker, and beside it in the same "
        "interleaved rounds the same gateway without its usage ledger (`bench/no_ledger.py`: the ledger replaced by "
        f"a no-op){redis if REDIS_LEDGER in summary else ''}. *gateway, 1 worker* keeps its ledger in SQLite, the "
        f"default. The embeddings answer is one 1536-float embedding{f' ({size:,} bytes)' if size else ''}; "
        "× Responses divides by the *gateway, 1 worker* row at the same concurrency.",
        "",
        *table(":target | c | RPS | × Responses | CPU µs/req | CPU × Responses | added p50 ms | added p99 ms", rows),
        "",
    ]
    for what, with_ledger in (("The usage ledger in SQLite", "gateway-1w"), ("In Redis, it", REDIS_LEDGER)):
        if cost := ledger_cost(results, with_ledger):
            spread = cost["rounds_rps_pct"]
            per_round = f"; per round {min(spread):+.1f} to {max(spread):+.1f}%" if len(spread) > 1 else ""
            lines.append(
                f"- **{what}** costs {cost['rps_pct']:.1f}% RPS at c={cost['concurrency']} "
                f"({f(cost['rps'], 0)} against "
                f"{f(cost['rps_without'], 0)} without it{per_round}) and {cost['cpu_pct']:+.1f}% CPU per request "
                f"({f(cost['cpu_us'], 1)} against {f(cost['cpu_us_without'], 1)} µs)."
            )
    if checked := results.get("load", {}).get("ledger", {}):
        held = ", ".join(f"{names.get(n, n)} {c['recorded']:,} ({c['storage']})" for n, c in checked.items())
        note = "wrk counted the measured ones; check requests and warm-ups come on top"
        tail = "; the no-op's SQLite file has no rows" if checked.get(NO_LEDGER, {}).get("ok") else ""
        lines.append(f"- Requests each ledger held after the run ({note}): {held}{tail}.")
    return lines


def scaling_section(scaling: Results, nproc: int | None) -> list[str]:
    summary = scaling.get("summary", {})
    one_16 = summary.get("gateway-1w-unpinned", {}).get("16")
    if not one_16:
        return []
    rows = []
    for conc in (str(c) for c in SCALING_CONCURRENCY):
        one = summary["gateway-1w-unpinned"].get(conc)
        for name in (n for n in summary if n != "direct"):
            if r := summary[name].get(conc):
                workers = name.removeprefix("gateway-").removesuffix("w-unpinned")
                x_one = {"x": r["rps"] / one["rps"] if one else None}
                spec = "rps:0 x:2 cpu_us_per_req:1 cores:2 added_p50_ms:3 added_p99_ms:3"
                rows.append([f"{workers} worker{'s' if workers != '1' else ''}", conc, *cells({**r, **x_one}, spec)])
    per_core, workers = 1e6 / one_16["cpu_us_per_req"], BIG_MACHINE - SPARE_CORES
    text = (
        f"Per core: one worker spends {one_16['cpu_us_per_req']:.1f} µs of CPU per request at c=16, so one gateway "
        f"core serves about {per_core:,.0f} requests a second (1e6 / CPU µs per request). By that figure a "
        f"{BIG_MACHINE}-core machine running {workers} workers (one core left to the kernel and the network) would "
        f"serve about {workers * per_core:,.0f} RPS of this request"
    )
    if two := summary.get("gateway-2w-unpinned", {}).get("16"):
        text += (
            f"; at the two-worker row's CPU per request ({two['cpu_us_per_req']:.1f} µs), "
            f"{workers * 1e6 / two['cpu_us_per_req']:,.0f}. Measured here, two workers did "
            f"{two['rps'] / one_16['rps']:.2f}× "
            f"one worker's RPS, keeping {two['cores']:.2f} cores busy against {one_16['cores']:.2f}"
        )
    text += (
        f". The projection is arithmetic, not a measurement: this machine has {nproc or '?'} cores and wrk and "
        "the upstream are pinned to one of them, so a second worker shares that core with them and the two-worker "
        "row cannot show what a second core of its own would give. It assumes CPU per request stays flat from "
        "one worker to fifteen, and an upstream elsewhere that costs the machine nothing."
    )
    return [
        "",
        "## More cores: workers unpinned",
        "",
        f"`bench/run.py --scaling`: {scaling['layout']} (the upstream stands for the remote API, so it stays off the "
        "gateway's cores); wrk -t1 at c=16 and c=64 in interleaved rounds, medians. *cores* = RPS × CPU per request: "
        "the gateway's CPU-seconds per second, summed over its processes. Load average when this phase began: "
        f"{' / '.join(scaling['loadavg_at_start'])}.",
        "",
        *table(":gateway | c | RPS | × 1 worker | CPU µs/req | cores | added p50 ms | added p99 ms", rows),
        "",
        text,
    ]


READING = [
    "",
    "## Reading these figures",
    "",
    "- *direct* at concurrency ≥ 16 is limited by wrk itself (one core), so `× direct` understates every target "
    "alike; `× nginx` is the fairer ratio. Direct's p99 of a few ms is scheduling noise on this VM (wrk saturates "
    "its core), which is why an *added p99* can come out negative.",
    "- Every server, the upstream included, shares CPU 1, so the two-worker gateway cannot gain CPU here: its row "
    "shows there is no delayed-ACK stall with workers (no ~40 ms added), and what two processes taking turns on "
    "one core cost. ",
    "- A CPU-bound target's latency at concurrency N is mostly queueing: p50 ≈ N / RPS.",
]


def render(results: Results, docs: bool, streams: Results | None = None) -> str:
    """The run's markdown: the terminal's summary, or (docs) docs/benchmark.md with the stream-capacity section."""
    lines = (
        [
            "# Benchmark",
            "",
            "Generated by `bench/run.py` (see `bench/README.md` for what each figure means and how to rerun it).",
            "",
        ]
        if docs
        else []
    )
    lines += header(results) + load_section(results) + streaming_section(results) + memory_section(results)
    lines += checks_section(results) + routes_section(results)
    lines += scaling_section(results["scaling"], results["meta"].get("nproc")) if results.get("scaling") else []
    if skipped := results.get("load", {}).get("litellm", {}).get("skipped"):
        lines += ["", f"LiteLLM: skipped ({skipped.splitlines()[0]})."]
    lines += (
        ["", "## Failures", ""] + [f"- {x.splitlines()[0]}" for x in results["failures"]]
        if results.get("failures")
        else []
    )
    if docs:
        scaled = "*More cores* above runs them unpinned, where they can scale."
        elsewhere = "docs/performance-steps.md has an unpinned run where they can scale (`--scaling` measures it)."
        lines += [*READING[:-2], READING[-2] + (scaled if results.get("scaling") else elsewhere), READING[-1]]
        lines += ["", "![RPS and added p50 by target and concurrency](benchmark.png)"] if results.get("chart") else []
        lines += ["", streams_section(streams)] if streams else []
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------------------- stream capacity


def streams_section(results: Results) -> str:
    """bench/streams.py's section of docs/benchmark.md."""
    meta, summary, names = results["meta"], results["summary"], labels(results)
    rows = []
    for count in (str(n) for n in meta["streams"]):
        nginx = summary.get("nginx", {}).get(count, {}).get("cpu_us_per_event")
        for name, by_count in summary.items():
            if (r := by_count.get(count)) is not None:
                cpu, figures = r.get("cpu_us_per_event"), "added_gap_p50_ms:2 added_gap_p99_ms:2 added_ttfb_p99_ms:2"
                ratio = cpu / nginx if cpu and nginx else None
                counts = cells(r, "completed:0 errors:0 events_per_s:0")
                rest = cells(r, f"{figures} rss_peak_mb:1 rss_kb_per_stream:1")
                rows.append([f"{int(count):,}", names.get(name, name), *counts, f(cpu, 1), f(ratio), *rest])
    head = "streams | :target | completed | errors | events/s | CPU µs/event | × nginx | added gap p50 ms"
    head += " | added gap p99 ms | added TTFB p99 ms | peak RSS MB | RSS KB/stream"
    settings = ", ".join(f"`{k}={v}`" for k, v in meta["settings"].items())
    lines = [
        "## Stream capacity (LLM-shaped streams, one worker)",
        "",
        f"Generated by `bench/streams.py` ({meta['date']}; `{meta['command']}`). Upstream: nginx serving "
        f"{meta['events']} SSE events of {meta['event_bytes']} bytes at {meta['events_per_s']} events/s per stream "
        f"(`limit_rate`); load generator: bench/streamload.c (epoll, reads at full speed), opening "
        f"{meta['connects_per_s']:,} streams/s. {meta['layout']}. Gateway settings: {settings}. Load average when the "
        f"run began: {' / '.join(meta['loadavg_at_start'])} (1/5/15 min).",
        "",
        *table(head, rows),
        "",
        *stream_targets(summary),
        "",
        "Reading these rows: *added* is the target minus direct at the same count. Direct itself shares CPU 0 with "
        "the load generator, so at 5,000 streams (150k events/s asked) it is saturated too and its own gaps grow; "
        "an added figure is then measured against a slowed baseline. A server that cannot keep up is slowed by "
        "TCP backpressure, never loses an event: its streams last longer, and events coalesce (several per read "
        "and per write: the gap p50 falls towards 0 while the p99 grows, and CPU per event falls). The 100-stream "
        "rows are an event relayed on its own. docs/performance-steps.md has the profile and what would move it.",
    ]
    if results.get("overload"):
        lines += [
            "",
            "### Overload (one worker)",
            "",
            "JSON: wrk for 5 s with a 5 s timeout (nginx `return 200` upstream); streams: as above. *refused 503* "
            "is `overloaded` (`PROXY_MAX_INFLIGHT`); for streams, *rate* is events/s and the latency columns are "
            "inter-event gaps.",
            "",
            *overload_table(results["overload"]),
        ]
    lines += (
        ["", "![CPU per event and added inter-event p99 by concurrent streams](streams.png)"]
        if results.get("chart")
        else []
    )
    return "\n".join(lines) + "\n"


def stream_targets(summary: Results, count: str = "5000") -> list[str]:
    gateway, nginx = summary.get("gateway-1w", {}).get(count), summary.get("nginx", {}).get(count)
    if gateway is None or nginx is None:
        return []
    ratio = gateway["cpu_us_per_event"] / nginx["cpu_us_per_event"]
    checks = [
        ("5,000 streams held with zero errors", f"{gateway['errors']:,.0f} errors", gateway["errors"] == 0),
        ("RSS ≤ 300 MB", f"{gateway['rss_peak_mb']:.1f} MB", gateway["rss_peak_mb"] <= STREAM_TARGETS["rss_peak_mb"]),
        (
            "added inter-event p99 ≤ 50 ms",
            f"{gateway['added_gap_p99_ms']:,.1f} ms",
            gateway["added_gap_p99_ms"] <= STREAM_TARGETS["added_gap_p99_ms"],
        ),
        ("CPU per relayed event ≤ 2× nginx", f"{ratio:.2f}×", ratio <= STREAM_TARGETS["cpu_vs_nginx"]),
    ]
    return table(
        ":target (one worker, 5,000 streams) | measured | :met",
        ([w, v, "yes" if ok else "**no**"] for w, v, ok in checks),
    )


def overload_table(settings: list[Results]) -> list[str]:
    rows = []
    for setting in settings:
        limit = f"{setting['limit']:,}" if setting["limit"] else "unset"
        for p in setting["json"]:
            errors, answered = sum(p["socket_errors"].values()), p["requests"] - p["non_2xx"]
            rows.append([limit, f"JSON, c={p['concurrency']:,}", f"{answered:,}", f"{p['non_2xx']:,}", f"{errors:,}",
                         f"{p['rps']:,.0f} req/s", *cells(p, "p50_ms:1 p99_ms:1 max_ms:0 rss_peak_mb:1")])  # fmt: skip
        if s := setting.get("streams"):
            gap, refused = {k: s["gap_us"][k] / 1000 for k in ("p50", "p99", "max")}, s["errors"]["refused"]
            rows.append([limit, f"{s['streams']:,} streams", f"{s['completed']:,}", f"{refused:,}",
                         f"{sum(s['errors'].values()) - refused:,}", f"{s['events'] / s['elapsed_s']:,.0f} events/s",
                         *(f"gap {gap[k]:,.{d}f}" for k, d in (("p50", 1), ("p99", 1), ("max", 0))),
                         f(s["rss_peak_mb"], 1)])  # fmt: skip
    head = ":PROXY_MAX_INFLIGHT | :load | answered 200 | refused 503 | other errors / timeouts | rate | p50 ms"
    head += " | p99 ms | max ms | peak RSS MB"
    return table(head, rows)


# --------------------------------------------------------------------------------------------------- charts


def _bars(ax: Any, summary: Results, names: list[str], groups: list[str], key: str, style: dict[str, Any]) -> None:
    """One bar per target in each group (concurrency or stream count), its value written above it."""
    width = 0.8 / max(1, len(names))
    for i, name in enumerate(names):
        xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(groups))]
        values = [max(summary[name].get(g, {}).get(key, 0), 0.001) for g in groups]  # a log scale shows no 0
        for bar, v in zip(ax.bar(xs, values, width, **style[name]), values, strict=True):
            text = f"{v / 1000:.1f}k" if v >= 1000 else f"{v:,.2f}" if v < 10 else f"{v:,.0f}"
            ax.annotate(text, (bar.get_x() + bar.get_width() / 2, v), ha="center", va="bottom", fontsize=7,
                        rotation=90, xytext=(0, 2), textcoords="offset points")  # fmt: skip
    ax.legend(fontsize=8)
    ax.grid(axis="y", which="both", alpha=0.3)


def chart(results: Results, out: Path) -> None:
    """The chart of a run (RPS and added p50 by target and concurrency) or of bench/streams.py (CPU per event and
    added inter-event p99 by stream count). Needs matplotlib: bench/run.py draws it when it is importable."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    meta, load = results["meta"], "load_summary" in results
    summary = results["load_summary"] if load else results["summary"]
    groups = [str(g) for g in meta["concurrency" if load else "streams"]]
    names = [n for n in summary if any(g in summary[n] for g in groups)]
    proxied = [n for n in names if n != "direct"]
    # each target its label, and the same colour in both panels
    style = {n: {"label": labels(results).get(n, n), "color": f"C{i % 10}"} for i, n in enumerate(names)}
    if load:
        panels = [("rps", "requests per second (log scale)", names, "log")]
        panels.append(("added_p50_ms", "added p50 latency vs direct, ms", proxied, "linear"))
    else:
        panels = [("cpu_us_per_event", "CPU µs per relayed event", proxied, "linear")]
        panels.append(("added_gap_p99_ms", "added inter-event p99, ms (log scale)", proxied, "log"))
    for ax, (key, what, shown, scale) in zip(axes, panels, strict=True):
        _bars(ax, summary, shown, groups, key, style)
        ax.set(ylabel=what, title=what, yscale=scale)
        ax.set_xticks(range(len(groups)), [f"c={g}" if load else f"{int(g):,} streams" for g in groups])
    what = (
        f"acedata-proxy benchmark, {meta['date']}: {meta['nproc']} cores"
        if load
        else f"Stream capacity, {meta['date']}"
    )
    fig.suptitle(f"{what}; {meta['layout']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: report.py RESULTS.json OUT.png")
    chart(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2]))
