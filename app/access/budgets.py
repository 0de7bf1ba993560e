"""Per-key budgets per UTC day or month, in tokens or in money (or both), counted like TPM: admission atomically
adds the request's reservation (input estimate + output cap) to the period's count and is refused when the count
before it already reaches the budget; when the request ends, the reservation is replaced by what the ledger
records for it.

So spend can pass a budget by at most the one request admitted just below it (its reservation), plus whatever
output requests in flight at that moment produce beyond their own output caps. The count lives in the rate
limiter's storage: Redis with PROXY_REDIS_URL (shared by every worker and replica), else this process, seeded
from the ledger the first time a period is touched, so a restart keeps the period's spend.

A money budget counts millionths of the price file's currency (integers, as Redis adds them): the reservation is
the token estimate priced at the request's model, the settlement what the ledger records for it, priced the same.
"""

from __future__ import annotations

import asyncio
import calendar
import datetime as dt
import math
import time
from dataclasses import dataclass

from limits.aio.storage import MemoryStorage, RedisStorage

from app.access.keys import KeyEntry
from app.errors import BudgetExceeded
from app.ledger import Ledger, Row
from app.ledger.report import counted
from app.money import MICROS, PriceList

DAY = 86400


@dataclass(frozen=True, slots=True)
class Period:
    label: str  # 2026-11-25 or 2026-11
    start: float  # epoch seconds, UTC
    end: float


def period_of(kind: str, now: float | None = None) -> Period:
    """The UTC day or month that contains `now`."""
    moment = dt.datetime.fromtimestamp(time.time() if now is None else now, dt.UTC)
    if kind == "day":
        start = moment.replace(hour=0, minute=0, second=0, microsecond=0)
        return Period(start.strftime("%Y-%m-%d"), start.timestamp(), start.timestamp() + DAY)
    start = moment.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    days = calendar.monthrange(start.year, start.month)[1]
    return Period(start.strftime("%Y-%m"), start.timestamp(), start.timestamp() + days * DAY)


@dataclass(slots=True)
class BudgetHold:
    """An admitted request's reservation against its key's budget for the period."""

    counter: str
    expiry: int
    budget: int
    reserved: int
    money: bool = False  # counted in millionths of the currency, not tokens


def priced_spend(rows: list[Row], prices: PriceList) -> int:
    """Millionths of the currency the ledger's rows cost; a row without a price counts nothing (a key with a money
    budget is refused unpriced models, so only a price removed since leaves such rows)."""
    return sum(prices.micros(row.model, counted(row)) or 0 for row in rows)


class Budgets:
    def __init__(self, storage: MemoryStorage | RedisStorage, ledger: Ledger, prices: PriceList | None = None):
        self.storage = storage
        self.ledger = ledger
        self.prices = prices
        # Without Redis, counts are plain integers of this process (one event loop: no await between reading
        # and adding, so no lock), started from the ledger; Redis holds the shared count itself.
        self.local: dict[str, int] | None = {} if isinstance(storage, MemoryStorage) else None
        self._seeding: dict[str, asyncio.Future[None]] = {}
        self._periods: dict[str, Period] = {}

    def period(self, kind: str) -> Period:
        """The current period, computed once per period rather than per request."""
        now = time.time()
        current = self._periods.get(kind)
        if current is None or not current.start <= now < current.end:
            current = self._periods[kind] = period_of(kind, now)
        return current

    async def _counter(self, key: KeyEntry, money: bool) -> tuple[Period, str, int]:
        """The current period, the name of the key's count for it (tokens, or money), and how long that count is
        kept (a little past the period, for late settles); seeded from the ledger first, in process."""
        period = self.period(key.budget_period)
        counter = f"acedata-proxy/{'budget-money' if money else 'budget'}/{key.name}/{period.label}"
        if self.local is not None and counter not in self.local:
            await self._seed(counter, key.name, period, money)
        return period, counter, int(period.end - time.time()) + DAY

    async def reserve(self, key: KeyEntry, budget: int, reservation: int, money: bool = False) -> BudgetHold:
        """Add `reservation` to the key's count for the period; BudgetExceeded if the count was already over.
        `money`: budget and reservation are millionths of the currency."""
        period, counter, expiry = await self._counter(key, money)
        total = await self._add(counter, expiry, reservation)
        if total - reservation >= budget:
            await self._add(counter, expiry, -reservation)
            wait = max(1, math.ceil(period.end - time.time()))
            raise BudgetExceeded(
                f"Key '{key.name}' has used its budget of {self._amount(budget, money)} for this "
                f"{key.budget_period} (UTC).",
                headers={"retry-after": str(wait), "x-should-retry": "false"},
            )
        return BudgetHold(counter, expiry, budget, reservation, money)

    def _amount(self, budget: int, money: bool) -> str:
        if not money or self.prices is None:
            return f"{budget} tokens"
        return f"{budget / MICROS:.2f} {self.prices.currency}"

    async def adjust(self, key: KeyEntry, amount: int, money: bool = False) -> None:
        """Add `amount` (negative: give back) to the key's count (tokens, or money) for the current period."""
        _, counter, expiry = await self._counter(key, money)
        await self._add(counter, expiry, amount)

    async def settle(self, hold: BudgetHold, charged: int) -> int:
        """Replace the reservation by the tokens charged; returns the budget left."""
        total = await self._add(hold.counter, hold.expiry, charged - hold.reserved)
        hold.reserved = charged
        return max(0, hold.budget - total)

    async def _add(self, counter: str, expiry: int, amount: int) -> int:
        if self.local is None:
            return await self.storage.incr(counter, expiry, amount=amount)
        total = self.local[counter] = self.local.get(counter, 0) + amount
        return total

    async def _seed(self, counter: str, name: str, period: Period, money: bool) -> None:
        """Once per period and process: start the count from what the ledger already holds (before a restart).
        Requests arriving meanwhile wait for the same read."""
        seeding = self._seeding.get(counter)
        if seeding is None:
            seeding = self._seeding[counter] = asyncio.ensure_future(self._load(counter, name, period, money))
        try:
            await asyncio.shield(seeding)
        finally:
            if seeding.done():
                self._seeding.pop(counter, None)  # done, or failed: the next request tries again

    async def _load(self, counter: str, name: str, period: Period, money: bool) -> None:
        since = int(period.start // 3600)
        if money and self.prices is not None:
            spent = priced_spend(await self.ledger.rows(name, since), self.prices)
        else:
            spent = await self.ledger.spent(name, since)
        assert self.local is not None
        self.local[counter] = self.local.get(counter, 0) + spent
