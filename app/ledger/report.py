"""Usage reports from ledger rows: grouped by day, model or key, rendered as a table, CSV or JSON. The CLI's
`acedata-proxy usage` and GET /admin/usage share this, so both say the same thing. Grouped by route, each line
also names the route's billing unit (token, character, second, image) and how many it counted."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable
from typing import Any, Literal, cast

import orjson

from app.ledger.store import Row
from app.proxy.table import ROUTES

GROUPS = ("day", "model", "key", "route")
FORMATS = ("table", "csv", "json")
Group = Literal["day", "model", "key", "route"]
COLUMNS = ("requests", "input_tokens", "output_tokens", "total_tokens")
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
        return dt.datetime.fromtimestamp(row[0] * 3600, dt.UTC).strftime("%Y-%m-%d")
    return {"model": row[3], "key": row[1], "route": row[2]}[by]


def build(rows: Iterable[Row], by: Group) -> dict[str, Any]:
    """{"by": ..., "rows": [{by: label, requests, input_tokens, output_tokens, total_tokens}], "total": {...}};
    by route, each row also has `unit` and `units` (a token route's units are its tokens)."""
    sums: dict[str, list[int]] = {}
    for row in rows:
        counts = sums.setdefault(_label(row, by), [0, 0, 0, 0])
        for index, count in enumerate(row[4:]):
            counts[index] += count
    lines = [{by: label, **_counts(counts), **_units(label, counts, by)} for label, counts in sorted(sums.items())]
    totals = [sum(c[i] for c in sums.values()) for i in range(3)]
    return {"by": by, "rows": lines, "total": _counts(totals)}


def _counts(counts: list[int]) -> dict[str, int]:
    return dict(zip(COLUMNS, [*counts[:3], counts[1] + counts[2]], strict=True))


def _units(route: str, counts: list[int], by: Group) -> dict[str, Any]:
    if by != "route":
        return {}
    unit = next((spec.unit for spec in ROUTES if spec.name == route), "token")
    return {"unit": unit, "units": counts[3] if unit != "token" else counts[1] + counts[2]}


def render(report: dict[str, Any], fmt: str) -> str:
    by = report["by"]
    header = [by, *COLUMNS, *(UNIT_COLUMNS if by == "route" else ())]
    lines = [[line[name] for name in header] for line in report["rows"]]
    if fmt == "json":
        return orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n"
    if fmt == "csv":
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows([header, *lines])
        return out.getvalue()
    lines.append(["total", *(report["total"][name] for name in COLUMNS), *("" for _ in header[len(COLUMNS) + 1 :])])
    cells = [[str(cell) for cell in line] for line in [header, *lines]]
    widths = [max(len(cell) for cell in column) for column in zip(*cells, strict=True)]
    return "".join(_aligned(line, widths) for line in cells)


def _aligned(cells: list[str], widths: list[int]) -> str:
    """The label column left-aligned, numbers right-aligned."""
    first, *rest = zip(cells, widths, strict=True)
    return "  ".join([first[0].ljust(first[1]), *(cell.rjust(width) for cell, width in rest)]) + "\n"
