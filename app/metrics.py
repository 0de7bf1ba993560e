"""Prometheus metrics (docs/contract.md names), built on an injected registry, and their exposition.

A request's contribution goes into plain dictionaries (`Pending`): no lock, no label lookup and no bucket walk
per request, which prometheus_client's own objects cost (docs/performance-facts.md). They are added to the
prometheus_client objects, which hold the totals, before anything reads them (a scrape, the dashboard), so every
scrape is exact.

With several workers, prometheus_client's multiprocess mode keeps each worker's values in files under
PROMETHEUS_MULTIPROC_DIR (prepared by `server.serve` before the workers start); a scrape, answered by any worker,
merges them all. There each request's contribution is written through at once, so every scrape sees the same
complete totals.
"""

from __future__ import annotations

import glob
import os
import re
import tempfile
from bisect import bisect_left
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

Series = tuple[Any, tuple[str, ...]]  # a metric and its label values


class Pending:
    """What requests added since the last flush. A histogram's series holds a count per bucket (BUCKETS, then
    +Inf) and, last, the sum of what it observed."""

    __slots__ = ("counts", "gauges", "observed")

    def __init__(self) -> None:
        self.counts: dict[Series, float] = {}
        self.observed: dict[Series, list[float]] = {}
        self.gauges: dict[Series, float] = {}  # the value to set

    def add(self, metric: Any, labels: tuple[str, ...], amount: float = 1.0) -> None:
        series = (metric, labels)
        self.counts[series] = self.counts.get(series, 0.0) + amount

    def observe(self, metric: Any, labels: tuple[str, ...], value: float) -> None:
        slots = self.observed.get((metric, labels))
        if slots is None:
            slots = self.observed[(metric, labels)] = [0.0] * (len(BUCKETS) + 2)
        slots[bisect_left(BUCKETS, value)] += 1  # the first bound >= value: Prometheus' `le`
        slots[-1] += value

    def __bool__(self) -> bool:
        return bool(self.counts or self.observed or self.gauges)


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
        self._children: dict[Series, Any] = {}
        self.pending = Pending()
        self.write_through = multiprocess_dir() is not None  # other workers' scrapes read the files at once

    def entered(self, route: str) -> None:
        """A request began: it counts in the in-flight gauge until `record`."""
        self.pending.add(self.inflight, (route,))
        if self.write_through:
            self.flush()

    def record(self, info: RequestInfo, status: int, seconds: float) -> None:
        """Everything one finished request contributes; called once, when it ends."""
        model, route, pending = info.model_label, info.route, self.pending
        pending.add(self.inflight, (route,), -1.0)
        pending.add(self.requests, (route, model, str(status)))
        pending.observe(self.duration, (route, model), seconds)
        if info.upstream_ttfb is not None:
            pending.observe(self.ttfb, (route, model), info.upstream_ttfb)
        if info.upstream_error is not None:
            pending.add(self.upstream_errors, (route, info.upstream_error))
        if info.client_disconnected:
            pending.add(self.disconnects, (route,))
        if info.rate_limited:
            pending.add(self.rate_limited, (info.key_name or NO_KEY,))
        if info.overloaded:
            pending.add(self.overloaded, (route,))
        if info.charged is not None:
            self._count_tokens(info, route, model, info.key_name or NO_KEY)
        if info.budget_remaining is not None:
            pending.gauges[(self.budget_remaining, (info.key_name or NO_KEY,))] = info.budget_remaining
        if self.write_through:
            self.flush()

    def flush(self) -> None:
        """Add what is pending to prometheus_client's objects. A histogram's buckets and sum are added to the
        child's own values (what its observe() increments), a bucket at a time rather than an observation at a
        time; tests/test_metrics.py checks the result against observe()'s."""
        if not self.pending:
            return
        pending, self.pending = self.pending, Pending()
        for (metric, labels), amount in pending.counts.items():
            if amount:
                self._child(metric, *labels).inc(amount)
        for (metric, labels), slots in pending.observed.items():
            child = self._child(metric, *labels)
            for bucket, count in zip(child._buckets, slots[:-1], strict=True):
                if count:
                    bucket.inc(count)
            child._sum.inc(slots[-1])
        for (metric, labels), value in pending.gauges.items():
            self._child(metric, *labels).set(value)

    def _count_tokens(self, info: RequestInfo, route: str, model: str, key: str) -> None:
        """What the request was charged (app/proxy/usage.py's one rule), to its own key, or to the key that created
        the background response whose usage it reported."""
        charged, owner = info.charged, info.charged_to
        assert charged is not None
        priced, requests = info.model or "-", 1
        if owner is not None:  # as the ledger records it: the tokens on the creator's row, no request
            route, model, key, priced, requests = owner.route, owner.label, owner.key, owner.model, 0
        if charged.input:
            self.pending.add(self.tokens, (route, model, key, "input"), charged.input)
        if charged.output:
            self.pending.add(self.tokens, (route, model, key, "output"), charged.output)
        if self.prices is None:  # no price file: nothing to price, and nothing built to price it
            return
        cost = self.prices.cost(priced, Counted(requests, charged.input, charged.output, charged.units, unit_of(route)))
        if cost:
            self.pending.add(self.spend, (key, model), cost)

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
        self.flush()
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
