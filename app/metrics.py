"""Prometheus metrics (docs/contract.md names), built on an injected registry, and their exposition.

With several workers, prometheus_client's multiprocess mode keeps each worker's values in files under
PROMETHEUS_MULTIPROC_DIR (prepared by `server.serve` before the workers start); a scrape, answered by any worker,
merges them all, so every scrape sees the same complete totals.
"""

from __future__ import annotations

import glob
import os
import re
import tempfile
from typing import Any

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    ProcessCollector,
    generate_latest,
    multiprocess,
)

from app.context import RequestInfo
from app.money import Counted, PriceList
from app.proxy.table import unit_of

PREFIX = "acedata_proxy_"
# Latency buckets from sub-millisecond (gateway overhead) to minutes (long generations).
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600)
NO_KEY = "-"

__all__ = ["CONTENT_TYPE_LATEST", "Metrics", "multiprocess_dir", "prepare_multiprocess_dir"]


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


def prepare_multiprocess_dir() -> str:
    """Before workers start: a metrics directory (PROMETHEUS_MULTIPROC_DIR, or a fresh temporary one), emptied
    of a previous run's files, and exported so every worker process writes there."""
    directory = multiprocess_dir() or tempfile.mkdtemp(prefix="acedata-proxy-metrics-")
    os.makedirs(directory, exist_ok=True)
    for stale in glob.glob(os.path.join(directory, "*.db")):
        os.remove(stale)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = directory
    return directory


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None, prices: PriceList | None = None):
        self.registry = registry or CollectorRegistry()
        self.prices = prices
        if multiprocess_dir() is None:
            ProcessCollector(registry=self.registry)
            self.registry.register(PLATFORM_COLLECTOR)
            self.registry.register(GC_COLLECTOR)
        reg = self.registry
        self.requests = Counter(PREFIX + "requests", "Requests served", ["route", "model", "status"], registry=reg)
        self.duration = Histogram(
            PREFIX + "request_duration_seconds",
            "Time from request to last byte sent",
            ["route", "model"],
            buckets=BUCKETS,
            registry=reg,
        )
        self.ttfb = Histogram(
            PREFIX + "upstream_ttfb_seconds",
            "Time from sending upstream to its response headers",
            ["route", "model"],
            buckets=BUCKETS,
            registry=reg,
        )
        self.inflight = Gauge(
            PREFIX + "inflight_requests",
            "Requests being served now (streams included)",
            ["route"],
            multiprocess_mode="livesum",
            registry=reg,
        )
        self.upstream_errors = Counter(
            PREFIX + "upstream_errors",
            "Upstream failures by kind (connect, timeout, reset, protocol, status)",
            ["route", "kind"],
            registry=reg,
        )
        self.tokens = Counter(
            PREFIX + "tokens",
            "Tokens from the upstream's reported usage",
            ["route", "model", "key", "direction"],
            registry=reg,
        )
        self.disconnects = Counter(
            PREFIX + "client_disconnects", "Clients that left before the response ended", ["route"], registry=reg
        )
        self.rate_limited = Counter(PREFIX + "rate_limited", "Requests refused by a rate limit", ["key"], registry=reg)
        self.budget_remaining = Gauge(
            PREFIX + "budget_remaining_tokens",
            "Tokens left in the key's budget for the period, as last seen",
            ["key"],
            multiprocess_mode="mostrecent",
            registry=reg,
        )
        self.overloaded = Counter(
            PREFIX + "overloaded",
            "Requests refused because the worker held PROXY_MAX_INFLIGHT already",
            ["route"],
            registry=reg,
        )
        self.spend = Counter(
            PREFIX + "spend",
            "Money the ledger's tokens and units cost at PROXY_PRICES_FILE's prices (priced only)",
            ["key", "model"],
            registry=reg,
        )
        self._children: dict[tuple[object, tuple[str, ...]], Any] = {}

    def inflight_for(self, route: str) -> Gauge:
        return self._child(self.inflight, route)  # type: ignore[no-any-return]

    def record(self, info: RequestInfo, status: int, seconds: float) -> None:
        """Everything one finished request contributes; called once, when it ends."""
        model = info.model_label
        route, key = info.route, info.key_name or NO_KEY
        self._child(self.requests, route, model, str(status)).inc()
        self._child(self.duration, route, model).observe(seconds)
        if info.upstream_ttfb is not None:
            self._child(self.ttfb, route, model).observe(info.upstream_ttfb)
        if info.upstream_error is not None:
            self._child(self.upstream_errors, route, info.upstream_error).inc()
        if info.client_disconnected:
            self._child(self.disconnects, route).inc()
        if info.rate_limited:
            self._child(self.rate_limited, key).inc()
        if info.overloaded:
            self._child(self.overloaded, route).inc()
        if info.charged is not None:
            self._count_tokens(info, route, model, key)
        if info.budget_remaining is not None:
            self._child(self.budget_remaining, key).set(info.budget_remaining)

    def _count_tokens(self, info: RequestInfo, route: str, model: str, key: str) -> None:
        """What the request was charged (app/proxy/usage.py's one rule), to its own key, or to the key that created
        the background response whose usage it reported."""
        charged, owner = info.charged, info.charged_to
        assert charged is not None
        priced, requests = info.model or "-", 1
        if owner is not None:  # as the ledger records it: the tokens on the creator's row, no request
            route, model, key, priced, requests = owner.route, owner.label, owner.key, owner.model, 0
        if charged.input:
            self._child(self.tokens, route, model, key, "input").inc(charged.input)
        if charged.output:
            self._child(self.tokens, route, model, key, "output").inc(charged.output)
        if self.prices is None:  # no price file: nothing to price, and nothing built to price it
            return
        cost = self.prices.cost(priced, Counted(requests, charged.input, charged.output, charged.units, unit_of(route)))
        if cost:
            self._child(self.spend, key, model).inc(cost)

    def _child(self, metric: Any, *values: str) -> Any:
        """metric.labels(*values), remembered: label values are bounded, so this cache is too, and labels()
        (a lock, a tuple, a dict) costs more than the increment itself."""
        child = self._children.get((metric, values))
        if child is None:
            child = self._children[(metric, values)] = metric.labels(*values)
        return child

    def close(self) -> None:
        """A worker's clean exit: its in-flight gauge leaves the merged view (its counters stay)."""
        directory = multiprocess_dir()
        if directory is not None:
            multiprocess.mark_process_dead(os.getpid(), directory)  # type: ignore[no-untyped-call]

    def exposition(self) -> bytes:
        return generate_latest(self.source())

    def source(self) -> CollectorRegistry:
        """What /metrics shows (and the dashboard reads): this registry, or every worker's values merged."""
        directory = multiprocess_dir()
        if directory is None:
            return self.registry
        _forget_dead_workers(directory)
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged, path=directory)  # type: ignore[no-untyped-call]
        return merged


_LIVE_GAUGE_FILE = re.compile(r"gauge_live\w+?_(\d+)\.db$")


def _forget_dead_workers(directory: str) -> None:
    """Drop live gauges of workers that died without a clean shutdown (a crash, a kill -9), so the in-flight
    gauge does not count their requests forever. Their counters stay: totals must not go backwards."""
    for path in glob.glob(os.path.join(directory, "gauge_live*.db")):
        match = _LIVE_GAUGE_FILE.search(path)
        if match and not _alive(int(match.group(1))):
            multiprocess.mark_process_dead(int(match.group(1)), directory)  # type: ignore[no-untyped-call]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
