"""Usage reports from ledger rows: grouped by day, model or key, rendered as a table, CSV or JSON. The CLI's
`acedata-proxy usage` and GET /admin/usage share this, so both say the same thing. Grouped by route, each line
also names the route's billing unit (token, character, second, image) and how many it counted.

With a price file, each row also has `cost`: what its priced requests cost, null when none of them has a price
(never 0 for "unknown"), and `unpriced_requests`, how many requests had no price; the report names the file.
A route billed by units is priced by its model's `per_unit` price in that unit (app/money/prices.py)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable
from typing import Any, Literal, cast

import orjson

from app.ledger.store import Counts, Row
from app.money import Counted, PriceList, shown
from app.proxy.table import unit_of

GROUPS = ("day", "model", "key", "route")
FORMATS = ("table", "csv", "json")
Group = Literal["day", "model", "key", "route"]
COLUMNS = ("requests", "input_tokens", "output_tokens", "total_tokens")
MONEY = ("cost", "unpriced_requests")
UNIT_COLUMNS = ("unit", "units")  # by route only: units of different routes do not add up


class ReportError(ValueError):
    """A filter that cannot be used; `param` names it."""

    def __init__(self, message: str, param: str):
        super().__init__(message)
        self.param = param


def since_hour(text: str | None) -> int:
    """The first UTC hour at or after `since` (YYYY-MM-DD, or an ISO 8601 time; naive times are UTC)."""
    if not text:
        return 0
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ReportError(f"since must be a date (YYYY-MM-DD) or an ISO 8601 time, not {text!r}", "since") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return -int(-moment.timestamp() // 3600)


def group(by: str) -> Group:
    if by not in GROUPS:
        raise ReportError(f"by must be one of {', '.join(GROUPS)}, not {by!r}", "by")
    return cast(Group, by)


def _label(row: Row, by: Group) -> str:
    if by == "day":
        return dt.datetime.fromtimestamp(row.hour * 3600, dt.UTC).strftime("%Y-%m-%d")
    return {"model": row.model, "key": row.key, "route": row.route}[by]


class Spend:
    """Money summed over rows: the cost of those with a price, and the requests of those without."""

    __slots__ = ("cost", "unpriced")

    def __init__(self) -> None:
        self.cost: float | None = None
        self.unpriced = 0

    def add(self, cost: float | None, requests: int) -> None:
        if cost is None:
            self.unpriced += requests
        else:
            self.cost = (self.cost or 0.0) + cost

    def fields(self) -> dict[str, Any]:
        return {"cost": None if self.cost is None else round(self.cost, 10), "unpriced_requests": self.unpriced}


def counted(row: Row) -> Counted:
    """A ledger row's counts as prices read them: its units are in its route's unit."""
    return Counted(row.requests, row.input_tokens, row.output_tokens, row.units, unit_of(row.route))


def row_cost(row: Row, prices: PriceList | None) -> float | None:
    return prices.cost(row.model, counted(row)) if prices is not None else None


def build(rows: Iterable[Row], by: Group, prices: PriceList | None = None) -> dict[str, Any]:
    """{"by": ..., "prices": {file, currency} | None, "rows": [{by: label, requests, input_tokens, output_tokens,
    total_tokens, cost, unpriced_requests}], "total": {...}}; by route, each row also has `unit` and `units` (a
    token route's units are its tokens)."""
    sums: dict[str, tuple[Counts, Spend]] = {}
    for row in rows:
        label = _label(row, by)
        counts, spend = sums.get(label) or (Counts(), Spend())
        sums[label] = (counts.plus(row.counts), spend)
        spend.add(row_cost(row, prices), row.requests)
    lines = [
        {by: label, **_counts(counts, spend), **_units(label, counts, by)}
        for label, (counts, spend) in sorted(sums.items())
    ]
    total, totals = Spend(), Counts()
    for counts, spend in sums.values():
        total.add(spend.cost, 0)
        total.unpriced += spend.unpriced
        totals = totals.plus(counts)
    described = prices.describe() if prices is not None else None
    return {"by": by, "prices": described, "rows": lines, "total": _counts(totals, total)}


def _counts(counts: Counts, spend: Spend) -> dict[str, Any]:
    values = (counts.requests, counts.input_tokens, counts.output_tokens, counts.tokens)
    return {**dict(zip(COLUMNS, values, strict=True)), **spend.fields()}


def _units(route: str, counts: Counts, by: Group) -> dict[str, Any]:
    if by != "route":
        return {}
    unit = unit_of(route)
    return {"unit": unit, "units": counts.units if unit != "token" else counts.tokens}


def render(report: dict[str, Any], fmt: str) -> str:
    by = report["by"]
    units = UNIT_COLUMNS if by == "route" else ()
    header = [by, *COLUMNS, *units, *MONEY]
    lines = [[line[name] for name in header] for line in report["rows"]]
    if fmt == "json":
        return orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n"
    if fmt == "csv":
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows([header, *([_blank(c) for c in line] for line in lines)])
        return out.getvalue()
    total = report["total"]
    lines.append(["total", *(total[name] for name in COLUMNS), *("" for _ in units), *(total[name] for name in MONEY)])
    cells = [[_shown(cell) for cell in line] for line in [header, *lines]]
    widths = [max(len(cell) for cell in column) for column in zip(*cells, strict=True)]
    return "".join(_aligned(line, widths) for line in cells) + _priced_by(report["prices"])


def _blank(cell: object) -> object:
    return "" if cell is None else cell  # CSV: an empty cell for unpriced, never 0


def _shown(cell: object) -> str:
    if cell is None:
        return "-"
    return shown(cell) if isinstance(cell, float) else str(cell)


def _priced_by(prices: dict[str, str] | None) -> str:
    if prices is None:
        return "cost: no price file (PROXY_PRICES_FILE unset)\n"
    return f"cost in {prices['currency']}, priced by {prices['file']}; - = no price for that model\n"


def _aligned(cells: list[str], widths: list[int]) -> str:
    """The label column left-aligned, numbers right-aligned."""
    first, *rest = zip(cells, widths, strict=True)
    return "  ".join([first[0].ljust(first[1]), *(cell.rjust(width) for cell, width in rest)]) + "\n"
