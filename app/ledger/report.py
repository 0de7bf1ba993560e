"""Usage reports from ledger rows: grouped by day, model or key, rendered as a table, CSV or JSON. The CLI's
`acedata-proxy usage` and GET /admin/usage share this, so both say the same thing."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterable
from typing import Any, Literal, cast

import orjson

from app.ledger.store import Row

GROUPS = ("day", "model", "key")
FORMATS = ("table", "csv", "json")
Group = Literal["day", "model", "key"]
COLUMNS = ("requests", "input_tokens", "output_tokens", "total_tokens")


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
    return row[3] if by == "model" else row[1]


def build(rows: Iterable[Row], by: Group) -> dict[str, Any]:
    """{"by": ..., "rows": [{by: label, requests, input_tokens, output_tokens, total_tokens}], "total": {...}}"""
    sums: dict[str, list[int]] = {}
    for row in rows:
        counts = sums.setdefault(_label(row, by), [0, 0, 0])
        counts[0] += row[4]
        counts[1] += row[5]
        counts[2] += row[6]
    lines = [{by: label, **_counts(counts)} for label, counts in sorted(sums.items())]
    totals = [sum(c[i] for c in sums.values()) for i in range(3)]
    return {"by": by, "rows": lines, "total": _counts(totals)}


def _counts(counts: list[int]) -> dict[str, int]:
    return dict(zip(COLUMNS, [*counts, counts[1] + counts[2]], strict=True))


def render(report: dict[str, Any], fmt: str) -> str:
    by = report["by"]
    header = [by, *COLUMNS]
    lines = [[line[name] for name in header] for line in report["rows"]]
    if fmt == "json":
        return orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n"
    if fmt == "csv":
        out = io.StringIO()
        csv.writer(out, lineterminator="\n").writerows([header, *lines])
        return out.getvalue()
    lines.append(["total", *(report["total"][name] for name in COLUMNS)])
    cells = [[str(cell) for cell in line] for line in [header, *lines]]
    widths = [max(len(cell) for cell in column) for column in zip(*cells, strict=True)]
    return "".join(_aligned(line, widths) for line in cells)


def _aligned(cells: list[str], widths: list[int]) -> str:
    """The label column left-aligned, numbers right-aligned."""
    first, *rest = zip(cells, widths, strict=True)
    return "  ".join([first[0].ljust(first[1]), *(cell.rjust(width) for cell, width in rest)]) + "\n"
