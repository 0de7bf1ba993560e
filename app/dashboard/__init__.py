"""The dashboard at GET /admin: live figures from the metrics registry, spend and budgets from the usage ledger.

Its cost stays off the request path: the ledger is read, summed by day, on the ledger's own thread at most once
per LEDGER_SECONDS; the metrics are sampled and the page rendered on a worker thread, and one
rendering serves every look for CACHE_SECONDS, however many pages are open.
"""

from __future__ import annotations

import asyncio
import time

from app.access.auth import KeyStore
from app.dashboard.live import LiveView
from app.dashboard.page import Figures, page
from app.dashboard.spend import Summary, daily, first_hour, key_states, summarize
from app.ledger import Ledger
from app.metrics import Metrics
from app.money import PriceList

CACHE_SECONDS = 2.0
LEDGER_SECONDS = 5.0  # spend moves slower than rates; a busy team's 30 days are tens of thousands of rows

__all__ = ["CACHE_SECONDS", "LEDGER_SECONDS", "Dashboard", "page"]


class Dashboard:
    def __init__(self, metrics: Metrics, ledger: Ledger, keys: KeyStore | None, prices: PriceList | None):
        self.metrics, self.ledger, self.keys, self.prices = metrics, ledger, keys, prices
        self.live = LiveView()
        self._lock = asyncio.Lock()
        self._cached: tuple[float, str] | None = None
        self._summary: Summary | None = None

    async def render(self) -> str:
        """The page with its figures, rendered at most once per CACHE_SECONDS by this worker."""
        async with self._lock:
            now = time.time()
            if self._cached is not None and now - self._cached[0] < CACHE_SECONDS:
                return self._cached[1]
            if self._summary is None or now - self._summary.now >= LEDGER_SECONDS:
                self._summary = summarize(await self.ledger.days(first_hour(now)), now)
            html = await asyncio.to_thread(self._render, self._summary, now)
            self._cached = (now, html)
            return html

    def _render(self, summary: Summary, now: float) -> str:
        window, routes = self.live.look(self.metrics.source())
        by_key, by_model = daily(summary, self.prices)
        entries = self.keys.entries if self.keys is not None else ()
        described = self.ledger.describe()
        ledger = f"{described.get('storage', '?')} {described.get('path', '')}".strip()
        return page(
            Figures(
                window,
                routes,
                by_key,
                by_model,
                key_states(entries, summary, self.prices),
                self.prices.currency if self.prices else None,
                self.prices.source if self.prices else None,
                ledger,
                now,
            )
        )
