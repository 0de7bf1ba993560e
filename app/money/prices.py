"""The price file (`PROXY_PRICES_FILE`): TOML with a `currency` and `[[prices]]` tables, each naming a model id or
glob pattern (the first match wins) and its price per million input, output and cached-input tokens, or per unit
for routes that report no tokens. The ledger keeps tokens; money is computed from the file in force when asked,
so a price change re-prices history rather than rewriting it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from app import tomlfile

# Counted per request by the ledger: `request`, and `image` (one per request; `n` is not recorded). The ledger has
# no count of characters or audio seconds yet, so a model priced in those units reports as unpriced.
UNITS = ("request", "image", "character", "second")
COUNTED_UNITS = frozenset({"request", "image"})
FIELDS = ("model", "input", "output", "cached_input", "per_unit", "unit")
MICROS = 1_000_000  # budgets count money in millionths of the currency: integers, so Redis INCRBY adds them
CURRENCY = re.compile(r"[A-Za-z]{3,8}")


class PricesFileError(ValueError):
    """The price file cannot be used as it is; the message says which entry and why."""


@dataclass(frozen=True, slots=True)
class Price:
    model: str  # an id or a glob pattern
    input: float | None = None  # per million tokens
    output: float | None = None
    cached_input: float | None = None  # read and shown; the ledger does not separate cached input (see docs)
    per_unit: float | None = None
    unit: str | None = None

    def cost(self, requests: int, input_tokens: int, output_tokens: int) -> float | None:
        """What these counts cost, or None when this price cannot say (a unit the ledger does not count)."""
        if self.per_unit is not None:
            if self.unit not in COUNTED_UNITS:
                return None
            return requests * self.per_unit + self._tokens(input_tokens, output_tokens)
        return self._tokens(input_tokens, output_tokens)

    def _tokens(self, input_tokens: int, output_tokens: int) -> float:
        # every input token at the `input` price: an upper bound while cached input is not recorded apart
        return (input_tokens * (self.input or 0.0) + output_tokens * (self.output or 0.0)) / 1_000_000


@dataclass(slots=True)
class PriceList:
    currency: str
    prices: tuple[Price, ...]
    source: str  # the file's path, named by every report priced from it
    _found: dict[str, Price | None] = field(default_factory=dict)

    def price(self, model: str) -> Price | None:
        """The first entry whose id or pattern matches `model`, remembered (models are a bounded set)."""
        if model in self._found:
            return self._found[model]
        match = next((price for price in self.prices if fnmatchcase(model, price.model)), None)
        if len(self._found) < 10_000:
            self._found[model] = match
        return match

    def cost(self, model: str, requests: int, input_tokens: int, output_tokens: int) -> float | None:
        """None: unpriced. A row with no model and no tokens (a retrieval) charged nothing, so costs 0."""
        price = self.price(model)
        if price is None:
            return 0.0 if model == "-" and not input_tokens and not output_tokens else None
        return price.cost(requests, input_tokens, output_tokens)

    def micros(self, model: str, requests: int, input_tokens: int, output_tokens: int) -> int | None:
        """The cost in millionths of the currency, rounded up, for budgets."""
        cost = self.cost(model, requests, input_tokens, output_tokens)
        return None if cost is None else math.ceil(round(cost * MICROS, 6))

    def describe(self) -> dict[str, str]:
        return {"file": self.source, "currency": self.currency}


def shown(amount: float) -> str:
    """An amount for people: cents once it is large, enough decimals that a cheap request is not shown as 0."""
    if amount >= 10:
        return f"{amount:.2f}"
    return f"{amount:.4f}" if amount >= 0.01 or amount == 0 else f"{amount:.6f}"


def _amount(raw: dict[str, object], name: str, where: str) -> float | None:
    value = raw.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise PricesFileError(f"{where}: {name} must be a non-negative number, not {value!r}")
    return float(value)


def _entry(raw: object, index: int) -> Price:
    """One [[prices]] table, checked strictly: a misspelt field must not silently price a model at nothing."""
    if not isinstance(raw, dict):
        raise PricesFileError(f"prices[{index}] is not a table")
    model = raw.get("model")
    if not isinstance(model, str) or not model.strip():
        raise PricesFileError(f"prices[{index}]: model must be a model id or glob pattern")
    where = f"prices[{index}] ({model})"
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        raise PricesFileError(f"{where}: unknown field {unknown[0]!r} (known: {', '.join(FIELDS)})")
    amounts = {name: _amount(raw, name, where) for name in ("input", "output", "cached_input", "per_unit")}
    unit = raw.get("unit")
    if (amounts["per_unit"] is None) != (unit is None):
        raise PricesFileError(f"{where}: per_unit and unit go together")
    if unit is not None and unit not in UNITS:
        raise PricesFileError(f"{where}: unit must be one of {', '.join(UNITS)}, not {unit!r}")
    if all(value is None for value in amounts.values()):
        raise PricesFileError(f"{where}: no price (input, output, cached_input or per_unit)")
    return Price(model, amounts["input"], amounts["output"], amounts["cached_input"], amounts["per_unit"], unit)


def load(path: Path) -> PriceList:
    document = tomlfile.read(path, PricesFileError, "prices file")
    currency = document.get("currency")
    if not isinstance(currency, str) or not CURRENCY.fullmatch(currency):
        raise PricesFileError('currency must be set, as a code like "USD" or "CNY"')
    unknown = sorted(set(document) - {"currency", "prices"})
    if unknown:
        raise PricesFileError(f"unknown top-level field {unknown[0]!r} (known: currency, prices)")
    raw_prices = document.get("prices", [])
    if not isinstance(raw_prices, list):
        raise PricesFileError("`prices` must be an array of tables ([[prices]])")
    return PriceList(currency.upper(), tuple(_entry(raw, index) for index, raw in enumerate(raw_prices)), str(path))
