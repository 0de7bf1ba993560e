"""The benchmark chart: RPS by target and concurrency (log scale), and added p50 latency over direct.

    python bench/plot.py bench/results/latest.json docs/benchmark.png   # any python with matplotlib

bench/run.py calls `plot()` itself when matplotlib is importable, or runs this file with --plot-python.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

COLORS = {
    "direct": "#7f7f7f",
    "nginx": "#2ca02c",
    "gateway-1w": "#1f77b4",
    "gateway-1w-chat": "#6baed6",
    "gateway-1w-messages": "#9e9ac8",
    "gateway-1w-embeddings": "#9ecae1",
    "gateway-1w-noledger": "#ff7f0e",
    "gateway-1w-redis": "#ffbb78",
    "gateway-2w": "#17becf",
    "gateway-base": "#aec7e8",
    "gateway-rev": "#aec7e8",
    "gateway-httpx": "#9467bd",
    "litellm": "#d62728",
}


def plot(results: dict[str, Any], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = results["load_summary"]
    labels = {t["name"]: t["label"] for t in results["load"]["targets"]}
    concurrencies = [str(c) for c in results["meta"]["concurrency"]]
    names = [n for n in summary if any(c in summary[n] for c in concurrencies)]
    width = 0.8 / max(1, len(names))
    fig, (ax_rps, ax_lat) = plt.subplots(1, 2, figsize=(13, 5))

    for i, name in enumerate(names):
        xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(concurrencies))]
        rps = [summary[name].get(c, {}).get("rps", 0) for c in concurrencies]
        bars = ax_rps.bar(xs, rps, width, label=labels.get(name, name), color=COLORS.get(name))
        for bar, value in zip(bars, rps, strict=True):
            if value:
                text = f"{value / 1000:.1f}k" if value >= 1000 else f"{value:.0f}"
                ax_rps.annotate(text, (bar.get_x() + bar.get_width() / 2, value), ha="center", va="bottom",
                                fontsize=7, rotation=90, xytext=(0, 2), textcoords="offset points")  # fmt: skip
    ax_rps.set_yscale("log")
    top = max((summary[n].get(c, {}).get("rps", 0) for n in names for c in concurrencies), default=1)
    ax_rps.set_ylim(top=top * 6)  # room for the value labels
    ax_rps.set_xticks(range(len(concurrencies)), [f"c={c}" for c in concurrencies])
    ax_rps.set_ylabel("requests per second (log scale)")
    ax_rps.set_title("JSON requests: RPS (median of rounds)")
    ax_rps.legend(fontsize=8)
    ax_rps.grid(axis="y", which="both", alpha=0.3)

    proxied = [n for n in names if n != "direct"]
    width = 0.8 / max(1, len(proxied))
    for i, name in enumerate(proxied):
        xs = [j + (i - (len(proxied) - 1) / 2) * width for j in range(len(concurrencies))]
        added = [summary[name].get(c, {}).get("added_p50_ms", 0) for c in concurrencies]
        bars = ax_lat.bar(xs, added, width, label=labels.get(name, name), color=COLORS.get(name))
        for bar, value in zip(bars, added, strict=True):
            ax_lat.annotate(
                f"{value:.2f}", (bar.get_x() + bar.get_width() / 2, max(value, 0)), ha="center",
                va="bottom", fontsize=7, rotation=90, xytext=(0, 2), textcoords="offset points",
            )  # fmt: skip
    if "litellm" in proxied:
        ax_lat.set_yscale("symlog", linthresh=1.0)
    peak = max((summary[n].get(c, {}).get("added_p50_ms", 0) for n in proxied for c in concurrencies), default=1)
    ax_lat.set_ylim(top=peak * (6 if "litellm" in proxied else 1.25))
    ax_lat.set_xticks(range(len(concurrencies)), [f"c={c}" for c in concurrencies])
    ax_lat.set_ylabel("added p50 latency vs direct, ms" + (" (symlog)" if "litellm" in proxied else ""))
    ax_lat.set_title("Added p50 latency over the upstream alone")
    ax_lat.legend(fontsize=8)
    ax_lat.grid(axis="y", alpha=0.3)

    meta = results["meta"]
    fig.suptitle(f"acedata-proxy benchmark, {meta['date']}: {meta['nproc']} cores, {meta['layout']}", fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_streams(results: dict[str, Any], out: Path) -> None:
    """bench/streams.py's chart: CPU per relayed event, and added inter-event p99, by concurrent streams."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = results["summary"]
    labels = {t["name"]: t["label"] for t in results["targets"]}
    counts = [str(n) for n in results["meta"]["streams"]]
    names = [n for n in summary if n != "direct"]
    width = 0.8 / max(1, len(names))
    fig, axes = plt.subplots(1, 2, figsize=(13, 5))
    panels = [
        ("cpu_us_per_event", "CPU µs per relayed event", "CPU per relayed event (lower is better)", False),
        ("added_gap_p99_ms", "added inter-event p99, ms (log scale)", "Added inter-event delay, p99", True),
    ]
    for ax, (key, ylabel, title, log_scale) in zip(axes, panels, strict=True):
        for i, name in enumerate(names):
            xs = [j + (i - (len(names) - 1) / 2) * width for j in range(len(counts))]
            values = [max(summary[name].get(c, {}).get(key, 0), 0.01) for c in counts]
            bars = ax.bar(xs, values, width, label=labels.get(name, name), color=COLORS.get(name))
            for bar, value in zip(bars, values, strict=True):
                ax.annotate(f"{value:,.1f}", (bar.get_x() + bar.get_width() / 2, value), ha="center", va="bottom",
                            fontsize=7, rotation=90, xytext=(0, 2), textcoords="offset points")  # fmt: skip
        if log_scale:
            ax.set_yscale("log")
        ax.set_xticks(range(len(counts)), [f"{int(c):,} streams" for c in counts])
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.legend(fontsize=8)
        ax.grid(axis="y", which="both", alpha=0.3)
    meta = results["meta"]
    fig.suptitle(
        f"Stream capacity, {meta['date']}: {meta['events']} events of {meta['event_bytes']} B at "
        f"{meta['events_per_s']}/s per stream; {meta['layout']}",
        fontsize=9,
    )
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: plot.py RESULTS.json OUT.png")
    data = json.loads(Path(sys.argv[1]).read_text())
    (plot if "load_summary" in data else plot_streams)(data, Path(sys.argv[2]))
