"""Stacked bar charts as plain SVG, drawn by the gateway: no chart library, nothing fetched, and they show
without JavaScript. Every text is escaped (key and model names come from files and clients)."""

from __future__ import annotations

import math
from html import escape

from app.dashboard.spend import Series
from app.money import shown

# Okabe-Ito: told apart by colour-blind readers; the eighth series is "others"
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999")
WIDTH, HEIGHT, LEFT, BOTTOM, TOP = 640, 220, 64, 24, 20
OTHERS = "others"


def top_series(series: Series) -> list[tuple[str, list[float]]]:
    """The series with the most spend, the rest summed as "others", so the palette stays readable."""
    totals = {name: [spend.cost or 0.0 for spend in line] for name, line in series.values.items()}
    ranked = sorted(totals, key=lambda name: (-sum(totals[name]), name))
    ranked = [name for name in ranked if sum(totals[name]) > 0]
    shown = ranked[: len(PALETTE) - 1] if len(ranked) > len(PALETTE) else ranked
    chosen = [(name, totals[name]) for name in shown]
    rest = [totals[name] for name in ranked[len(shown) :]]
    if rest:
        chosen.append((OTHERS, [sum(day) for day in zip(*rest, strict=True)]))
    return chosen


def _scale(peak: float) -> float:
    """A round top for the y axis: 1, 2 or 5 times a power of ten."""
    if peak <= 0:
        return 1.0
    power: float = 10.0 ** math.floor(math.log10(peak))
    return next(step * power for step in (1, 2, 5, 10) if step * power >= peak)


def stacked_bars(series: Series, currency: str, title: str) -> str:
    chosen = top_series(series)
    days = series.days
    peak = max((sum(line[day] for _, line in chosen) for day in range(len(days))), default=0.0)
    top = _scale(peak)
    plot_w, plot_h = WIDTH - LEFT - 4, HEIGHT - BOTTOM - TOP
    slot = plot_w / len(days)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{escape(title)}" '
        f'xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    digits = max(0, -math.floor(math.log10(top / 4)))  # enough to tell the gridlines apart, never 5e-05
    for step in range(5):
        value = top * step / 4
        y = TOP + plot_h - plot_h * step / 4
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - 4}" y1="{y:.1f}" y2="{y:.1f}" stroke="#8884"/>')
        parts.append(f'<text x="{LEFT - 4}" y="{y + 4:.1f}" text-anchor="end" font-size="11">{value:.{digits}f}</text>')
    for day, label in enumerate(days):
        base = float(TOP + plot_h)
        for index, (name, line) in enumerate(chosen):
            height = plot_h * line[day] / top
            if height <= 0:
                continue
            base -= height
            tip = f"{label} {name}: {shown(line[day])} {currency}"
            parts.append(
                f'<rect x="{LEFT + day * slot + 1:.1f}" y="{base:.1f}" width="{slot - 2:.1f}" height="{height:.1f}" '
                f'fill="{PALETTE[index]}"><title>{escape(tip)}</title></rect>'
            )
        if day % 7 == len(days) % 7:
            x = LEFT + day * slot + slot / 2
            parts.append(f'<text x="{x:.1f}" y="{HEIGHT - 6}" text-anchor="middle" font-size="11">{label[5:]}</text>')
    parts.append(f'<text x="{LEFT - 4}" y="11" text-anchor="end" font-size="11">{escape(currency)}</text></svg>')
    return "".join(parts)


def legend(series: Series) -> str:
    items = [
        f'<li><svg width="10" height="10" aria-hidden="true"><rect width="10" height="10" fill="{PALETTE[index]}"/>'
        f"</svg> {escape(name)}</li>"
        for index, (name, _) in enumerate(top_series(series))
    ]
    return f'<ul class="legend">{"".join(items)}</ul>'
