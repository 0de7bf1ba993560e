"""The durable usage ledger: who spent how many tokens, on which route and model, hour by hour."""

from app.ledger.recorder import FLUSH_INTERVAL, Ledger
from app.ledger.store import STORE_ERRORS, Counts, DayRow, Row, RowKey, Store, open_store
from app.proxy.usage import Owner

__all__ = [
    "FLUSH_INTERVAL",
    "STORE_ERRORS",
    "Counts",
    "DayRow",
    "Ledger",
    "Owner",
    "Row",
    "RowKey",
    "Store",
    "open_store",
]
