"""A stacked bar chart of daily spend as server-side SVG: no script, no external network, readable in print.

Heights are integer arithmetic on nano-USD; money only ever appears as text through `Money`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from html import escape

from seatmeter.domain.money import NANO_PER_CENT, Money

__all__ = ["PALETTE", "Series", "render_daily_chart"]

# Okabe-Ito colours: distinguishable with the common colour-vision deficiencies.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#6b6b6b")

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 64, 12, 12, 28


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    by_day: Mapping[int, int]  # day index -> nano-USD


def _nice_ceiling(nano: int) -> int:
    """A round axis maximum at or above `nano`: 1, 2 or 5 times a power of ten cents."""
    step = NANO_PER_CENT
    while True:
        for factor in (1, 2, 5):
            if step * factor >= nano:
                return step * factor
        step *= 10


def render_daily_chart(days: Sequence[date], series: Sequence[Series], title: str) -> str:
    totals = [sum(s.by_day.get(i, 0) for s in series) for i in range(len(days))]
    top = _nice_ceiling(max(totals, default=0) or NANO_PER_CENT)
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / max(len(days), 1)
    bar = max(slot * 0.7, 1.0)
    parts = [
        f'<svg class="chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="chart-title chart-desc" '
        f'xmlns="http://www.w3.org/2000/svg">',
        f'<title id="chart-title">{escape(title)}</title>',
        f'<desc id="chart-desc">Stacked bars of spend per day, {len(series)} series; '
        f"the table below the chart lists the same figures.</desc>",
    ]
    for tick in range(5):
        value = top * tick // 4
        y = TOP + plot_h - plot_h * tick // 4
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y}" y2="{y}" class="grid"/>')
        label = Money.from_ratio(value, unit_nano=NANO_PER_CENT)
        parts.append(f'<text x="{LEFT - 6}" y="{y + 4}" text-anchor="end" class="axis">${label}</text>')
    for index, day in enumerate(days):
        x = LEFT + index * slot + (slot - bar) / 2
        base = 0
        for colour, item in zip(PALETTE, series, strict=False):
            value = item.by_day.get(index, 0)
            if value <= 0:
                continue
            # Heights in whole pixels by integer arithmetic on nano-USD; a bar is never thinner than one pixel.
            y0 = TOP + plot_h - plot_h * base // top
            y1 = min(TOP + plot_h - plot_h * (base + value) // top, y0 - 1)
            parts.append(
                f'<rect x="{x:.1f}" y="{y1}" width="{bar:.1f}" height="{y0 - y1}" '
                f'fill="{colour}"><title>{escape(item.label)}, {day.isoformat()}: ${Money(value)}</title></rect>'
            )
            base += value
        if index % max(len(days) // 8, 1) == 0:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{HEIGHT - 8}" text-anchor="middle" class="axis">'
                f"{day.strftime('%b')} {day.day}</text>"
            )
    parts.append("</svg>")
    return "".join(parts)
