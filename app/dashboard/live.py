"""The dashboard's "now": per route, requests per second, error rate, p50/p99 duration and upstream time to first
byte, and streams in flight, read from the same registry /metrics serves (every worker's values merged).

Rates and percentiles are differences between two samples of those counters: the newest, and the newest one at
least WINDOW old (until the gateway has run that long, a zero sample taken when it started). So every figure is
exact over a stated window, whichever worker answers, and nothing is sampled unless someone looks.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from app.metrics import PREFIX

WINDOW = 300.0  # seconds the rates cover once the gateway has run this long
SERVICE = frozenset({"healthz", "readyz", "metrics", "admin", "admin.usage", "other"})  # not proxy traffic
Buckets = dict[float, float]  # upper bound -> cumulative count


@dataclass(slots=True)
class RouteSample:
    requests: float = 0.0
    errors: float = 0.0  # answered 5xx: the gateway or the upstream failed (4xx are the client's)
    duration: Buckets = field(default_factory=dict)
    ttfb: Buckets = field(default_factory=dict)
    inflight: float = 0.0


@dataclass(slots=True)
class Sample:
    at: float
    routes: dict[str, RouteSample] = field(default_factory=dict)

    def route(self, name: str) -> RouteSample:
        return self.routes.setdefault(name, RouteSample())


@dataclass(frozen=True, slots=True)
class RouteNow:
    route: str
    rate: float  # requests per second over the window
    error_rate: float | None  # share of the window's requests answered 5xx; None without requests
    duration: tuple[float | None, float | None]  # p50, p99 seconds
    ttfb: tuple[float | None, float | None]
    inflight: int
    requests: int  # since the gateway started (the counter /metrics shows)


def sample(registry: CollectorRegistry, at: float) -> Sample:
    """One reading of the request counters, the two histograms and the in-flight gauge, summed per route."""
    taken = Sample(at)
    for family in registry.collect():
        for item in family.samples:
            route = item.labels.get("route")
            if route is None or route in SERVICE:
                continue
            _add(taken.route(route), item.name, item.labels, item.value)
    return taken


def _add(into: RouteSample, name: str, labels: dict[str, str], value: float) -> None:
    if name == PREFIX + "requests_total":
        into.requests += value
        if labels.get("status", "").startswith("5"):
            into.errors += value
    elif name == PREFIX + "request_duration_seconds_bucket":
        bound = float(labels["le"])
        into.duration[bound] = into.duration.get(bound, 0.0) + value
    elif name == PREFIX + "upstream_ttfb_seconds_bucket":
        bound = float(labels["le"])
        into.ttfb[bound] = into.ttfb.get(bound, 0.0) + value
    elif name == PREFIX + "inflight_requests":
        into.inflight += value


def quantile(q: float, buckets: Buckets) -> float | None:
    """Prometheus's histogram_quantile: linear within the bucket that holds the rank; None without observations;
    the highest finite bound when the rank falls in +Inf."""
    bounds = sorted(buckets)
    total = buckets.get(math.inf, 0.0)
    if total <= 0:
        return None
    rank, previous_bound, previous_count = q * total, 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return previous_bound
            share = (rank - previous_count) / (count - previous_count) if count > previous_count else 1.0
            return previous_bound + (bound - previous_bound) * share
        previous_bound, previous_count = bound, count
    return previous_bound


def _minus(new: Buckets, old: Buckets) -> Buckets:
    return {bound: count - old.get(bound, 0.0) for bound, count in new.items()}


def compare(new: Sample, old: Sample) -> list[RouteNow]:
    span = max(new.at - old.at, 1e-9)
    rows = []
    for name, now in sorted(new.routes.items()):
        then = old.routes.get(name, RouteSample())
        requests = now.requests - then.requests
        duration, ttfb = _minus(now.duration, then.duration), _minus(now.ttfb, then.ttfb)
        rows.append(
            RouteNow(
                name,
                requests / span,
                (now.errors - then.errors) / requests if requests > 0 else None,
                (quantile(0.5, duration), quantile(0.99, duration)),
                (quantile(0.5, ttfb), quantile(0.99, ttfb)),
                round(now.inflight),
                round(now.requests),
            )
        )
    return rows


class LiveView:
    """Samples kept by one worker between looks at the page: enough to anchor a window of WINDOW seconds."""

    def __init__(self, started: float | None = None) -> None:
        self.samples: deque[Sample] = deque([Sample(time.time() if started is None else started)])

    def look(self, registry: CollectorRegistry, now: float | None = None) -> tuple[float, list[RouteNow]]:
        """(window in seconds, one row per route) from a fresh sample and the anchor it is compared with."""
        newest = sample(registry, time.time() if now is None else now)
        self.samples.append(newest)
        # the anchor: the newest sample at least WINDOW old (older ones are no longer needed)
        while len(self.samples) > 2 and newest.at - self.samples[1].at >= WINDOW:
            self.samples.popleft()
        anchor = self.samples[0]
        return newest.at - anchor.at, compare(newest, anchor)
