"""The dashboard's money: spend per UTC day for the last DAYS days by key and by model, and each key's budget
state (this period's tokens and cost against its budgets, last use), all from one read of the usage ledger and
priced by the price file in force, as `acedata-proxy usage` prices them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from app.access.budgets import period_of
from app.access.keys import KeyEntry
from app.ledger import Row
from app.ledger.report import Spend, row_cost
from app.money import PriceList

DAYS = 30
HOURS_PER_DAY = 24


@dataclass(slots=True)
class Series:
    """One stacked chart: a cost per day for each of its series (keys, or models)."""

    days: list[str]
    values: dict[str, list[Spend]] = field(default_factory=dict)

    def add(self, name: str, day: int, cost: float | None, requests: int) -> None:
        line = self.values.setdefault(name, [Spend() for _ in self.days])
        line[day].add(cost, requests)


@dataclass(frozen=True, slots=True)
class KeyState:
    entry: KeyEntry
    period: str  # 2026-12 or 2026-12-03
    tokens: int  # spent this period
    spend: Spend  # this period's cost
    last_used_hour: int | None  # the last UTC hour with a request, within the rows read


def first_hour(now: float) -> int:
    """The earliest hour the dashboard reads: DAYS days back, or the month's start if that is earlier."""
    today = int(now // 3600) // HOURS_PER_DAY * HOURS_PER_DAY
    return min(today - (DAYS - 1) * HOURS_PER_DAY, int(period_of("month", now).start // 3600))


def day_labels(now: float) -> list[str]:
    today = dt.datetime.fromtimestamp(now, dt.UTC).date()
    return [(today - dt.timedelta(days=back)).isoformat() for back in range(DAYS - 1, -1, -1)]


def daily(rows: list[Row], prices: PriceList | None, now: float) -> tuple[Series, Series]:
    """(by key, by model) over the last DAYS days."""
    labels = day_labels(now)
    first_day = int(now // 3600) // HOURS_PER_DAY - (DAYS - 1)
    by_key, by_model = Series(labels), Series(labels)
    for row in rows:
        day = row[0] // HOURS_PER_DAY - first_day
        if 0 <= day < DAYS:
            cost = row_cost(row, prices)
            by_key.add(row[1], day, cost, row[4])
            by_model.add(row[3], day, cost, row[4])
    return by_key, by_model


def key_states(entries: tuple[KeyEntry, ...], rows: list[Row], prices: PriceList | None, now: float) -> list[KeyState]:
    """Each key's period (its budget's day or month; a month without a budget) read in one pass over the rows."""
    periods = {kind: period_of(kind, now) for kind in ("day", "month")}
    starts = {entry.name: int(periods[entry.budget_period].start // 3600) for entry in entries}
    tokens: dict[str, int] = dict.fromkeys(starts, 0)
    spend = {name: Spend() for name in starts}
    last: dict[str, int] = {}
    for row in rows:
        name = row[1]
        if name not in starts:
            continue
        last[name] = max(last.get(name, row[0]), row[0])
        if row[0] >= starts[name]:
            tokens[name] += row[5] + row[6]
            spend[name].add(row_cost(row, prices), row[4])
    return [
        KeyState(entry, periods[entry.budget_period].label, tokens[entry.name], spend[entry.name], last.get(entry.name))
        for entry in entries
    ]
