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


#: Height of the visible title band above a chart.
TITLE_BAND = 22


def _svg(width: int, height: int, label: str, body: list[str], css_class: str,
         *, show_title: bool = True) -> Markup:
    """The ``<svg>`` element: ``label`` as its accessible title and, unless ``show_title`` is
    false (tiny inline charts), printed as a visible title above the plot."""
    band = TITLE_BAND if show_title and label else 0
    head = (
        f'<svg class="{css_class}" role="img" '
        f'viewBox="0 0 {width} {height + band}" width="100%" preserveAspectRatio="xMinYMin meet" '
        f'{_FONT}><title>{escape(label)}</title>'
    )
    if band:
        head += (f'<text class="chart-title" x="4" y="15" font-size="13" font-weight="600" '
                 f'fill="{COLORS["ink"]}">{escape(label)}</text>'
                 f'<g transform="translate(0 {band})">')
    return Markup(head + "".join(body) + ("</g>" if band else "") + "</svg>")


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
    return _svg(width, height, label, body, "chart chart-hist", show_title=False)


# --- Line and scatter charts (evaluation curves, reliability, metrics over time) -------------

#: Distinguishable line colours, one per series (candidate) in order.
PALETTE = ("#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#0891b2", "#db2777",
           "#4b5563")


@dataclass(frozen=True)
class Line:
    """One series of :func:`xy_chart`: points joined by a line and/or drawn as markers.

    A ``None`` (or NaN) ``y`` breaks the line. ``sizes`` scale the marker areas (e.g. row
    counts); ``tips`` are the hover texts of the markers.
    """

    label: str
    xs: Sequence[float]
    ys: Sequence[float | None]
    color: str = COLORS["primary"]
    dashed: bool = False
    joined: bool = True
    markers: bool = False
    hollow: bool = False
    sizes: Sequence[float] | None = None
    tips: Sequence[str] | None = None


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def axis_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round ticks covering ``[lo, hi]`` (the first at or below ``lo``, the last at or above).

    >>> axis_ticks(0.0, 1.0)
    [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    >>> axis_ticks(0.82, 0.93)
    [0.8, 0.85, 0.9, 0.95]
    """
    if not (math.isfinite(lo) and math.isfinite(hi)) or hi <= lo:
        base = lo if math.isfinite(lo) else 0.0
        return [base, base + 1.0]
    raw = (hi - lo) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.floor(lo / step + 1e-9)
    last = math.ceil(hi / step - 1e-9)
    return [round(i * step, 12) for i in range(first, last + 1)]


def _thin(points: list[tuple[float, float]], min_px: float = 0.75) -> list[tuple[float, float]]:
    """Drop points closer than ``min_px`` to the previously kept one (keeping the last)."""
    if len(points) <= 2:
        return points
    kept = [points[0]]
    for x, y in points[1:-1]:
        px, py = kept[-1]
        if abs(x - px) >= min_px or abs(y - py) >= min_px:
            kept.append((x, y))
    kept.append(points[-1])
    return kept


def _short(text: str, limit: int = 22) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def xy_chart(
    lines: Sequence[Line],
    title: str,
    x_label: str,
    y_label: str,
    x_range: tuple[float, float] = (0.0, 1.0),
    y_range: tuple[float, float] = (0.0, 1.0),
    *,
    diagonal: str | None = None,
    x_ticks: Sequence[tuple[float, str]] | None = None,
    y_ticks: Sequence[float] | None = None,
    plot_width: int = 300,
    plot_height: int = 300,
    legend_width: int = 160,
) -> Markup:
    """Lines and markers on linear axes with a legend on the right (ROC, PR, reliability, ...).

    ``diagonal`` draws the dashed line ``y = x`` with that text in the legend; ``x_ticks`` are
    ``(value, label)`` pairs (default: round numbers over ``x_range``). Dense curves are
    thinned to what the pixels can show.

    >>> print(xy_chart([Line("model", [0, 0.2, 1], [0, 0.8, 1])], "ROC", "FPR", "TPR",
    ...                diagonal="chance")[:4])
    <svg
    """
    top, bottom, gap = 14, 44, 18
    shown_y = [fmt_num(t, 3) for t in (y_ticks if y_ticks is not None
                                       else axis_ticks(*y_range))]
    left = max(56, 28 + 7 * max((len(t) for t in shown_y), default=0))
    width = left + plot_width + gap + legend_width
    entries = len(lines) + (diagonal is not None)
    height = max(top + plot_height + bottom, top + 20 * entries + 4)
    (x0, x1), (y0, y1) = x_range, y_range
    x_span = (x1 - x0) or 1.0
    y_span = (y1 - y0) or 1.0

    def px(v: float) -> float:
        return left + (min(max(v, x0), x1) - x0) / x_span * plot_width

    def py(v: float) -> float:
        return top + (1 - (min(max(v, y0), y1) - y0) / y_span) * plot_height

    base = top + plot_height
    body: list[str] = []
    for tick in y_ticks if y_ticks is not None else axis_ticks(y0, y1):
        if not y0 - 1e-9 <= tick <= y1 + 1e-9:
            continue
        body.append(
            f'<line x1="{left}" x2="{left + plot_width}" y1="{py(tick):.1f}" y2="{py(tick):.1f}" '
            f'stroke="{COLORS["grid"]}"/>'
            f'<text x="{left - 6}" y="{py(tick) + 4:.1f}" text-anchor="end" font-size="11" '
            f'fill="{COLORS["muted"]}">{fmt_num(tick, 3)}</text>'
        )
    xt = x_ticks if x_ticks is not None else [(t, fmt_num(t, 3)) for t in axis_ticks(x0, x1)]
    for tick, text in xt:
        if not x0 - 1e-9 <= tick <= x1 + 1e-9:
            continue
        body.append(
            f'<line x1="{px(tick):.1f}" x2="{px(tick):.1f}" y1="{top}" y2="{base}" '
            f'stroke="{COLORS["grid"]}"/>'
            f'<text x="{px(tick):.1f}" y="{base + 15}" text-anchor="middle" font-size="11" '
            f'fill="{COLORS["muted"]}">{escape(text)}</text>'
        )
    body.append(
        f'<rect x="{left}" y="{top}" width="{plot_width}" height="{plot_height}" fill="none" '
        f'stroke="{COLORS["neutral"]}"/>'
        f'<text x="{left + plot_width / 2:.1f}" y="{base + 36}" text-anchor="middle" '
        f'font-size="12" fill="{COLORS["ink"]}">{escape(x_label)}</text>'
        f'<text x="14" y="{top + plot_height / 2:.1f}" text-anchor="middle" font-size="12" '
        f'fill="{COLORS["ink"]}" transform="rotate(-90 14 {top + plot_height / 2:.1f})">'
        f"{escape(y_label)}</text>"
    )
    legend: list[Line] = []  # drawn as a sample of each line (and its marker)
    if diagonal is not None:
        lo, hi = max(x0, y0), min(x1, y1)
        if hi > lo:
            body.append(
                f'<line class="diagonal" x1="{px(lo):.1f}" y1="{py(lo):.1f}" x2="{px(hi):.1f}" '
                f'y2="{py(hi):.1f}" stroke="{COLORS["neutral"]}" stroke-dasharray="4 4"/>'
            )
        legend.append(Line(diagonal, [], [], COLORS["neutral"], dashed=True))
    for line in lines:
        dash = ' stroke-dasharray="6 4"' if line.dashed else ""
        segments: list[list[tuple[float, float]]] = [[]]
        marks: list[tuple[float, float, int]] = []
        for i, (x, y) in enumerate(zip(line.xs, line.ys, strict=False)):
            if x is None or y is None or not (math.isfinite(x) and math.isfinite(y)):
                if segments[-1]:
                    segments.append([])
                continue
            point = (px(float(x)), py(float(y)))
            segments[-1].append(point)
            marks.append((*point, i))
        if line.joined:
            for segment in segments:
                if len(segment) < 2:
                    continue
                coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in _thin(segment))
                body.append(
                    f'<polyline points="{coords}" fill="none" stroke="{escape(line.color)}" '
                    f'stroke-width="2" stroke-linejoin="round"{dash}>'
                    f"<title>{escape(line.label)}</title></polyline>"
                )
        if line.markers or not line.joined:
            weights = [float(s) for s in line.sizes or [] if _finite(s)]
            top_w = max(weights, default=0.0)
            for x, y, i in marks:
                r = 3.0
                if line.sizes is not None and top_w > 0 and i < len(line.sizes):
                    w = line.sizes[i]
                    r = 2.5 + 5.5 * math.sqrt(max(float(w), 0.0) / top_w) if _finite(w) else 2.5
                fill = "#ffffff" if line.hollow else line.color
                tip = line.tips[i] if line.tips is not None and i < len(line.tips) else line.label
                body.append(
                    f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" fill="{escape(fill)}" '
                    f'fill-opacity="{0.9 if line.hollow else 0.75}" '
                    f'stroke="{escape(line.color)}" stroke-width="1.5">'
                    f"<title>{escape(tip)}</title></circle>"
                )
        legend.append(line)
    lx = left + plot_width + gap
    for i, item in enumerate(legend):
        y = top + 8 + i * 20
        color, label = escape(item.color), item.label
        mark = ""
        if item.joined:
            dash = ' stroke-dasharray="5 3"' if item.dashed else ""
            mark += (f'<line x1="{lx}" x2="{lx + 20}" y1="{y}" y2="{y}" stroke="{color}" '
                     f'stroke-width="2"{dash}/>')
        if item.markers or not item.joined:
            fill = "#ffffff" if item.hollow else color
            mark += (f'<circle cx="{lx + 10}" cy="{y}" r="4" fill="{fill}" fill-opacity="0.9" '
                     f'stroke="{color}" stroke-width="1.5"/>')
        body.append(
            f'<g class="legend">{mark}<text x="{lx + 26}" y="{y + 4}" font-size="12" '
            f'fill="{COLORS["ink"]}">{escape(_short(label))}<title>{escape(label)}</title>'
            "</text></g>"
        )
    return _svg(width, height, title, body, "chart chart-xy")


def period_chart(
    periods: Sequence[date],
    lines: Sequence[Line],
    title: str,
    y_label: str,
    y_range: tuple[float, float] | None = None,
) -> Markup:
    """A metric over time, one line per series: ``xs`` of each line are ignored and the
    ``ys`` are aligned with ``periods`` (``None`` where a series has no value).

    The y axis spans the values (rounded outwards) unless ``y_range`` is given.

    >>> print(period_chart([date(2025, 1, 6), date(2025, 1, 13)],
    ...                    [Line("model", [], [0.81, 0.84])], "AUC per week", "ROC AUC")[:4])
    <svg
    """
    days = [float(p.toordinal()) for p in periods]
    if y_range is None:
        values = [y for line in lines for y in line.ys if y is not None and math.isfinite(y)]
        ticks = axis_ticks(min(values, default=0.0), max(values, default=1.0), 4)
        y_range = (ticks[0], ticks[-1])
    else:
        ticks = axis_ticks(*y_range)
    if len(days) >= 2:
        x_range = (days[0], days[-1])
    else:
        first = days[0] if days else 0.0
        x_range = (first - 1.0, first + 1.0)
    every = max(1, math.ceil(len(periods) / 7))
    x_ticks = [(d, f"{p:%d %b %y}") for i, (d, p) in enumerate(zip(days, periods, strict=True))
               if i % every == 0]
    aligned = [Line(line.label, days, list(line.ys)[: len(days)], line.color, line.dashed,
                    line.joined, True, line.hollow, line.sizes, line.tips) for line in lines]
    return xy_chart(aligned, title, "period start", y_label, x_range, y_range,
                    x_ticks=x_ticks, y_ticks=ticks, plot_width=540, plot_height=220)


__all__ += ["PALETTE", "Line", "axis_ticks", "period_chart", "xy_chart"]
