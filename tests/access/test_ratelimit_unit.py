"""RateLimiter in-process on its in-memory storage, as a unit: RPM and TPM admission and their headers, the TPM
reservation replaced by the request's charge when it ends, reservations a refused request gives back, and what an
unreachable storage means (fail closed, or open). test_ratelimit.py holds the real-socket tests, Redis included."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace

import pytest
from limits.errors import StorageError

from app.access import ratelimit
from app.access.keys import KeyEntry
from app.access.ratelimit import RateLimiter, Ticket
from app.context import RequestInfo
from app.errors import BudgetExceeded, RateLimited, RateLimiterUnavailable
from app.ledger import Ledger
from app.proxy.usage import Tokens
from tests.helpers.inprocess import settings

NOW = 1_800_000_030.0  # mid-minute: every TPM count of a test falls in one clock minute
ESTIMATE = Tokens(30, 20)  # a reservation of 50 tokens


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    ledger = Ledger(settings(data_dir=tmp_path))
    await ledger.start()
    yield ledger
    await ledger.close()


@pytest.fixture
def limiter(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> RateLimiter:
    monkeypatch.setattr(ratelimit, "time", SimpleNamespace(time=lambda: NOW))
    return RateLimiter(ledger.settings, ledger)


def key(**limits: int) -> KeyEntry:
    return KeyEntry("team", "0" * 64, **limits)  # type: ignore[arg-type]


def request() -> RequestInfo:
    return RequestInfo("r", estimate=ESTIMATE)


def headers(info: RequestInfo) -> dict[bytes, bytes]:
    return dict(info.response_headers)


async def tokens_counted(limiter: RateLimiter, ticket: Ticket) -> int:
    assert ticket.window_key is not None
    return await limiter.storage.get(ticket.window_key)


async def test_a_key_without_limits_is_admitted_unchecked(limiter: RateLimiter) -> None:
    for entry in (None, key()):
        info = request()
        ticket = await limiter.admit(entry, info)
        assert (ticket.window_key, ticket.budget) == (None, None)
        assert info.response_headers == []


async def test_rpm_admits_up_to_the_limit_then_refuses_with_retry_after(limiter: RateLimiter) -> None:
    for remaining in (2, 1, 0):
        info = request()
        await limiter.admit(key(rpm=3), info)
        assert headers(info)[b"x-ratelimit-remaining-requests"] == b"%d" % remaining
    info = request()
    with pytest.raises(RateLimited, match="over its limit of 3 requests per minute") as refused:
        await limiter.admit(key(rpm=3), info)
    assert 1 <= int(refused.value.headers["retry-after"]) <= 60
    assert headers(info)[b"x-ratelimit-limit-requests"] == b"3"


async def test_tpm_admits_while_the_count_before_is_under_the_limit(limiter: RateLimiter) -> None:
    """The request that crosses the limit is admitted (the overshoot is at most one reservation); the next one
    is refused, and its reservation is not counted."""
    tickets = []
    for remaining in (b"50", b"0"):
        info = request()
        tickets.append(await limiter.admit(key(tpm=100), info))
        assert headers(info)[b"x-ratelimit-remaining-tokens"] == remaining
    info = request()
    with pytest.raises(RateLimited, match="100 tokens per minute") as refused:
        await limiter.admit(key(tpm=100), info)
    assert refused.value.headers["retry-after"] == "30"
    assert headers(info)[b"x-ratelimit-remaining-tokens"] == b"0"
    assert await tokens_counted(limiter, tickets[0]) == 100


@pytest.mark.parametrize(
    ("charged", "deferred", "counted"),
    [(Tokens(10, 5), False, 15), (ESTIMATE, False, 50), (None, False, 0), (None, True, 50)],
    ids=["charged", "charged-the-estimate", "never-answered", "background-creation"],
)
async def test_settle_replaces_the_reservation_by_the_charge(
    limiter: RateLimiter, charged: Tokens | None, deferred: bool, counted: int
) -> None:
    """What the request was charged replaces its reservation (nothing when the upstream never answered); a
    background response's creation keeps it until the response completes."""
    info = request()
    ticket = await limiter.admit(key(tpm=1000), info)
    info.charged, info.deferred = charged, deferred
    await limiter.settle(ticket, info)
    assert await tokens_counted(limiter, ticket) == counted


async def test_a_request_refused_by_rpm_gives_back_its_tpm_reservation(limiter: RateLimiter) -> None:
    first = await limiter.admit(key(rpm=1, tpm=1000), request())
    with pytest.raises(RateLimited, match="requests per minute"):
        await limiter.admit(key(rpm=1, tpm=1000), request())
    assert await tokens_counted(limiter, first) == 50


async def test_a_spent_budget_refuses_and_says_none_is_left(limiter: RateLimiter) -> None:
    await limiter.admit(key(budget_tokens=10), request())
    info = request()
    with pytest.raises(BudgetExceeded):
        await limiter.admit(key(budget_tokens=10), info)
    assert info.budget_remaining == 0


async def broken_storage(*args: object, **kwargs: object) -> int:
    raise StorageError(ConnectionError("redis went away"))


async def test_unreachable_storage_fails_closed_by_default(
    limiter: RateLimiter, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(limiter.storage, "incr", broken_storage)
    with pytest.raises(RateLimiterUnavailable, match="cannot check this key's rate limits"):
        await limiter.admit(key(tpm=100), request())


async def test_unreachable_storage_fails_open_when_configured(ledger: Ledger, monkeypatch: pytest.MonkeyPatch) -> None:
    limiter = RateLimiter(settings(data_dir=ledger.settings.data_dir, rate_limit_fail_open=True), ledger)
    monkeypatch.setattr(limiter.storage, "incr", broken_storage)
    ticket = await limiter.admit(key(tpm=100), request())
    assert ticket.window_key is None
