"""The dashboard at GET /admin: live figures from the metrics registry, spend and budgets from the usage ledger.

Its cost stays off the request path: the ledger is read on the ledger's own thread, the metrics sampled and the
page rendered on a worker thread, and one rendering serves every look for CACHE_SECONDS, however many pages are
open.
"""

from __future__ import annotations

import asyncio
import time

from app.access.auth import KeyStore
from app.dashboard.live import LiveView
from app.dashboard.page import Figures, page
from app.dashboard.spend import daily, first_hour, key_states
from app.ledger import Ledger, Row
from app.metrics import Metrics
from app.money import PriceList

CACHE_SECONDS = 2.0

__all__ = ["CACHE_SECONDS", "Dashboard", "page"]


class Dashboard:
    def __init__(self, metrics: Metrics, ledger: Ledger, keys: KeyStore | None, prices: PriceList | None):
        self.metrics, self.ledger, self.keys, self.prices = metrics, ledger, keys, prices
        self.live = LiveView()
        self._lock = asyncio.Lock()
        self._cached: tuple[float, str] | None = None

    async def render(self) -> str:
        """The page with its figures, rendered at most once per CACHE_SECONDS by this worker."""
        async with self._lock:
            now = time.time()
            if self._cached is not None and now - self._cached[0] < CACHE_SECONDS:
                return self._cached[1]
            rows = await self.ledger.rows(None, first_hour(now))
            html = await asyncio.to_thread(self._render, rows, now)
            self._cached = (now, html)
            return html

    def _render(self, rows: list[Row], now: float) -> str:
        window, routes = self.live.look(self.metrics.source())
        by_key, by_model = daily(rows, self.prices, now)
        entries = self.keys.entries if self.keys is not None else ()
        described = self.ledger.describe()
        ledger = f"{described.get('storage', '?')} {described.get('path', '')}".strip()
        return page(
            Figures(
                window, routes, by_key, by_model, key_states(entries, rows, self.prices, now),
                self.prices.currency if self.prices else None, self.prices.source if self.prices else None,
                ledger, now,
            )
        )  # fmt: skip
