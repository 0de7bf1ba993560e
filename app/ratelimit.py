"""Per-key RPM and TPM limits, in-process by default, shared through Redis with `PROXY_REDIS_URL`.

RPM: a moving 60-second window (the `limits` library; atomic Lua scripts on Redis), exact across processes.
TPM: a counter per key and clock minute. Admission atomically adds the request's reservation (input estimate +
its output cap) and is refused when the tokens counted before it already reach the limit; when the request ends
the reservation is replaced by the upstream's reported usage. Because the add is atomic, a burst overshoots a
TPM by at most the one request that crossed it, across every process and replica sharing the Redis.
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

from app.errors import ProxyError, RateLimited, RateLimiterUnavailable
from app.keys import KeyEntry
from app.settings import Settings
from app.types import Headers

log = logging.getLogger("acedata_proxy.ratelimit")

BYTES_PER_TOKEN = 4  # the usual estimate for English text and JSON
STORAGE_ERRORS = (StorageError, OSError, TimeoutError)


@dataclass(slots=True)
class Ticket:
    """What an admitted request holds until it ends: its TPM reservation."""

    window_key: str | None = None
    reservation: int = 0


class RateLimiter:
    def __init__(self, settings: Settings):
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

    async def problem(self) -> str | None:
        """For /readyz: why shared limit state is unusable, or None."""
        if not self.settings.redis_url:
            return None
        try:
            healthy = await self.storage.check()
        except STORAGE_ERRORS:
            healthy = False
        return None if healthy else "redis (PROXY_REDIS_URL) is unreachable"

    async def admit(self, key: KeyEntry, body: bytes, output: int, headers: Headers) -> Ticket:
        """Count the request against the key's limits, adding x-ratelimit-* to `headers`; RateLimited if over.
        `output`: the output tokens its TPM reservation holds besides the body's estimate."""
        if key.rpm is None and key.tpm is None:
            return Ticket()
        try:
            return await self._admit(key, body, output, headers)
        except STORAGE_ERRORS as exc:
            if self.settings.rate_limit_fail_open:
                log.warning("rate limit state unreachable, admitting %s unchecked (fail-open): %s", key.name, exc)
                return Ticket()
            log.error("rate limit state unreachable, refusing %s (fail-closed): %s", key.name, exc)
            raise RateLimiterUnavailable(
                "The gateway cannot check this key's rate limits right now; retry shortly."
            ) from None

    async def _admit(self, key: KeyEntry, body: bytes, output: int, headers: Headers) -> Ticket:
        ticket = Ticket()
        if key.tpm is not None:
            ticket = await self._reserve_tokens(key, key.tpm, max(1, len(body) // BYTES_PER_TOKEN) + output, headers)
        if key.rpm is not None:
            try:
                await self._count_request(key, key.rpm, headers)
            except ProxyError:
                await self.settle(ticket, None, False)
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

    async def settle(self, ticket: Ticket, used: int | None, succeeded: bool) -> None:
        """Replace the reservation by the reported usage; with no usage, a success keeps its estimate and a
        failure gives it back."""
        if ticket.window_key is None:
            return
        actual = used if used is not None else (ticket.reservation if succeeded else 0)
        if actual != ticket.reservation:
            try:
                await self.storage.incr(ticket.window_key, 120, amount=actual - ticket.reservation)
            except STORAGE_ERRORS as exc:
                log.warning("could not settle token usage: %s", exc)
