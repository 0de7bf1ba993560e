"""Budgets as a unit, in-process on the in-memory storage with a stand-in ledger: reservations against the
period's count, the refusal once it is spent, the count replaced when a request settles, and the count seeded
from the ledger once per period (one read shared by concurrent first requests; a failed read tried again).
test_budgets.py holds the real-socket tests (two gateways sharing Redis, a restart, a concurrent burst)."""

from __future__ import annotations

import asyncio
from typing import cast

import pytest
from limits.aio.storage import MemoryStorage

from app.access.budgets import Budgets
from app.access.keys import KeyEntry
from app.errors import BudgetExceeded
from app.ledger import Ledger

TEAM = KeyEntry("team", "0" * 64, budget_tokens=100, budget_period="day")


class SpentLedger:
    """What Budgets reads of the ledger: the tokens a key spent since an hour. `failures` reads fail first."""

    def __init__(self, spent: int, failures: int = 0):
        self.spent_tokens = spent
        self.failures = failures
        self.reads = 0

    async def spent(self, key: str, since_hour: int) -> int:
        self.reads += 1
        await asyncio.sleep(0)  # a real read leaves the loop: concurrent requests arrive meanwhile
        if self.failures:
            self.failures -= 1
            raise OSError("the ledger's disk is gone")
        return self.spent_tokens


def budgets(ledger: SpentLedger) -> Budgets:
    return Budgets(MemoryStorage(), cast(Ledger, ledger))


async def test_reservations_are_admitted_until_the_count_before_reaches_the_budget() -> None:
    counting = budgets(SpentLedger(0))
    holds = [await counting.reserve(TEAM, 100, 60) for _ in range(2)]  # 0, then 60: both under 100
    with pytest.raises(BudgetExceeded, match="used its budget of 100 tokens for this day") as refused:
        await counting.reserve(TEAM, 100, 60)
    assert refused.value.headers["x-should-retry"] == "false"
    assert 1 <= int(refused.value.headers["retry-after"]) <= 86400
    assert await counting.settle(holds[0], 10) == 30  # 10 + 60 of 100 counted: 30 left
    assert await counting.settle(holds[1], 0) == 90


async def test_the_count_starts_from_what_the_ledger_holds_read_once() -> None:
    ledger = SpentLedger(95)
    counting = budgets(ledger)
    holds = await asyncio.gather(*(counting.reserve(TEAM, 100, 1) for _ in range(5)))  # 95 .. 99: admitted
    with pytest.raises(BudgetExceeded):
        await counting.reserve(TEAM, 100, 1)
    assert ledger.reads == 1
    assert [hold.reserved for hold in holds] == [1] * 5


async def test_a_failed_ledger_read_is_tried_again_by_the_next_request() -> None:
    ledger = SpentLedger(40, failures=1)
    counting = budgets(ledger)
    with pytest.raises(OSError, match="disk is gone"):
        await counting.reserve(TEAM, 100, 10)
    hold = await counting.reserve(TEAM, 100, 10)
    assert await counting.settle(hold, 10) == 50
    assert ledger.reads == 2


def test_the_period_is_computed_once_per_period() -> None:
    counting = budgets(SpentLedger(0))
    assert counting.period("day") is counting.period("day")
    assert counting.period("month").label == counting.period("day").label[:7]
