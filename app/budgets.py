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

from app.errors import BudgetExceeded
from app.keys import KeyEntry
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
        # in-process counts start from the ledger; Redis holds the shared count itself
        self.seed = isinstance(storage, MemoryStorage)
        self._seeded: dict[str, asyncio.Future[None]] = {}

    async def reserve(self, key: KeyEntry, budget: int, reservation: int) -> BudgetHold:
        """Add `reservation` to the key's count for the period; BudgetExceeded if the count was already over."""
        period = period_of(key.budget_period)
        counter = f"acedata-proxy/budget/{key.name}/{period.label}"
        expiry = int(period.end - time.time()) + DAY  # the count outlives its period a little, for late settles
        if self.seed:
            await self._seed(counter, expiry, key.name, period)
        total = await self.storage.incr(counter, expiry, amount=reservation)
        if total - reservation >= budget:
            await self.storage.incr(counter, expiry, amount=-reservation)
            wait = max(1, math.ceil(period.end - time.time()))
            raise BudgetExceeded(
                f"Key '{key.name}' has used its budget of {budget} tokens for this {key.budget_period} (UTC).",
                headers={"retry-after": str(wait), "x-should-retry": "false"},
            )
        return BudgetHold(counter, expiry, budget, reservation)

    async def settle(self, hold: BudgetHold, charged: int) -> int:
        """Replace the reservation by the tokens charged; returns the budget left."""
        delta = charged - hold.reserved
        total = await self.storage.incr(hold.counter, hold.expiry, amount=delta)
        hold.reserved = charged
        return max(0, hold.budget - total)

    async def _seed(self, counter: str, expiry: int, name: str, period: Period) -> None:
        """Once per period and process: start the count from what the ledger already holds (before a restart)."""
        seeding = self._seeded.get(counter)
        if seeding is None:
            seeding = self._seeded[counter] = asyncio.ensure_future(self._load(counter, expiry, name, period))
        try:
            await asyncio.shield(seeding)
        except Exception:
            self._seeded.pop(counter, None)  # the next request tries again
            raise

    async def _load(self, counter: str, expiry: int, name: str, period: Period) -> None:
        spent = await self.ledger.spent(name, int(period.start // 3600))
        if spent:
            await self.storage.incr(counter, expiry, amount=spent)
