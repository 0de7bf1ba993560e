"""The price file: strict loading (each mistake named in one line), first match wins, unpriced stays unpriced,
per-unit prices, rounding up to millionths for budgets; the shipped example loads and prices catalog models."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from app import money
from app.money import Counted
from app.proxy import catalog
from tests.helpers import ROOT

EXAMPLE = ROOT / "deploy" / "prices.example.toml"


def prices_from(tmp_path: Path, text: str) -> money.PriceList:
    path = tmp_path / "prices.toml"
    path.write_text(text)
    return money.load(path)


def test_first_match_wins_and_unpriced_is_none(tmp_path: Path):
    prices = prices_from(
        tmp_path,
        """currency = "eur"
[[prices]]
model = "gpt-4.1-mini*"
input = 0.4
output = 1.6
[[prices]]
model = "gpt-4.1*"
input = 2
output = 8
cached_input = 0.5
""",
    )
    assert prices.currency == "EUR"
    assert prices.cost("gpt-4.1-mini-2025-04-14", Counted(1, 1_000_000, 1_000_000)) == pytest.approx(2.0)
    assert prices.cost("gpt-4.1", Counted(3, 500_000, 250_000)) == pytest.approx(1.0 + 2.0)
    assert prices.cost("gpt-5.5", Counted(1, 10, 10)) is None  # no match: unpriced, never 0
    assert prices.cost("-", Counted(1)) == 0.0  # a retrieval: no model, nothing charged
    assert prices.micros("gpt-4.1", Counted(1, 1, 0)) == 2  # 0.000002: millionths, rounded up
    assert prices.micros("gpt-4.1-mini", Counted(1, 1, 0)) == 1  # 0.0000004 rounds up to 1, never down to free
    assert prices.micros("gpt-5.5", Counted(1, 1, 1)) is None
    assert prices.describe() == {"file": str(tmp_path / "prices.toml"), "currency": "EUR"}


def test_per_unit_prices_count_the_route_s_units(tmp_path: Path):
    prices = prices_from(
        tmp_path,
        """currency = "USD"
[[prices]]
model = "dall-e-3"
per_unit = 0.04
unit = "image"
[[prices]]
model = "tts-1"
per_unit = 0.000015
unit = "character"
[[prices]]
model = "whisper-1"
per_unit = 0.0001
unit = "second"
[[prices]]
model = "flat"
per_unit = 0.5
unit = "request"
input = 1
""",
    )
    assert prices.cost("dall-e-3", Counted(3, 40, 0, units=5, unit="image")) == pytest.approx(0.20)  # 5 images
    assert prices.cost("tts-1", Counted(1, 3, 0, units=1000, unit="character")) == pytest.approx(0.015)
    assert prices.cost("whisper-1", Counted(2, 0, 0, units=90, unit="second")) == pytest.approx(0.009)
    assert prices.cost("flat", Counted(4, 1_000_000, 0, units=7, unit="image")) == pytest.approx(2.0 + 1.0)
    # a price in a unit the route does not count cannot say: unpriced, never 0
    assert prices.cost("tts-1", Counted(1, 3, 0, units=2, unit="image")) is None
    assert prices.cost("whisper-1", Counted(1, 30, 20)) is None  # a token route
    assert prices.micros("dall-e-3", Counted(1, 0, 0, units=2, unit="image")) == 80_000
    assert prices.cost("dall-e-3", Counted(1, 0, 0, units=0, unit="image")) == 0.0  # a failed request: no image


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[[prices]]\nmodel = 'x'\ninput = 1\n", "currency must be set"),
        ("currency = 'USD'\nprices = 3\n", "`prices` must be an array of tables"),
        ("currency = 'USD'\nrates = []\n", "unknown top-level field 'rates'"),
        ("currency = 'USD'\n[[prices]]\ninput = 1\n", "prices[0]: model must be"),
        ("currency = 'USD'\n[[prices]]\nmodel = 'x'\n", "prices[0] (x): no price"),
        ("currency = 'USD'\n[[prices]]\nmodel = 'x'\ninput = -1\n", "input must be a non-negative number"),
        ("currency = 'USD'\n[[prices]]\nmodel = 'x'\noutput = '3'\n", "output must be a non-negative number"),
        ("currency = 'USD'\n[[prices]]\nmodel = 'x'\nimput = 3\n", "unknown field 'imput'"),
        ("currency = 'USD'\n[[prices]]\nmodel = 'x'\nper_unit = 3\n", "per_unit and unit go together"),
        ("currency = 'USD'\n[[prices]]\nmodel = 'x'\nper_unit = 3\nunit = 'token'\n", "unit must be one of"),
        ("currency = 'USD'\n[[prices]\n", "cannot be read"),
    ],
)
def test_mistakes_are_named(tmp_path: Path, text: str, message: str):
    with pytest.raises(money.PricesFileError, match=re.escape(message)):
        prices_from(tmp_path, text)
    with pytest.raises(money.PricesFileError, match="does not exist"):
        money.load(tmp_path / "missing.toml")


def test_the_example_prices_catalog_models_and_leaves_variants_unpriced():
    prices = money.load(EXAMPLE)
    assert prices.currency == "USD"
    assert prices.cost("gpt-4.1", Counted(1, 1_000_000, 1_000_000)) == pytest.approx(10.0)
    assert prices.cost("claude-sonnet-4-20250514", Counted(1, 1_000_000, 0)) == pytest.approx(3.0)
    assert prices.cost("o3-mini-high", Counted(1, 1_000_000, 0)) == pytest.approx(1.10)
    assert prices.cost("gpt-4o-2024-05-13", Counted(1, 0, 1_000_000)) == pytest.approx(15.0)  # before the glob after it
    assert prices.cost("tts-1-hd", Counted(1, 5, 0, units=1000, unit="character")) == pytest.approx(0.03)
    assert prices.cost("whisper-1", Counted(1, 0, 0, units=60, unit="second")) == pytest.approx(0.006)
    assert prices.cost("dall-e-2", Counted(1, 0, 0, units=2, unit="image")) == pytest.approx(0.04)
    assert prices.cost("gpt-transcribe", Counted(1, 14, 3, units=2, unit="second")) is None
    for variant in ("o1-mini-all", "o3-mini-high-all", "gpt-4o-all", "gpt-4.1:free", "gpt-5.5"):
        assert prices.price(variant) is None, variant  # AceData's own variants, and models the file does not know
    every = set().union(*(v for k, v in vars(catalog).items() if k.endswith("_MODELS")))
    assert sum(prices.price(model) is not None for model in every) >= 60


@pytest.mark.parametrize(
    ("amount", "text"),
    [(0.0, "0.0000"), (0.000132, "0.000132"), (0.25, "0.2500"), (9.5, "9.5000"), (12.345, "12.35")],
)
def test_amounts_are_shown_with_the_decimals_they_need(amount: float, text: str):
    assert money.shown(amount) == text
