"""Report section on the features: definition in words, build statistics, histograms.

Definitions come from the build manifest (what the frame was built with, read strictly: a
feature entry without its name, kind, definition, type or null share fails the section) or,
before the first build, from the spec itself.

>>> describe_feature({"aggregate": "mean", "of": "amount", "key": "customer_id",
...                   "window": "1w", "lag": "0w"}, label="is_fraud")
'mean of amount by customer_id over (t-7d, t]'
>>> describe_feature({"aggregate": "rate", "of": "label", "key": "terminal_id",
...                   "window": "30d", "lag": "7d", "fill": 0}, label="is_fraud")
'outcome-derived rate of label is_fraud by terminal_id over (t-37d, t-7d], outcomes known by t; empty → 0'
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

from valuechain.report.fmt import fmt_duration, fmt_num, fmt_pct, to_delta
from valuechain.report.framestats import histograms
from valuechain.report.section import Section, fragment, register_section
from valuechain.report.sections_build import frame_path, strict_manifest
from valuechain.report.svg import histogram
from valuechain.spec.loader import LoadedSpec

__all__ = ["describe_feature", "features_section"]

_AGG_WORDS = {"distinct_count": "distinct count", "std": "standard deviation"}


def _window(defn: dict[str, Any]) -> str:
    window = to_delta(defn.get("window")) or timedelta(0)
    lag = to_delta(defn.get("lag")) or timedelta(0)
    if lag:
        return f"(t-{fmt_duration(window + lag)}, t-{fmt_duration(lag)}]"
    return f"(t-{fmt_duration(window)}, t]"


def describe_feature(defn: dict[str, Any], label: str, own: str | None = None) -> str:
    """A compact human reading of a feature definition (spec fields as in the manifest).

    Parameters
    ----------
    defn
        The feature's spec fields (``expr``, ``aggregate``/``key``/``window``/..., or
        ``lookup``), durations as spec strings or ``timedelta``.
    label
        The label's name, for outcome-derived aggregates.
    own
        The decision source, named by counts over it ("count of transactions", or
        "count of <source> rows" when the name is not a plural).
    """
    fill = defn.get("fill")
    tail = "" if fill is None else f"; empty → {fmt_num(fill)}"
    if "lookup" in defn:
        lk = defn["lookup"] or {}
        on = lk.get("on")
        match = lk.get("key", "?") + (f" = {on}" if on and on != lk.get("key") else "")
        return (f"{lk.get('column', '?')} of {lk.get('source', '?')} as known at t, "
                f"matched on {match}{tail}")
    if "aggregate" in defn:
        agg = str(defn["aggregate"])
        words = _AGG_WORDS.get(agg, agg)
        source = defn.get("source")
        if defn.get("of") == "label":
            what = f"outcome-derived {words} of label {label}"
        elif agg == "count":
            name = source or own or "decision"
            what = f"count of {name}" if name.endswith("s") else f"count of {name} rows"
        else:
            what = f"{words} of {defn.get('of', '?')}"
            if source and source != own:
                what += f" in {source}"
        text = f"{what} by {defn.get('key', '?')} over {_window(defn)}"
        if defn.get("of") == "label":
            text += ", outcomes known by t"
        if defn.get("where"):
            text += f", where {defn['where']}"
        if defn.get("include_current") is False:
            text += ", excluding the decision event"
        return text + tail
    return f"row expression: {defn.get('expr', '?')}{tail}"


_FEATURES = """
{% if not built %}<div class="hint"><strong>Statistics not available yet.</strong>
Definitions below come from the spec. Run <code>valuechain build</code> to add types, null
shares, ranges and histograms.</div>{% elif not frame %}<p class="note warn">The frame file is
missing, so histograms are not shown. Run <code>valuechain build</code> to rebuild it.</p>
{% endif %}
<div class="scroll"><table class="data features">
  <thead><tr><th>Feature</th><th>Kind, type</th><th>Definition</th>
    <th class="num">Nulls</th><th class="num">Mean</th><th class="num">Min</th>
    <th class="num">Max</th><th>Distribution</th></tr></thead>
  <tbody>
  {% for f in features %}
    <tr><th class="name"><code>{{ f.name }}</code>{% if f.description %}
      <div class="muted small">{{ f.description }}</div>{% endif %}</th>
      <td class="type"><span class="chip kind-{{ f.kind }}">{{ f.kind }}</span>
        {% if f.type %}<div><code>{{ f.type }}</code></div>{% endif %}</td>
      <td class="def">{{ f.text }}</td>
      <td class="num">{{ f.null_share|pct(1) if f.null_share is not none else '–' }}</td>
      <td class="num">{{ f.mean|num }}</td><td class="num">{{ f.min|num }}</td>
      <td class="num">{{ f.max|num }}</td>
      <td class="hist">{% if f.hist %}{{ f.hist }}<div class="hist-axis"><span>{{ f.lo }}</span>
        <span>{{ f.hi }}</span></div>{% if f.note %}<div class="muted small" title="{{ f.note_title }}">{{ f.note }}</div>
        {% endif %}{% else %}<span class="muted">–</span>{% endif %}</td></tr>
  {% endfor %}
  </tbody>
</table></div>
{% if sampled %}<p class="muted small">Histograms from a seeded sample of about
{{ sampled|thousands }} frame rows (hover a bar for its range and share). Where marked "central
99%", the 0.5% tails on each side are left out so that the bulk of the distribution stays
readable.</p>{% endif %}
"""


@register_section(order=50, id="features", title="Features")
def features_section(loaded: LoadedSpec, workspace: Path) -> Section:
    """Each feature: kind, definition in words, type, null share, mean/min/max, histogram."""
    spec = loaded.spec
    manifest = strict_manifest(workspace)
    label = spec.label.name
    entries: list[dict[str, Any]]
    if manifest is not None:  # what the frame was built with, read strictly
        entries = []
        for item in manifest.subs("features"):
            stats = {key: item.number(key) if key in item else None
                     for key in ("mean", "min", "max")}  # numeric features only
            entries.append({"name": item.text("name"), "kind": item.text("kind"),
                            "definition": dict(item.sub("definition").data),
                            "type": item.text("type"),
                            "null_share": item.number("null_share"), **stats})
        label = manifest.sub("label").text("name")
    else:
        entries = [{"name": f.name, "kind": f.kind,
                    "definition": f.model_dump(mode="json", exclude_none=True),
                    "type": None, "null_share": None, "mean": None, "min": None, "max": None}
                   for f in spec.features]
    frame = frame_path(workspace, manifest.data) if manifest is not None else None
    hists = histograms(frame, [str(e["name"]) for e in entries]) if frame else {}
    rows, sampled = [], 0
    for entry in entries:
        defn = entry["definition"]
        row: dict[str, Any] = {
            "name": entry["name"], "kind": entry["kind"],
            "description": defn.get("description"), "text": describe_feature(defn, label,
                                                                             spec.event_source),
            "type": entry["type"], "null_share": entry["null_share"],
            "mean": entry["mean"], "min": entry["min"], "max": entry["max"],
            "hist": None, "note": "", "note_title": "",
        }
        hist = hists.get(str(row["name"]))
        if hist is not None:
            sampled = max(sampled, hist.rows)
            row["hist"] = histogram(hist.counts, hist.lo, hist.hi, discrete=hist.discrete)
            top = hist.hi - 1 if hist.discrete else hist.hi
            row["lo"], row["hi"] = fmt_num(hist.lo, 3), fmt_num(top, 3)
            if hist.outside > 0:
                row["note"] = "central 99%"
                row["note_title"] = (f"{fmt_pct(hist.outside, 1)} of the sampled values lie "
                                     "beyond the range drawn")
        rows.append(row)
    html = fragment(_FEATURES, features=rows, built=manifest is not None, frame=frame,
                    sampled=sampled)
    return Section("features", "Features", html, "ok" if manifest is not None else "missing")
