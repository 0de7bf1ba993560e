"""Per-key RPM and TPM limits, in-process by default, shared through Redis with `PROXY_REDIS_URL`.

RPM: a moving 60-second window (the `limits` library; atomic Lua scripts on Redis), exact across processes.
TPM: a counter per key and clock minute. Admission atomically adds the request's reservation (input estimate +
its output cap) and is refused when the tokens counted before it already reach the limit; when the request ends
the reservation is replaced by the upstream's reported usage. Because the add is atomic, a burst overshoots a
TPM by at most the one request that crossed it, across every process and replica sharing the Redis.
Budgets in tokens and in money (app/access/budgets.py) are counted the same way, in the same storage, over a UTC
day or month.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from dataclasses import dataclass

from limits import RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage, RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter
from limits.errors import StorageError

from app.access.budgets import BudgetHold, Budgets
from app.access.keys import KeyEntry
from app.context import RequestInfo
from app.errors import BudgetExceeded, ModelNotAllowed, ProxyError, RateLimited, RateLimiterUnavailable
from app.ledger import STORE_ERRORS, Ledger
from app.money import MICROS, Counted, PriceList
from app.proxy.table import unit_of
from app.proxy.usage import Owner, Tokens
from app.settings import Settings
from app.types import Headers

log = logging.getLogger("acedata_proxy.ratelimit")

# the ledger's errors too: an in-process budget starts from the ledger
STORAGE_ERRORS: tuple[type[Exception], ...] = (StorageError, OSError, TimeoutError, *STORE_ERRORS)


@dataclass(slots=True)
class Ticket:
    """What an admitted request holds until it ends: its TPM and budget reservations."""

    window_key: str | None = None
    reservation: int = 0
    budget: BudgetHold | None = None
    money: BudgetHold | None = None

    def holds(self) -> bool:
        """Whether anything was reserved: a request that holds nothing has nothing to settle."""
        return self.window_key is not None or self.budget is not None or self.money is not None


class RateLimiter:
    def __init__(self, settings: Settings, ledger: Ledger, prices: PriceList | None = None):
        self.settings = settings
        self.prices = prices
        self.storage: MemoryStorage | RedisStorage
        if settings.redis_url:
            self.storage = RedisStorage(
                "async+" + settings.redis_url,
                implementation="redispy",
                wrap_exceptions=True,
                socket_timeout=1.0,
                socket_connect_timeout=1.0,
            )
        else:
            self.storage = MemoryStorage()
        self.window = MovingWindowRateLimiter(self.storage)
        self.budgets = Budgets(self.storage, ledger, prices)

    async def problem(self) -> str | None:
        """For /readyz: why shared limit state is unusable, or None."""
        if not self.settings.redis_url:
            return None
        try:
            healthy = await self.storage.check()
        except STORAGE_ERRORS:
            healthy = False
        return None if healthy else "redis (PROXY_REDIS_URL) is unreachable"

    async def admit(self, key: KeyEntry | None, info: RequestInfo, metered: bool = True) -> Ticket:
        """Count the request against the key's limits and budget, adding x-ratelimit-* to the response headers;
        RateLimited (or BudgetExceeded) if over. `info.estimate`: the tokens it may spend. A request that is not
        `metered` (a free route) counts against the RPM only."""
        if key is None or (key.rpm is None and key.tpm is None and not key.budgeted):
            return Ticket()
        try:
            return await self._admit(key, info.estimate.total, info, metered)
        except STORAGE_ERRORS as exc:
            if self.settings.rate_limit_fail_open:
                log.warning("rate limit state unreachable, admitting %s unchecked (fail-open): %s", key.name, exc)
                return Ticket()
            log.error("rate limit state unreachable, refusing %s (fail-closed): %s", key.name, exc)
            raise RateLimiterUnavailable(
                "The gateway cannot check this key's rate limits right now; retry shortly."
            ) from None

    async def refuse_early(self, key: KeyEntry | None) -> None:
        """Before a large body is read: RateLimited (or BudgetExceeded) when the key is over its RPM or budget
        already, so that a refused key costs no parse. Counts nothing; admit() still decides, and decides alone
        when the state is unreachable (PROXY_RATE_LIMIT_FAIL_OPEN)."""
        if key is None or (key.rpm is None and not key.budgeted):
            return
        with contextlib.suppress(*STORAGE_ERRORS):
            if key.budget_tokens is not None:
                await self.budgets.reserve(key, key.budget_tokens, 0)  # raises past the budget; holds nothing
            if key.budget_amount is not None:
                await self.budgets.reserve(key, round(key.budget_amount * MICROS), 0, True)
            if key.rpm is not None and not await self.window.test(RateLimitItemPerMinute(key.rpm), "rpm", key.name):
                raise RateLimited(
                    f"Key '{key.name}' is over its limit of {key.rpm} requests per minute.",
                    headers={"retry-after": "1"},
                )

    async def _admit(self, key: KeyEntry, estimate: int, info: RequestInfo, metered: bool) -> Ticket:
        ticket = Ticket()
        headers = info.response_headers
        if key.tpm is not None and metered:
            ticket = await self._reserve_tokens(key, key.tpm, estimate, headers)
        try:
            if key.budget_tokens is not None and metered:
                ticket.budget = await self.budgets.reserve(key, key.budget_tokens, estimate)
            if key.budget_amount is not None and metered:
                reservation = self._cost(key, info)
                ticket.money = await self.budgets.reserve(key, round(key.budget_amount * MICROS), reservation, True)
            if key.rpm is not None:
                await self._count_request(key, key.rpm, headers)
        except ProxyError as exc:
            if isinstance(exc, BudgetExceeded):
                info.budget_remaining = 0
            await self._give_back(ticket)
            raise
        return ticket

    def _cost(self, key: KeyEntry, info: RequestInfo) -> int:
        """Millionths of the currency the request's estimate costs. A request that can spend nothing (no body)
        costs 0; an unpriced model is refused to a key with a money budget, whose spend could not be counted."""
        model, tokens = info.model, info.estimate
        if not tokens.total and not tokens.units:
            return 0
        cost = self._micros(model, info.route, 1, tokens)
        if cost is None:
            raise ModelNotAllowed(
                f"Key '{key.name}' has a budget in money and model '{(model or '-')[:80]}' has no price in "
                "PROXY_PRICES_FILE, so its spend could not be counted.",
                param="model",
            )
        return cost

    async def _count_request(self, key: KeyEntry, rpm: int, headers: Headers) -> None:
        item = RateLimitItemPerMinute(rpm)
        admitted = await self.window.hit(item, "rpm", key.name)
        stats = await self.window.get_window_stats(item, "rpm", key.name)
        headers += [
            (b"x-ratelimit-limit-requests", b"%d" % rpm),
            (b"x-ratelimit-remaining-requests", b"%d" % stats.remaining),
        ]
        if not admitted:
            wait = max(1, math.ceil(stats.reset_time - time.time()))
            raise RateLimited(
                f"Key '{key.name}' is over its limit of {rpm} requests per minute.", headers={"retry-after": str(wait)}
            )

    async def _reserve_tokens(self, key: KeyEntry, tpm: int, reservation: int, headers: Headers) -> Ticket:
        minute = int(time.time() // 60)
        window_key = f"acedata-proxy/tpm/{key.name}/{minute}"
        total = await self.storage.incr(window_key, 120, amount=reservation)
        before = total - reservation
        if before >= tpm:
            await self.storage.incr(window_key, 120, amount=-reservation)
            headers += [(b"x-ratelimit-limit-tokens", b"%d" % tpm), (b"x-ratelimit-remaining-tokens", b"0")]
            wait = max(1, math.ceil((minute + 1) * 60 - time.time()))
            raise RateLimited(
                f"Key '{key.name}' is over its limit of {tpm} tokens per minute.", headers={"retry-after": str(wait)}
            )
        remaining = max(0, tpm - total)
        headers += [(b"x-ratelimit-limit-tokens", b"%d" % tpm), (b"x-ratelimit-remaining-tokens", b"%d" % remaining)]
        return Ticket(window_key, reservation)

    async def settle(self, ticket: Ticket, info: RequestInfo) -> None:
        """When the request ends, its reservations are replaced by what it was charged (`info.charged`, the one
        rule of app/proxy/usage.py). A background response's creation keeps them until it completes."""
        if not ticket.holds() or info.deferred:
            return
        # a background response's usage charged by its retrieval belongs to its creator (settle_later), not here
        used = info.charged.total if info.charged is not None and info.charged_to is None else 0
        try:
            if ticket.window_key is not None and used != ticket.reservation:
                await self.storage.incr(ticket.window_key, 120, amount=used - ticket.reservation)
            if ticket.budget is not None:
                info.budget_remaining = await self.budgets.settle(ticket.budget, used)
            if ticket.money is not None:
                await self.budgets.settle(ticket.money, self._charged_cost(info))
        except STORAGE_ERRORS as exc:
            log.warning("could not settle token usage: %s", exc)

    async def settle_later(self, key: KeyEntry, owner: Owner, charged: Tokens) -> None:
        """A background response completed: its creation's budget reservations (tokens, money) become its usage,
        in the key's current period (the one its creation reserved in, unless the period turned meanwhile)."""
        try:
            if key.budget_tokens is not None:
                await self.budgets.adjust(key, charged.total - owner.reserved)
            if key.budget_amount is not None and self.prices is not None:
                cost = self._micros(owner.model, owner.route, 1, charged) or 0
                await self.budgets.adjust(key, cost - owner.reserved_cost, money=True)
        except STORAGE_ERRORS as exc:
            log.warning("could not settle a background response's usage: %s", exc)

    def cost(self, model: str | None, route: str, tokens: Tokens) -> tuple[int, int]:
        """The tokens and millionths of the currency a reservation of `tokens` of `model` on `route` holds."""
        return tokens.total, self._micros(model, route, 1, tokens) or 0

    def _micros(self, model: str | None, route: str, requests: int, tokens: Tokens) -> int | None:
        """What `tokens` (and units, in the route's unit) of `model` cost; None: no price file, or no price."""
        if self.prices is None:
            return None
        counted = Counted(requests, tokens.input, tokens.output, tokens.units, unit_of(route))
        return self.prices.micros(model or "-", counted)

    def _charged_cost(self, info: RequestInfo) -> int:
        """What the ledger records for the request, priced as reports price it (a background response's usage
        charged by its retrieval belongs to its creator: settle_later)."""
        charged = info.charged
        if charged is None or info.charged_to is not None or self.prices is None:
            return 0
        return self._micros(info.model, info.route, 1, charged) or 0

    async def _give_back(self, ticket: Ticket) -> None:
        """A request refused after some of its reservations were made returns them."""
        if ticket.window_key is not None:
            await self.storage.incr(ticket.window_key, 120, amount=-ticket.reservation)
        for hold in (ticket.budget, ticket.money):
            if hold is not None:
                await self.budgets.settle(hold, 0)
