"""Hand-written inline SVG charts: no JavaScript, no fonts, no network; the report works offline.

Each function returns escaped ``Markup`` holding one ``<svg>`` element that scales to the
width of its container (``viewBox`` + ``width="100%"``) and carries a ``<title>`` for screen
readers and hover text.

>>> print(histogram([1, 3, 2], 0.0, 3.0)[:4])
<svg
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from markupsafe import Markup, escape

from valuechain.report.fmt import fmt_int, fmt_num, fmt_pct

__all__ = ["COLORS", "Bar", "hbar_chart", "histogram", "nice_ticks", "weekly_chart"]

COLORS = {
    "ink": "#1f2937",
    "muted": "#6b7280",
    "grid": "#e5e7eb",
    "primary": "#2563eb",
    "secondary": "#93c5fd",
    "positive": "#dc2626",
    "neutral": "#9ca3af",
    "warn": "#d97706",
}
_FONT = 'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif"'


@dataclass(frozen=True)
class Bar:
    """One bar of :func:`hbar_chart`: a label, a value, a colour and an optional note."""

    label: str
    value: float
    color: str = COLORS["primary"]
    note: str = ""


def nice_ticks(top: float, count: int = 4) -> list[float]:
    """Round axis ticks from 0 to at least ``top``.

    >>> nice_ticks(67322)
    [0.0, 20000.0, 40000.0, 60000.0, 80000.0]
    >>> nice_ticks(0.0)
    [0.0, 1.0]
    """
    if not top > 0 or not math.isfinite(top):
        return [0.0, 1.0]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    ticks, value = [0.0], 0.0
    while value < top * (1 - 1e-9):
        value = round(value + step, 12)
        ticks.append(value)
    return ticks


def _svg(width: int, height: int, label: str, body: list[str], css_class: str) -> Markup:
    head = (
        f'<svg class="{css_class}" role="img" '
        f'viewBox="0 0 {width} {height}" width="100%" preserveAspectRatio="xMinYMin meet" '
        f'{_FONT}><title>{escape(label)}</title>'
    )
    return Markup(head + "".join(body) + "</svg>")


def hbar_chart(bars: Sequence[Bar], title: str, width: int = 640) -> Markup:
    """Horizontal bars sharing one linear scale, with the value (and note) after each bar."""
    row, label_w, value_w = 26, 150, 190
    height = row * len(bars) + 8
    top = max((b.value for b in bars), default=0.0) or 1.0
    span = width - label_w - value_w
    body: list[str] = []
    for i, bar in enumerate(bars):
        y = 4 + i * row
        w = max(bar.value / top * span, 1.0 if bar.value > 0 else 0.0)
        text = fmt_int(bar.value) + (f"  {bar.note}" if bar.note else "")
        body.append(
            f'<text x="{label_w - 8}" y="{y + 16}" text-anchor="end" font-size="12" '
            f'fill="{COLORS["ink"]}">{escape(bar.label)}</text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" rx="3" '
            f'fill="{escape(bar.color)}"><title>{escape(bar.label)}: {escape(text)}</title></rect>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + 16}" font-size="12" '
            f'fill="{COLORS["muted"]}">{escape(text)}</text>'
        )
    return _svg(width, height, title, body, "chart chart-bars")


@dataclass(frozen=True)
class _Frame:
    left: int = 64
    right: int = 56
    top: int = 30
    bottom: int = 34
    width: int = 760
    height: int = 260

    @property
    def plot_w(self) -> int:
        return self.width - self.left - self.right

    @property
    def plot_h(self) -> int:
        return self.height - self.top - self.bottom


def weekly_chart(
    weeks: Sequence[date],
    counts: Sequence[float],
    rates: Sequence[float | None],
    title: str,
    grain: str = "week",
) -> Markup:
    """Bars of decisions per ``grain`` (left axis) and a line of the positive rate (right axis).

    ``weeks`` are the period starts; a ``None`` rate leaves a gap-free line through the others.
    """
    f = _Frame()
    n = max(len(weeks), 1)
    slot = f.plot_w / n
    count_ticks = nice_ticks(max(counts, default=0.0))
    known = [r for r in rates if r is not None]
    rate_ticks = nice_ticks(max(known, default=0.0))
    c_top, r_top = count_ticks[-1], rate_ticks[-1]

    def y_count(v: float) -> float:
        return f.top + f.plot_h * (1 - v / c_top)

    def y_rate(v: float) -> float:
        return f.top + f.plot_h * (1 - v / r_top)

    body: list[str] = []
    for tick in count_ticks:
        y = y_count(tick)
        body.append(
            f'<line x1="{f.left}" x2="{f.width - f.right}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{COLORS["grid"]}"/>'
            f'<text x="{f.left - 6}" y="{y + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="{COLORS["primary"]}">{fmt_num(tick, 3)}</text>'
        )
    for tick in rate_ticks:
        body.append(
            f'<text x="{f.width - f.right + 6}" y="{y_rate(tick) + 4:.1f}" font-size="11" '
            f'fill="{COLORS["positive"]}">{fmt_pct(tick, 1 if r_top >= 0.05 else 2)}</text>'
        )
    every = max(1, math.ceil(n / 9))
    points: list[str] = []
    for i, (week, count, rate) in enumerate(zip(weeks, counts, rates, strict=True)):
        x = f.left + i * slot
        y = y_count(count)
        tip = f"{grain} of {week.isoformat()}: {fmt_int(count)} decisions, positive rate " + (
            fmt_pct(rate) if rate is not None else "–"
        )
        body.append(
            f'<rect x="{x + slot * 0.12:.1f}" y="{y:.1f}" width="{slot * 0.76:.1f}" '
            f'height="{f.top + f.plot_h - y:.1f}" fill="{COLORS["secondary"]}">'
            f"<title>{escape(tip)}</title></rect>"
        )
        if rate is not None:
            points.append(f"{x + slot / 2:.1f},{y_rate(rate):.1f}")
        if i % every == 0:
            body.append(
                f'<text x="{x + slot / 2:.1f}" y="{f.height - f.bottom + 16}" font-size="11" '
                f'text-anchor="middle" fill="{COLORS["muted"]}">{week:%d %b %y}</text>'
            )
    if points:
        body.append(
            f'<polyline points="{" ".join(points)}" fill="none" stroke="{COLORS["positive"]}" '
            'stroke-width="2" stroke-linejoin="round"/>'
        )
        body.extend(
            f'<circle cx="{p.split(",")[0]}" cy="{p.split(",")[1]}" r="2.5" '
            f'fill="{COLORS["positive"]}"/>'
            for p in points
        )
    base = f.top + f.plot_h
    body.append(
        f'<line x1="{f.left}" x2="{f.width - f.right}" y1="{base}" y2="{base}" '
        f'stroke="{COLORS["muted"]}"/>'
        f'<rect x="{f.left}" y="6" width="12" height="12" fill="{COLORS["secondary"]}"/>'
        f'<text x="{f.left + 18}" y="16" font-size="12" fill="{COLORS["ink"]}">'
        f"decisions per {escape(grain)} (left)</text>"
        f'<line x1="{f.left + 200}" x2="{f.left + 220}" y1="12" y2="12" '
        f'stroke="{COLORS["positive"]}" stroke-width="2"/>'
        f'<text x="{f.left + 226}" y="16" font-size="12" fill="{COLORS["ink"]}">'
        "positive rate (right)</text>"
    )
    return _svg(f.width, f.height, title, body, "chart chart-weekly")


def histogram(
    counts: Sequence[float],
    lo: float,
    hi: float,
    width: int = 160,
    height: int = 40,
    discrete: bool = False,
) -> Markup:
    """A small histogram: ``counts`` of equal-width bins spanning ``[lo, hi]``.

    With ``discrete``, bin ``i`` holds the whole number ``lo + i`` (and is labelled so).
    """
    n = max(len(counts), 1)
    top = max(counts, default=0) or 1
    total = sum(counts) or 1
    slot = width / n
    step = (hi - lo) / n
    body: list[str] = []
    for i, count in enumerate(counts):
        h = 0.0 if count <= 0 else max(count / top * (height - 2), 1.0)
        left, right = lo + i * step, lo + (i + 1) * step
        where = f"= {fmt_num(left)}" if discrete else f"[{fmt_num(left)}, {fmt_num(right)})"
        tip = f"{where}: {fmt_pct(count / total, 1)}"
        body.append(
            f'<rect x="{i * slot + 0.5:.1f}" y="{height - h:.1f}" '
            f'width="{max(slot - 1, 0.5):.1f}" height="{h:.1f}" fill="{COLORS["primary"]}">'
            f"<title>{escape(tip)}</title></rect>"
        )
    body.append(
        f'<line x1="0" x2="{width}" y1="{height - 0.5}" y2="{height - 0.5}" '
        f'stroke="{COLORS["neutral"]}"/>'
    )
    label = f"histogram from {fmt_num(lo)} to {fmt_num(hi - 1 if discrete else hi)}"
    return _svg(width, height, label, body, "chart chart-hist")
