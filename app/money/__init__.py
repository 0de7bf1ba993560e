"""Money: the price file (`PROXY_PRICES_FILE`) and what the ledger's tokens cost under it."""

from app.money.prices import MICROS, UNITS, Price, PriceList, PricesFileError, load, shown

__all__ = ["MICROS", "UNITS", "Price", "PriceList", "PricesFileError", "load", "shown"]
