"""The dashboard page as HTML: tables and SVG, complete without JavaScript. The same page is served to a browser
without a key (the form only) and with one (the figures); the script swaps in the figures, nothing else.
Every value that comes from a file, a client or the ledger is escaped."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from html import escape
from importlib import resources
from string import Template

from app.dashboard.charts import legend, stacked_bars
from app.dashboard.live import RouteNow
from app.dashboard.spend import KeyState, Series
from app.ledger.report import Spend
from app.money import shown


@dataclass(frozen=True, slots=True)
class Figures:
    window: float  # seconds the "now" table covers
    now: list[RouteNow]
    by_key: Series
    by_model: Series
    keys: list[KeyState]
    currency: str | None  # None: no price file
    prices_file: str | None
    ledger: str  # where the ledger is kept
    generated: float


def page(figures: Figures | None) -> str:
    """The whole document; without figures, the key form and an empty main."""
    shell = Template(resources.files("app.dashboard").joinpath("page.html").read_text(encoding="utf-8"))
    main = _figures(figures) if figures is not None else '<p id="need-key">Enter an admin key to see the figures.</p>'
    return shell.substitute(main=main)


def _figures(figures: Figures) -> str:
    currency = figures.currency or "-"
    spend = [
        _chart("spend-by-key", "Spend per day by key", figures.by_key, currency, "key"),
        _chart("spend-by-model", "Spend per day by model", figures.by_model, currency, "model"),
    ]
    generated = dt.datetime.fromtimestamp(figures.generated, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    priced = (
        f"Prices: {escape(figures.prices_file)} ({escape(currency)})"
        if figures.prices_file
        else "No price file (PROXY_PRICES_FILE): spend shows as unpriced."
    )
    return (
        _now(figures)
        + "".join(spend)
        + _keys(figures.keys, currency)
        + f'<footer><p>{priced} · Ledger: {escape(figures.ledger)} · <time id="generated" '
        f'datetime="{figures.generated:.3f}">{generated}</time></p></footer>'
    )


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.1f}"


def _cell(text: str, value: object) -> str:
    raw = "" if value is None else escape(str(value))
    return f'<td data-value="{raw}">{escape(text)}</td>'


def _now(figures: Figures) -> str:
    rows = "".join(
        f'<tr data-route="{escape(row.route)}"><th scope="row">{escape(row.route)}</th>'
        + _cell(f"{row.rate:.2f}", row.rate)
        + _cell("-" if row.error_rate is None else f"{row.error_rate:.1%}", row.error_rate)
        + "".join(_cell(_ms(value), value) for value in (*row.duration, *row.ttfb))
        + _cell(str(row.inflight), row.inflight)
        + _cell(str(row.requests), row.requests)
        + "</tr>"
        for row in figures.now
    )
    empty = '<tr><td colspan="9">No requests yet.</td></tr>' if not figures.now else ""
    return (
        f'<section id="now"><h2>Now <small>over the last {figures.window:.0f} s, every worker</small></h2>'
        '<div class="scroll"><table><thead><tr><th>route</th><th>req/s</th><th>5xx</th><th>p50 ms</th>'
        "<th>p99 ms</th><th>TTFB p50</th><th>TTFB p99</th><th>in flight</th><th>requests</th></tr></thead>"
        f"<tbody>{rows}{empty}</tbody></table></div></section>"
    )


def _money(spend: Spend) -> str:
    if spend.cost is None:
        return "unpriced" if spend.unpriced else "0"
    partial = f" (+{spend.unpriced} unpriced)" if spend.unpriced else ""
    return f"{shown(spend.cost)}{partial}"


def _chart(ident: str, title: str, series: Series, currency: str, column: str) -> str:
    lines = [
        f"<tr><td>{escape(day)}</td><td>{escape(name)}</td>" + _cell(_money(spend), spend.cost) + "</tr>"
        for name, line in sorted(series.values.items())
        for day, spend in zip(series.days, line, strict=True)
        if spend.cost is not None or spend.unpriced
    ]
    table = (
        f'<details><summary>Table</summary><div class="scroll"><table><thead><tr><th>day</th><th>{column}</th>'
        f"<th>cost ({escape(currency)})</th></tr></thead><tbody>{''.join(lines)}</tbody></table></div></details>"
    )
    return (
        f'<section id="{ident}"><h2>{escape(title)} <small>last {len(series.days)} days, UTC</small></h2>'
        f"{stacked_bars(series, currency, title)}{legend(series)}{table}</section>"
    )


def _bar(spent: float, budget: float, text: str) -> str:
    share = spent / budget if budget > 0 else 1.0
    return (
        f'<meter min="0" max="{budget:g}" low="{0.75 * budget:g}" high="{0.9 * budget:g}" optimum="0" '
        f'value="{min(spent, budget):g}">{share:.0%}</meter> {escape(text)} ({share:.0%})'
    )


def _keys(states: list[KeyState], currency: str) -> str:
    rows = "".join(_key_row(state, currency) for state in states)
    return (
        '<section id="keys"><h2>Keys</h2><div class="scroll"><table><thead><tr><th>key</th><th>limits</th>'
        "<th>period</th><th>tokens</th><th>cost</th><th>last use</th></tr></thead>"
        f"<tbody>{rows}</tbody></table></div></section>"
    )


def _key_row(state: KeyState, currency: str) -> str:
    entry = state.entry
    limits = [f"{entry.rpm} rpm" if entry.rpm else "", f"{entry.tpm} tpm" if entry.tpm else ""]
    limits.append("models: " + ", ".join(sorted(entry.models)) if entry.models is not None else "all models")
    if entry.admin:
        limits.append("admin")
    tokens = f"{state.tokens}"
    if entry.budget_tokens is not None:
        tokens = _bar(state.tokens, entry.budget_tokens, f"{state.tokens} / {entry.budget_tokens}")
    cost = escape(_money(state.spend))
    if entry.budget_amount is not None:
        spent = state.spend.cost or 0.0
        cost = _bar(spent, entry.budget_amount, f"{shown(spent)} / {entry.budget_amount:.2f} {currency}")
    last = "not in these 30 days"
    if state.last_used_hour is not None:
        last = dt.datetime.fromtimestamp(state.last_used_hour * 3600, dt.UTC).strftime("%Y-%m-%d %H:00 UTC hour")
    return (
        f'<tr data-key="{escape(entry.name)}"><th scope="row">{escape(entry.name)}</th>'
        f"<td>{escape(' · '.join(part for part in limits if part))}</td><td>{escape(state.period)}</td>"
        f'<td class="tokens" data-value="{state.tokens}">{tokens}</td>'
        f'<td class="cost" data-value="{"" if state.spend.cost is None else state.spend.cost}">{cost}</td>'
        f"<td>{escape(last)}</td></tr>"
    )
