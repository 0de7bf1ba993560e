"""The durable usage ledger: who spent how many tokens, on which route and model, hour by hour."""

from app.ledger.recorder import FLUSH_INTERVAL, Ledger, charged
from app.ledger.store import STORE_ERRORS, DayRow, Row, Store, open_store

__all__ = ["FLUSH_INTERVAL", "STORE_ERRORS", "DayRow", "Ledger", "Row", "Store", "charged", "open_store"]
