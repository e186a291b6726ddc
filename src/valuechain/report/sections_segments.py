"""Report section "Segments": what ``valuechain segment`` last found.

Reads ``<workspace>/segments/segments.json`` (written by :func:`valuechain.segments.
segment_project`) and shows the verdict in words, the clustering tendency, a stability heat
map (bootstrap Jaccard of every cluster for every k tried, with Hennig's 0.6 / 0.75 / 0.85
marks), the segments over time (a heat map of where each segment's customers are one period
later, after Hungarian matching), and the profile of each segment: size, what sets it apart,
the matured outcome rate with its interval and the action from the spec. Without structure,
the quantile bands suggested instead. No card until ``valuechain segment`` has run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from markupsafe import Markup, escape

from valuechain.report.record import Record
from valuechain.report.section import (
    Section,
    Status,
    badge,
    fragment,
    read_json,
    register_section,
)
from valuechain.report.svg import COLORS, _svg
from valuechain.spec.loader import LoadedSpec

__all__ = ["heatmap", "segments_section"]

TITLE = "Segments"
COMMAND = "valuechain segment"


def _shade(value: float) -> str:
    """White (0) to the primary blue (1)."""
    v = min(max(value, 0.0), 1.0)
    r, g, b = (int(255 + (c - 255) * v) for c in (0x25, 0x63, 0xEB))
    return f"#{r:02x}{g:02x}{b:02x}"


def heatmap(rows: list[str], columns: list[str], values: list[list[float | None]],
            title: str, *, text: list[list[str]] | None = None) -> Markup:
    """A heat map of values in [0, 1] (white to blue), each cell labelled; ``None`` = no cell.

    >>> print(heatmap(["k=2"], ["1", "2"], [[0.9, None]], "Jaccard")[:4])
    <svg
    """
    cell_h, top = 26, 22
    cell_w = max(64, 7 * max((len(c) for c in columns), default=0) + 12)
    left = max(60, 7 * max((len(r) for r in rows), default=0) + 16)
    width = max(left + cell_w * max(len(columns), 1) + 8, 640)  # small maps do not blow up
    height = top + cell_h * len(rows) + 6
    body: list[str] = []
    for j, col in enumerate(columns):
        body.append(f'<text x="{left + j * cell_w + cell_w / 2}" y="15" text-anchor="middle" '
                    f'font-size="11" fill="{COLORS["muted"]}">{escape(col)}</text>')
    for i, row in enumerate(rows):
        y = top + i * cell_h
        body.append(f'<text x="{left - 8}" y="{y + 17}" text-anchor="end" font-size="12" '
                    f'fill="{COLORS["ink"]}">{escape(row)}</text>')
        for j, value in enumerate(values[i]):
            if value is None:
                continue
            label = text[i][j] if text else f"{value:.2f}"
            ink = "#ffffff" if value > 0.6 else COLORS["ink"]
            x = left + j * cell_w
            body.append(
                f'<rect x="{x + 1}" y="{y + 1}" width="{cell_w - 2}" height="{cell_h - 2}" '
                f'fill="{_shade(value)}" stroke="{COLORS["grid"]}"><title>{escape(row)}, '
                f'{escape(columns[j])}: {escape(label)}</title></rect>'
                f'<text x="{x + cell_w / 2}" y="{y + 17}" text-anchor="middle" font-size="11" '
                f'fill="{ink}">{escape(label)}</text>')
    return _svg(width, height, title, body, "chart chart-heatmap")


_BODY = """
<p data-key="segments-verdict">{{ pill }} {{ message }}</p>
<p class="small" data-key="segments-tendency">At {{ as_of[:16]|replace('T', ' ') }}, on
{{ features|join(', ') }}: {{ rows|thousands }} customers{% if dropped %} ({{ dropped|thousands }}
without every feature left out){% endif %}. Hopkins statistic {{ '%.3f'|format(h.h) }}
(p = {{ '%.2g'|format(h.p_value) }}, m = {{ h.m }}, d = {{ h.d }}; 0.5 for uniform data,
0.7 and more for clear groups); a Gaussian mixture's BIC is best at k = {{ bic_k }}.</p>
{% if stability_map %}<h3>Stability by k</h3>
<p class="muted small">Mean bootstrap Jaccard of each cluster (Hennig's clusterboot): below 0.6
not trusted, 0.75 stable, 0.85 highly stable. k is chosen among the stable (or prediction
strength &ge; 0.8) by separation (silhouette), not by the elbow.</p>
{{ stability_map }}
<div class="scroll"><table class="data" data-key="segments-stability"><thead><tr><th>Method</th>
<th>k</th><th>Least stable cluster</th><th>Prediction strength</th><th>Silhouette</th>
<th>Stable</th></tr></thead><tbody>{% for s in stability %}<tr><td>{{ s.method }}</td>
<td>{{ s.k }}</td><td>{{ '%.2f'|format(s.min_jaccard) }}</td>
<td>{{ '%.2f'|format(s.prediction_strength) }}</td>
<td>{{ '%.2f'|format(s.silhouette) if s.silhouette == s.silhouette else '–' }}</td>
<td>{{ 'chosen' if s.method == method and s.k == k else ('yes' if s.stable else 'no') }}</td>
</tr>{% endfor %}</tbody></table></div>{% endif %}
{% if over_time_map %}<h3>Over time</h3>
<p class="small" data-key="segments-over-time">Refit at {{ next_time[:10] }} and matched
(Hungarian): {{ '%.1f'|format(100 * over.kept) }} % of {{ over.customers|thousands }} customers
keep their segment; adjusted Rand index {{ '%.2f'|format(over.ari) }}.</p>
{{ over_time_map }}{% endif %}
{% if profiles %}<h3>Profiles</h3>
<div class="scroll"><table class="data" data-key="segments-profiles"><thead><tr>
<th>Segment</th><th>Size</th><th>What sets it apart</th><th>{{ label }} (matured, 95 %)</th>
<th>Action</th><th>Jaccard</th></tr></thead><tbody>{% for p in profiles %}<tr>
<td>{{ p.name }}</td><td>{{ p.size|thousands }} ({{ '%.0f'|format(100 * p.share) }} %)</td>
<td class="small">{{ p.words|join('; ') }}</td>
<td>{% if p.rate is none %}pending{% else %}{{ '%.1f'|format(100 * p.rate) }} %
[{{ '%.1f'|format(100 * p.rate_low) }}, {{ '%.1f'|format(100 * p.rate_high) }}]{% endif %}</td>
<td>{{ p.action or '–' }}</td><td>{{ '%.2f'|format(p.jaccard) }}
{% if p.get('trust') %}<span class="muted small">{{ p.get('trust') }}</span>{% endif %}</td></tr>{% endfor %}
</tbody></table></div>{% endif %}
{% if bands %}<h3>Quantile bands instead</h3>
<div class="scroll"><table class="data" data-key="segments-bands"><thead><tr><th>Feature</th>
<th>Band</th><th>Range</th><th>Size</th><th>{{ label }} (matured, 95 %)</th></tr></thead>
<tbody>{% for b in bands %}<tr><td>{{ b.feature }}</td><td>{{ b.band }}</td>
<td>{{ '%.4g'|format(b.low) }} .. {{ '%.4g'|format(b.high) }}</td><td>{{ b.size|thousands }}</td>
<td>{% if b.rate is none %}pending{% else %}{{ '%.1f'|format(100 * b.rate) }} %
[{{ '%.1f'|format(100 * b.rate_low) }}, {{ '%.1f'|format(100 * b.rate_high) }}]{% endif %}</td>
</tr>{% endfor %}</tbody></table></div>{% endif %}
"""


def _stability_map(stability: list[dict[str, Any]]) -> Markup | None:
    if not stability:
        return None
    width = max(len(s["jaccard"]) for s in stability)
    rows = [f"{s['method']} k={s['k']}" for s in stability]
    values: list[list[float | None]] = [
        [float(v) for v in s["jaccard"]] + [None] * (width - len(s["jaccard"]))
        for s in stability]
    return heatmap(rows, [f"cluster {j + 1}" for j in range(width)], values,
                   "Bootstrap Jaccard per cluster")


def _over_time_map(over: dict[str, Any], names: list[str]) -> Markup | None:
    matrix = over.get("matrix") or []
    if not matrix:
        return None
    share: list[list[float | None]] = []
    text: list[list[str]] = []
    for row in matrix:
        total = sum(row) or 1
        share.append([v / total for v in row])
        text.append([f"{100 * v / total:.0f} %" for v in row])
    labels = names if len(names) == len(matrix) else [f"segment {i + 1}" for i in
                                                      range(len(matrix))]
    return heatmap(labels, labels, share, "Segment at as_of (rows) and one period later "
                   "(columns), share of the row", text=text)


@register_section(order=96, id="segments", title=TITLE)
def segments_section(loaded: LoadedSpec, workspace: Path) -> Section | None:
    """The last ``valuechain segment`` run; no card before one."""
    raw = read_json(workspace / "segments" / "segments.json",
                    rebuild=f"{COMMAND} --spec {loaded.root}")
    if raw is None:
        return None
    r = Record(raw, "segments/segments.json", COMMAND)
    verdict = r.text("verdict")
    profiles = r.sequence("profiles")
    over = r.get("over_time")
    status: Status = "ok" if verdict == "segments" else "warn"
    pill = badge(verdict == "segments", "segments",
                 {"no_structure": "no structure", "unstable": "no stable segments"}.get(
                     verdict, verdict))
    bic = {int(k): float(v) for k, v in (r.get("bic") or {}).items()}
    html = fragment(
        _BODY, pill=pill, message=r.text("message"), as_of=r.text("as_of"),
        features=r.sequence("features"), rows=r.integer("rows"),
        dropped=r.integer("dropped_missing"), h=r.sub("hopkins").data,
        bic_k=min(bic, key=lambda k: bic[k]) if bic else "–",
        stability=r.sequence("stability"), method=r.get("method"), k=r.get("k"),
        stability_map=_stability_map(r.sequence("stability")),
        over=over, next_time=r.get("next_time") or "",
        over_time_map=_over_time_map(over, [p["name"] for p in profiles]) if over else None,
        profiles=profiles, bands=r.sequence("bands"), label=r.text("label"))
    return Section("segments", TITLE, html, status)
