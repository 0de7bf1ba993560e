"""Money: the price file (`PROXY_PRICES_FILE`) and what the ledger's tokens and units cost under it."""

from app.money.prices import MICROS, UNITS, Counted, Price, PriceList, PricesFileError, load, shown

__all__ = ["MICROS", "UNITS", "Counted", "Price", "PriceList", "PricesFileError", "load", "shown"]
