"""The price file (`PROXY_PRICES_FILE`): TOML with a `currency` and `[[prices]]` tables, each naming a model id or
glob pattern (the first match wins) and its price per million input, output and cached-input tokens, or per unit
for routes billed by requests, images, characters or audio seconds. The ledger keeps tokens and units; money is
computed from the file in force when asked, so a price change re-prices history rather than rewriting it.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from app import tomlfile

# What a `per_unit` price counts: requests, or the units the ledger keeps on a route billed by them (the images a
# request asked for, a speech's input characters, a transcription's audio seconds: its RouteSpec's `unit`).
UNITS = ("request", "image", "character", "second")
FIELDS = ("model", "input", "output", "cached_input", "per_unit", "unit")
MICROS = 1_000_000  # budgets count money in millionths of the currency: integers, so Redis INCRBY adds them
CURRENCY = re.compile(r"[A-Za-z]{3,8}")


class PricesFileError(ValueError):
    """The price file cannot be used as it is; the message says which entry and why."""


@dataclass(frozen=True, slots=True)
class Counted:
    """What a ledger row or a request counted, as a price reads it: requests, tokens, and `units` of the route's
    billing `unit` (a token route's `unit` is "token" and it counts none)."""

    requests: int
    input_tokens: int = 0
    output_tokens: int = 0
    units: int = 0
    unit: str = "token"


@dataclass(frozen=True, slots=True)
class Price:
    model: str  # an id or a glob pattern
    input: float | None = None  # per million tokens
    output: float | None = None
    cached_input: float | None = None  # read and shown; the ledger does not separate cached input (see docs)
    per_unit: float | None = None
    unit: str | None = None

    def cost(self, counted: Counted) -> float | None:
        """What these counts cost, or None when this price cannot say: it is per a unit the route does not count
        (a price per character for a model used on a route counting images)."""
        tokens = self._tokens(counted.input_tokens, counted.output_tokens)
        if self.per_unit is None:
            return tokens
        if self.unit == "request":
            return counted.requests * self.per_unit + tokens
        if self.unit != counted.unit:
            return None
        return counted.units * self.per_unit + tokens

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

    def cost(self, model: str, counted: Counted) -> float | None:
        """None: unpriced. A row with no model and nothing counted (a retrieval) charged nothing, so costs 0."""
        price = self.price(model)
        if price is None:
            nothing = not (counted.input_tokens or counted.output_tokens or counted.units)
            return 0.0 if model == "-" and nothing else None
        return price.cost(counted)

    def micros(self, model: str, counted: Counted) -> int | None:
        """The cost in millionths of the currency, rounded up, for budgets."""
        cost = self.cost(model, counted)
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
