"""Report sections from ``valuechain build``: lineage and label maturity.

Both read ``<workspace>/build/manifest.json`` (see :func:`valuechain.data.build.build_frame`)
strictly: a key the build always writes that is missing fails the section (see
:class:`~valuechain.report.record.Record`). ``frame.fingerprint`` and ``dropped`` are optional
(manifests written before they existed show them as unknown). The maturity section also
charts ``frame.parquet`` over time and lists the source rows the build left out (``dropped``:
per source and reason, e.g. an outcome row without a time), so nothing is dropped unseen.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from valuechain.report.fmt import fmt_duration, fmt_pct, local_path
from valuechain.report.framestats import over_time
from valuechain.report.provenance import origin_note
from valuechain.report.record import Record
from valuechain.report.section import Section, fragment, read_json, register_section, unavailable
from valuechain.report.svg import COLORS, Bar, hbar_chart, weekly_chart
from valuechain.spec.loader import LoadedSpec

__all__ = ["frame_path", "label_maturity_section", "lineage_section", "read_manifest",
           "strict_manifest"]

BUILD = "valuechain build"
MANIFEST = "build/manifest.json"


def read_manifest(workspace: Path) -> dict[str, Any] | None:
    """The build manifest of ``workspace``, or ``None`` before the first build."""
    manifest = read_json(workspace / MANIFEST)
    if manifest is None:
        return None
    if not isinstance(manifest, dict):
        Record({}, MANIFEST, BUILD).sub("frame")  # raises, naming the file
    out: dict[str, Any] = manifest
    return out


def strict_manifest(workspace: Path) -> Record | None:
    """The build manifest as a :class:`Record` (required keys checked on reading)."""
    manifest = read_manifest(workspace)
    return None if manifest is None else Record(manifest, MANIFEST, BUILD)


def frame_path(workspace: Path, manifest: Mapping[str, Any]) -> Path | None:
    """The built frame named by ``manifest``, if the file exists."""
    path = workspace / "build" / Record(manifest, MANIFEST, BUILD).sub("frame").text("path")
    return path if path.is_file() else None


_LINEAGE = """
{{ origin }}
{% if stale %}<p class="note warn">The frame was built from an earlier version of the spec
(hash <code>{{ spec.hash }}</code>; the spec now hashes to <code>{{ current }}</code>). Run
<code>valuechain build</code> to rebuild it.</p>{% endif %}
<table class="kv">
  <tr><th>Spec</th><td><code>{{ spec.path }}</code></td></tr>
  <tr><th>Spec hash</th><td><code>{{ spec.hash }}</code>
    {{ badge(not stale, 'matches the spec', 'spec changed since') }}</td></tr>
  <tr><th>As of</th><td><strong>{{ m.as_of }}</strong>
    <span class="muted">({{ m.as_of_source or 'source not recorded' }}
    {%- if m.time_zone_aware is defined %};
    {{ 'time-zone aware, UTC' if m.time_zone_aware else 'naive wall-clock times' }}{% endif %})
    </span></td></tr>
  <tr><th>Engine</th><td>{{ m.engine }}</td></tr>
  <tr><th>Built</th><td>{{ m.created_at }} in {{ m.build_seconds|seconds }}</td></tr>
  <tr><th>valuechain</th><td>{{ m.valuechain_version }}</td></tr>
  <tr><th>Cache key</th><td><code data-key="build-cache-key">{{ m.cache_key }}</code></td></tr>
  <tr><th>Frame</th><td><code>build/{{ frame.path }}</code>, fingerprint
    <code data-key="build-frame-fingerprint">{{ frame.fingerprint or 'unknown' }}</code>
    {%- if not frame.fingerprint %} <span class="muted small">(not recorded by the build that
    wrote it; run <code>valuechain build --force</code> to record it)</span>{% endif %}</td></tr>
</table>
<h3>Sources</h3>
<div class="scroll"><table class="data">
  <thead><tr><th>Source</th><th>Path</th><th>Format</th><th class="num">Rows</th>
    <th>Time column</th><th>First</th><th>Last</th><th>Fingerprint</th></tr></thead>
  <tbody>
  {% for name, s in sources %}
    <tr><th>{{ name }}</th><td class="path"><code>{{ s.path }}</code></td><td>{{ s.format }}</td>
      <td class="num">{{ s.rows|thousands }}</td><td><code>{{ s.time_column or 'none' }}</code></td>
      <td class="nowrap">{{ s.min_time or 'none' }}</td><td class="nowrap">{{ s.max_time or 'none' }}</td>
      <td><code title="{{ s.fingerprint }}">{{ s.fingerprint[:12] }}</code></td></tr>
  {% endfor %}
  </tbody>
</table></div>
"""

_LINEAGE_KEYS = ("as_of", "as_of_source", "engine", "created_at", "build_seconds",
                 "valuechain_version", "cache_key")
_SOURCE_KEYS = ("path", "format", "rows", "time_column", "min_time", "max_time", "fingerprint")


@register_section(order=30, id="lineage", title="Lineage")
def lineage_section(loaded: LoadedSpec, workspace: Path) -> Section:
    """Where the frame came from: spec, engine, as_of and every source's fingerprint."""
    manifest = strict_manifest(workspace)
    if manifest is None:
        return unavailable("lineage", "Lineage", BUILD, "No frame has been built yet.")
    m = {key: manifest[key] for key in _LINEAGE_KEYS}
    if "time_zone_aware" in manifest:
        m["time_zone_aware"] = manifest["time_zone_aware"]
    spec_rec = manifest.sub("spec")
    spec = {"path": local_path(spec_rec.text("path"), loaded.root),
            "hash": spec_rec.text("hash")}
    stale = spec["hash"] != loaded.hash
    frame = manifest.sub("frame")
    sources = [(name, {key: local_path(info[key], loaded.root) if key == "path" else info[key]
                       for key in _SOURCE_KEYS})
               for name, info in sorted(manifest.sub("sources").items())]
    html = fragment(_LINEAGE, m=m, spec=spec, stale=stale, current=loaded.hash,
                    frame={"path": frame.text("path"), "fingerprint": frame.get("fingerprint")},
                    sources=sources, origin=origin_note(workspace, loaded.hash, "build"))
    return Section("lineage", "Lineage", html, "warn" if stale else "ok")


_MATURITY = """
<div class="tiles">
  <div class="tile"><div class="value" data-key="build-rows-total">{{ rows.total|thousands }}</div>
    <div class="label">decision points</div></div>
  <div class="tile"><div class="value" data-key="build-rows-mature">{{ rows.mature|thousands }}</div>
    <div class="label">mature ({{ share(rows.mature, rows.total) }})</div></div>
  <div class="tile"><div class="value">{{ rows.immature|thousands }}</div>
    <div class="label">immature, not in the frame ({{ share(rows.immature, rows.total) }})</div>
  </div>
  <div class="tile accent"><div class="value" data-key="build-positive-rate">{{ positive_rate }}</div>
    <div class="label">positive rate ({{ rows.positive|thousands }} of the mature rows)</div>
  </div>
  <div class="tile"><div class="value">{{ horizon }}</div><div class="label">label horizon</div>
  </div>
</div>
<p>A label is <em>mature</em> when <code>t + {{ horizon }} ≤ as_of</code>
(<code>{{ as_of }}</code>): the outcome window of <code>{{ label_name }}</code> has closed.
Immature decision points are never trained on as negatives; they are counted here and left out
of the frame.
{% if immature_delay %}<strong data-key="build-rows-immature-delay">{{ immature_delay|thousands
}}</strong> of them are immature only because an outcome becomes known
{{ delay }} after it happens (the outcome delay: <code>t + {{ horizon }} + {{ delay }} ≤ as_of</code>
for a mature label).{% endif %}
{% if rows.dropped_no_time %}<strong>{{ rows.dropped_no_time|thousands }}</strong> rows had no
decision time and were dropped.{% endif %}</p>
{{ bars }}
<h3>Rows the build left out</h3>
{% if dropped is none %}<p class="muted small">Not recorded by the build that wrote this frame;
run <code>valuechain build --force</code> to count them.</p>
{% elif dropped %}<p class="note warn" data-key="build-dropped-total">The build left out
<strong>{{ dropped_total|thousands }}</strong> source rows it could not place in time. They
are not in any feature, label or count above; fix the source or confirm they are meant to be
ignored.</p>
<div class="scroll"><table class="data" data-key="build-dropped">
  <thead><tr><th>Source</th><th>Why</th><th class="num">Rows</th></tr></thead>
  <tbody>
  {% for source, reason, n in dropped %}
    <tr><th>{{ source }}</th><td>{{ reason }}</td><td class="num">{{ n|thousands }}</td></tr>
  {% endfor %}
  </tbody>
</table></div>
{% else %}<p class="small" data-key="build-dropped-total">None: every source row had the times
the build needs.</p>{% endif %}
<h3>Mature decisions over time</h3>
{% if chart %}{{ chart }}
<p class="muted small">Per {{ grain }} (starting {{ 'Monday' if grain == 'week' else 'the 1st' }},
UTC) over the frame's mature rows; the last {{ horizon }} before as_of has no rows because those
labels have not matured.</p>
{% else %}<div class="hint">{{ chart_hint }}</div>{% endif %}
"""


def _dropped(manifest: Record) -> list[tuple[str, str, int]] | None:
    """``(source, reason, rows)`` the build left out (manifest ``dropped``), largest first;
    ``None`` when the manifest predates the count."""
    if manifest.get("dropped") is None:
        return None
    out = []
    for source, reasons in manifest.sub("dropped").items():
        for reason in reasons.data:
            n = reasons.integer(reason)
            if n:
                out.append((source, str(reason), n))
    return sorted(out, key=lambda item: (-item[2], item[0], item[1]))


def _delay_text(seconds: float) -> str:
    """The outcome delay as a spec would write it (``60d``), else in days (``89.7 days``)."""
    exact = fmt_duration(timedelta(seconds=seconds))
    return exact if not exact.endswith("s") or seconds < 86_400 else (
        f"{seconds / 86_400:.3g} days")


def _share(part: Any, whole: Any) -> str:
    try:
        return fmt_pct(float(part) / float(whole), 1)
    except (TypeError, ValueError, ZeroDivisionError):
        return "–"


@register_section(order=40, id="label-maturity", title="Label maturity")
def label_maturity_section(loaded: LoadedSpec, workspace: Path) -> Section:
    """Mature, immature and positive rows, and decisions and positive rate per week."""
    manifest = strict_manifest(workspace)
    spec_label = loaded.spec.label
    if manifest is None:
        return unavailable(
            "label-maturity", "Label maturity", BUILD,
            f"Label '{spec_label.name}' matures {fmt_duration(spec_label.horizon)} after each "
            "decision; the counts need a built frame.")
    counts = manifest.sub("rows")
    rows = {key: counts.integer(key)
            for key in ("total", "mature", "immature", "positive", "dropped_no_time")}
    label = manifest.sub("label")
    label_name = label.text("name")
    horizon = fmt_duration(label["horizon"])
    amount = label.get("kind") == "amount"
    bars = hbar_chart([
        Bar("decision points", rows["total"], COLORS["neutral"]),
        Bar("mature", rows["mature"], COLORS["primary"], _share(rows["mature"], rows["total"])),
        Bar("immature", rows["immature"], COLORS["warn"], _share(rows["immature"], rows["total"])),
        Bar("outcome > 0" if amount else "positive", rows["positive"], COLORS["positive"],
            _share(rows["positive"], rows["mature"]) + " of mature"),
        Bar("dropped (no time)", rows["dropped_no_time"], COLORS["muted"]),
    ], title=f"Row counts of the frame for label {label_name}")
    chart, grain, hint = None, "week", ""
    frame = frame_path(workspace, manifest.data)
    time_column = manifest.sub("frame").text("time_column")
    if frame is None:
        hint = "The frame file is missing; run `valuechain build` to chart decisions over time."
    else:
        series = over_time(frame, time_column, label_name)
        if series is None:
            hint = (f"The frame has no usable time column '{time_column}' or label "
                    f"'{label_name}', so nothing can be charted over time.")
        else:
            grain = series.grain
            chart = weekly_chart(series.starts, series.decisions, series.positive_rate,
                                 title=f"Mature decisions and positive rate per {grain}",
                                 grain=grain)
    dropped = _dropped(manifest)
    delay = manifest.optional("label_delay")
    html = fragment(
        _MATURITY, rows=rows, share=_share, dropped=dropped,
        immature_delay=counts.get("immature_delay") or 0,
        delay=_delay_text(delay.number("seconds") or 0.0) if delay else "",
        dropped_total=sum(n for _, _, n in dropped or ()), positive_rate=_share(rows["positive"], rows["mature"]),
        horizon=horizon, as_of=manifest.text("as_of"), label_name=label_name, bars=bars,
        chart=chart, grain=grain, chart_hint=hint,
    )
    return Section("label-maturity", "Label maturity", html)
