"""The dashboard's money: spend per UTC day for the last DAYS days by key and by model, and each key's budget
state (this period's tokens and cost against its budgets, last use), all from one read of the usage ledger,
summed by day (budget periods start at midnight, so nothing finer is needed) and priced by the price file in
force, as `acedata-proxy usage` prices them. Cost is linear in the counts, so pricing a day's sum is pricing
each of its hours."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from app.access.budgets import period_of
from app.access.keys import KeyEntry
from app.ledger import Counts, DayRow
from app.ledger.report import Spend
from app.money import Counted, PriceList
from app.proxy.table import unit_of

DAYS = 30
HOURS_PER_DAY = 24


@dataclass(slots=True)
class Series:
    """One stacked chart: a cost per day for each of its series (keys, or models)."""

    days: list[str]
    values: dict[str, list[Spend]] = field(default_factory=dict)

    def add(self, name: str, day: int, cost: float | None, requests: int) -> None:
        line = self.values.get(name)
        if line is None:
            line = self.values[name] = [Spend() for _ in self.days]
        line[day].add(cost, requests)


@dataclass(frozen=True, slots=True)
class KeyState:
    entry: KeyEntry
    period: str  # 2026-12 or 2026-12-03
    tokens: int  # spent this period
    spend: Spend  # this period's cost
    last_used_hour: int | None  # the last UTC hour with a request, within the rows read


@dataclass(slots=True)
class Summary:
    """The ledger since `first_hour`, summed per (UTC day, key, route, model) by the store: a few thousand entries
    where a busy team's hourly rows are tens of thousands, so each look reads and prices little."""

    now: float
    # (day, key, route, model) -> what that day's rows counted
    days: dict[tuple[int, str, str, str], Counts] = field(default_factory=dict)
    last_hour: dict[str, int] = field(default_factory=dict)

    def cost(self, route: str, model: str, counts: Counts, prices: PriceList | None) -> float | None:
        if prices is None:
            return None
        return prices.cost(model, Counted(*counts, unit=unit_of(route)))


def first_hour(now: float) -> int:
    """The earliest hour the dashboard reads: DAYS days back, or the month's start if that is earlier."""
    today = int(now // 3600) // HOURS_PER_DAY * HOURS_PER_DAY
    return min(today - (DAYS - 1) * HOURS_PER_DAY, int(period_of("month", now).start // 3600))


def summarize(rows: list[DayRow], now: float) -> Summary:
    summary = Summary(now)
    for row in rows:
        summary.days[(row.day, row.key, row.route, row.model)] = row.counts
        summary.last_hour[row.key] = max(summary.last_hour.get(row.key, row.last_hour), row.last_hour)
    return summary


def day_labels(now: float) -> list[str]:
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    return [(today - dt.timedelta(days=back)).isoformat() for back in range(DAYS - 1, -1, -1)]


def daily(summary: Summary, prices: PriceList | None) -> tuple[Series, Series]:
    """(by key, by model) over the last DAYS days."""
    labels = day_labels(summary.now)
    first_day = int(summary.now // 3600) // HOURS_PER_DAY - (DAYS - 1)
    by_key, by_model = Series(labels), Series(labels)
    for (day, key, route, model), counts in summary.days.items():
        if 0 <= day - first_day < DAYS:
            cost = summary.cost(route, model, counts, prices)
            by_key.add(key, day - first_day, cost, counts.requests)
            by_model.add(model, day - first_day, cost, counts.requests)
    return by_key, by_model


def key_states(entries: tuple[KeyEntry, ...], summary: Summary, prices: PriceList | None) -> list[KeyState]:
    """Each key's period (its budget's day or month; a month without a budget)."""
    periods = {kind: period_of(kind, summary.now) for kind in ("day", "month")}
    first_day = {entry.name: int(periods[entry.budget_period].start // 86400) for entry in entries}
    tokens: dict[str, int] = dict.fromkeys(first_day, 0)
    spend = {name: Spend() for name in first_day}
    for (day, key, route, model), counts in summary.days.items():
        if key in first_day and day >= first_day[key]:
            tokens[key] += counts.tokens
            spend[key].add(summary.cost(route, model, counts, prices), counts.requests)
    return [
        KeyState(entry, periods[name].label, tokens[entry.name], spend[entry.name], summary.last_hour.get(entry.name))
        for entry in entries
        for name in (entry.budget_period,)
    ]
