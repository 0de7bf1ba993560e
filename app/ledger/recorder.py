"""The gateway's side of the usage ledger: each finished request is added to an in-memory batch (a dict update
on the event loop, nothing else on the hot path), and every FLUSH_INTERVAL the batch is written by the ledger's
own thread. So a crash or SIGKILL loses at most the last interval's requests of that process; SIGTERM loses
nothing (the lifespan's shutdown writes the last batch after in-flight requests end).

While the store cannot be written (Redis unreachable, a disk full), batches stay in memory, merged by row, up to
MAX_PENDING_ROWS distinct rows (hour, key, route, model); requests that would need a new row beyond that are
counted as dropped and logged, never queued without bound.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

from app.context import RequestInfo
from app.ledger.store import STORE_ERRORS, Counts, DayRow, Row, RowKey, Store, open_store
from app.proxy.usage import Owner, Tokens
from app.settings import Settings

log = logging.getLogger("acedata_proxy.ledger")

FLUSH_INTERVAL = 1.0  # seconds: the most a crash can lose
# at 400 rows an hour (20 keys x 20 models), 5 days of Redis outage; its memory: docs/performance-facts.md
MAX_PENDING_ROWS = 50_000
MODEL_CHARS = 200
T = TypeVar("T")


class Ledger:
    def __init__(self, settings: Settings, opener: Callable[[Settings], Store] = open_store):
        self.settings = settings
        self.opener = opener
        self.store: Store | None = None
        self.pending: dict[RowKey, Counts] = {}
        self.dropped = 0  # requests not recorded because the buffer was full
        self.failing: str | None = None  # why the last write failed, while it does
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="ledger")  # one writer: batches stay in order
        self._stop = asyncio.Event()
        self._flusher: asyncio.Task[None] | None = None

    def record(self, info: RequestInfo) -> None:
        """Add a finished request and what it was charged (`info.charged`) to the current batch: called once per
        forwarded request, on the loop. A request the upstream never answered is not recorded."""
        charged = info.charged
        if charged is None:
            return
        row = RowKey(int(time.time() // 3600), info.key_name or "-", info.route, (info.model or "-")[:MODEL_CHARS])
        if info.charged_to is None:
            self._add(row, Counts(1, charged.input, charged.output, charged.units))
            return
        self._add(row, Counts(requests=1))
        owner = info.charged_to
        self.charge(owner.key, owner.route, owner.model, charged)

    def charge(self, key: str, route: str, model: str, tokens: Tokens) -> None:
        """Add tokens to a key's row without a request: a background response's usage, charged when it completes."""
        if tokens.total:
            self._add(
                RowKey(int(time.time() // 3600), key, route, model[:MODEL_CHARS]),
                Counts(0, tokens.input, tokens.output, tokens.units),
            )

    def _add(self, row: RowKey, counts: Counts) -> None:
        current = self.pending.get(row)
        if current is not None:
            self.pending[row] = current.plus(counts)
        elif len(self.pending) < MAX_PENDING_ROWS:
            self.pending[row] = counts
        else:
            self.dropped += counts.requests

    async def start(self) -> None:
        self.store = await self._call(self.opener, self.settings)
        self._flusher = asyncio.get_running_loop().create_task(self._flush_every_interval())
        log.info("usage ledger: %s", ", ".join(f"{k}={v}" for k, v in self.describe().items()))

    async def _flush_every_interval(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), FLUSH_INTERVAL)
            await self.flush()

    async def flush(self) -> None:
        if not self.pending or self.store is None:
            return
        batch, self.pending = self.pending, {}
        try:
            await self._call(self.store.add, batch)
        except STORE_ERRORS as exc:
            for row, counts in batch.items():  # back in, merged with what came meanwhile
                self._add(row, counts)
            if self.failing is None:
                log.error("usage ledger: cannot write (%d rows kept in memory until it can): %s", len(batch), exc)
            self.failing = f"usage ledger storage unwritable: {type(exc).__name__}"
            return
        if self.failing is not None:
            log.info("usage ledger: writing again")
            self.failing = None
        if self.dropped:
            log.error("usage ledger: %d requests were not recorded (buffer full while storage was down)", self.dropped)
            self.dropped = 0

    async def close(self) -> None:
        """The last batch, written before the process exits."""
        self._stop.set()
        if self._flusher is not None:
            await self._flusher
        await self.flush()
        if self.store is not None:
            await self._call(self.store.close)
        self._executor.shutdown(wait=True)

    async def rows(self, key: str | None, since_hour: int) -> list[Row]:
        assert self.store is not None
        return await self._call(self.store.rows, key, since_hour)

    async def days(self, since_hour: int) -> list[DayRow]:
        assert self.store is not None
        return await self._call(self.store.days, since_hour)

    async def spent(self, key: str, since_hour: int) -> int:
        assert self.store is not None
        return await self._call(self.store.spent, key, since_hour)

    async def remember(self, response_id: str, owner: Owner) -> None:
        """Written at once, not batched: the owner may retrieve the response the moment it has the id."""
        assert self.store is not None
        await self._call(self.store.remember, response_id, owner)

    async def owner(self, response_id: str) -> Owner | None:
        assert self.store is not None
        return await self._call(self.store.owner, response_id)

    async def claim(self, response_id: str) -> bool:
        assert self.store is not None
        return await self._call(self.store.claim, response_id)

    def describe(self) -> dict[str, object]:
        """For /readyz: where the ledger is kept (never a URL or password), how often it is written, and what
        waits to be."""
        details: dict[str, object] = dict(self.store.describe()) if self.store is not None else {}
        return {**details, "flush_interval_s": FLUSH_INTERVAL, "pending_rows": len(self.pending)}

    def problem(self) -> str | None:
        return self.failing

    async def _call(self, function: Callable[..., T], *args: object) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)
