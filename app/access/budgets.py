"""Per-key token budgets per UTC day or month, counted like TPM: admission atomically adds the request's
reservation (input estimate + output cap) to the period's count and is refused when the count before it already
reaches the budget; when the request ends, the reservation is replaced by what the ledger records for it.

So spend can pass a budget by at most the one request admitted just below it (its reservation), plus whatever
output requests in flight at that moment produce beyond their own output caps. The count lives in the rate
limiter's storage: Redis with PROXY_REDIS_URL (shared by every worker and replica), else this process, seeded
from the ledger the first time a period is touched, so a restart keeps the period's spend.
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
from app.ledger import Ledger

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


class Budgets:
    def __init__(self, storage: MemoryStorage | RedisStorage, ledger: Ledger):
        self.storage = storage
        self.ledger = ledger
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

    async def _counter(self, key: KeyEntry) -> tuple[Period, str, int]:
        """The current period, the name of the key's count for it, and how long that count is kept (a little past
        the period, for late settles); seeded from the ledger first, in process."""
        period = self.period(key.budget_period)
        counter = f"acedata-proxy/budget/{key.name}/{period.label}"
        if self.local is not None and counter not in self.local:
            await self._seed(counter, key.name, period)
        return period, counter, int(period.end - time.time()) + DAY

    async def reserve(self, key: KeyEntry, budget: int, reservation: int) -> BudgetHold:
        """Add `reservation` to the key's count for the period; BudgetExceeded if the count was already over."""
        period, counter, expiry = await self._counter(key)
        total = await self._add(counter, expiry, reservation)
        if total - reservation >= budget:
            await self._add(counter, expiry, -reservation)
            wait = max(1, math.ceil(period.end - time.time()))
            raise BudgetExceeded(
                f"Key '{key.name}' has used its budget of {budget} tokens for this {key.budget_period} (UTC).",
                headers={"retry-after": str(wait), "x-should-retry": "false"},
            )
        return BudgetHold(counter, expiry, budget, reservation)

    async def adjust(self, key: KeyEntry, amount: int) -> None:
        """Add `amount` (negative: give back) to the key's count for the current period."""
        _, counter, expiry = await self._counter(key)
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

    async def _seed(self, counter: str, name: str, period: Period) -> None:
        """Once per period and process: start the count from what the ledger already holds (before a restart).
        Requests arriving meanwhile wait for the same read."""
        seeding = self._seeding.get(counter)
        if seeding is None:
            seeding = self._seeding[counter] = asyncio.ensure_future(self._load(counter, name, period))
        try:
            await asyncio.shield(seeding)
        finally:
            if seeding.done():
                self._seeding.pop(counter, None)  # done, or failed: the next request tries again

    async def _load(self, counter: str, name: str, period: Period) -> None:
        spent = await self.ledger.spent(name, int(period.start // 3600))
        assert self.local is not None
        self.local[counter] = self.local.get(counter, 0) + spent
