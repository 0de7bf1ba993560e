"""Per-key RPM and TPM limits, in-process by default, shared through Redis with `PROXY_REDIS_URL`.

RPM: a moving 60-second window (the `limits` library; atomic Lua scripts on Redis), exact across processes.
TPM: a counter per key and clock minute. Admission atomically adds the request's reservation (input estimate +
its output cap) and is refused when the tokens counted before it already reach the limit; when the request ends
the reservation is replaced by the upstream's reported usage. Because the add is atomic, a burst overshoots a
TPM by at most the one request that crossed it, across every process and replica sharing the Redis.
Token budgets (app/access/budgets.py) are counted the same way, in the same storage, over a UTC day or month.
"""

from __future__ import annotations

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
from app.errors import BudgetExceeded, ProxyError, RateLimited, RateLimiterUnavailable
from app.ledger import STORE_ERRORS, Ledger
from app.proxy.usage import Tokens
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


class RateLimiter:
    def __init__(self, settings: Settings, ledger: Ledger):
        self.settings = settings
        self.storage: MemoryStorage | RedisStorage
        if settings.redis_url:
            self.storage = RedisStorage(
                "async+" + settings.redis_url, implementation="redispy", wrap_exceptions=True,
                socket_timeout=1.0, socket_connect_timeout=1.0,
            )  # fmt: skip
        else:
            self.storage = MemoryStorage()
        self.window = MovingWindowRateLimiter(self.storage)
        self.budgets = Budgets(self.storage, ledger)

    async def problem(self) -> str | None:
        """For /readyz: why shared limit state is unusable, or None."""
        if not self.settings.redis_url:
            return None
        try:
            healthy = await self.storage.check()
        except STORAGE_ERRORS:
            healthy = False
        return None if healthy else "redis (PROXY_REDIS_URL) is unreachable"

    async def admit(self, key: KeyEntry | None, info: RequestInfo) -> Ticket:
        """Count the request against the key's limits and budget, adding x-ratelimit-* to the response headers;
        RateLimited (or BudgetExceeded) if over. `info.estimate`: the tokens it may spend."""
        if key is None or (key.rpm is None and key.tpm is None and key.budget_tokens is None):
            return Ticket()
        try:
            return await self._admit(key, info.estimate.total, info)
        except STORAGE_ERRORS as exc:
            if self.settings.rate_limit_fail_open:
                log.warning("rate limit state unreachable, admitting %s unchecked (fail-open): %s", key.name, exc)
                return Ticket()
            log.error("rate limit state unreachable, refusing %s (fail-closed): %s", key.name, exc)
            raise RateLimiterUnavailable(
                "The gateway cannot check this key's rate limits right now; retry shortly."
            ) from None

    async def _admit(self, key: KeyEntry, estimate: int, info: RequestInfo) -> Ticket:
        ticket = Ticket()
        headers = info.response_headers
        if key.tpm is not None:
            ticket = await self._reserve_tokens(key, key.tpm, estimate, headers)
        try:
            if key.budget_tokens is not None:
                ticket.budget = await self.budgets.reserve(key, key.budget_tokens, estimate)
            if key.rpm is not None:
                await self._count_request(key, key.rpm, headers)
        except ProxyError as exc:
            if isinstance(exc, BudgetExceeded):
                info.budget_remaining = 0
            await self._give_back(ticket)
            raise
        return ticket

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
        if (ticket.window_key is None and ticket.budget is None) or info.deferred:
            return
        # a background response's usage charged by its retrieval belongs to its creator (settle_later), not here
        used = info.charged.total if info.charged is not None and info.charged_to is None else 0
        try:
            if ticket.window_key is not None and used != ticket.reservation:
                await self.storage.incr(ticket.window_key, 120, amount=used - ticket.reservation)
            if ticket.budget is not None:
                info.budget_remaining = await self.budgets.settle(ticket.budget, used)
        except STORAGE_ERRORS as exc:
            log.warning("could not settle token usage: %s", exc)

    async def settle_later(self, key: KeyEntry, reserved: int, charged: Tokens) -> None:
        """A background response completed: its creation's budget reservation becomes its usage, in the key's
        current period (the one its creation reserved in, unless the period turned meanwhile)."""
        if key.budget_tokens is None:
            return
        try:
            await self.budgets.adjust(key, charged.total - reserved)
        except STORAGE_ERRORS as exc:
            log.warning("could not settle a background response's usage: %s", exc)

    async def _give_back(self, ticket: Ticket) -> None:
        """A request refused after some of its reservations were made returns them."""
        if ticket.window_key is not None:
            await self.storage.incr(ticket.window_key, 120, amount=-ticket.reservation)
        if ticket.budget is not None:
            await self.budgets.settle(ticket.budget, 0)
