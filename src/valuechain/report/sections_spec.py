"""Report sections from the spec and ``valuechain check``: framing and readiness checklist."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from valuechain.report.fmt import fmt_duration, plain_text
from valuechain.report.record import Record
from valuechain.report.section import Section, fragment, read_json, register_section, unavailable
from valuechain.spec.loader import LoadedSpec
from valuechain.spec.models import EventPoints, SchedulePoints

__all__ = ["framing_section", "readiness_section"]

OWNER_LINKS = (
    ("product", "Product", "states the decision, the KPI and the actions"),
    ("data_science", "Data science", "builds, evaluates and calibrates the model"),
    ("data_engineering", "Data engineering", "delivers the sources on time, point-in-time"),
    ("ml_engineering", "ML engineering", "packages, serves and scores within the budget"),
    ("operations", "Operations", "acts on the decisions and reports the outcomes"),
)

_FRAMING = """
{% if project.description %}<p class="lead">{{ project.description }}</p>{% endif %}
<blockquote class="statement">{{ d.statement }}</blockquote>
<table class="kv">
  <tr><th>Decision owner</th><td>{{ d.owner }}</td></tr>
  <tr><th>Moment</th><td>{{ d.moment }}</td></tr>
  <tr><th>Actions</th><td class="chips">
    {% for a in d.actions %}<span class="chip">{{ a }}</span>{% endfor %}</td></tr>
  <tr><th>Latency budget</th><td>{% if d.latency_budget_ms %}{{ d.latency_budget_ms|num }} ms
    {% elif batch %}<span class="muted">not needed: a batch decision on a schedule</span>
    {% else %}<span class="badge warn">not stated</span>
    <span class="muted">set <code>decision.latency_budget_ms</code></span>{% endif %}</td></tr>
  <tr><th>KPI</th><td>{% if d.kpi %}{{ d.kpi }}{% else %}<span class="badge warn">not stated</span>
    <span class="muted">set <code>decision.kpi</code></span>{% endif %}</td></tr>
  <tr><th>Decision points</th><td>{{ points }}</td></tr>
  <tr><th>Label</th><td><code>{{ label.name }}</code> ({{ label.kind }}): the outcome within
    {{ label.horizon|duration }} after the decision</td></tr>
</table>
<h3>Owners of the value chain</h3>
<table class="data owners">
  <thead><tr><th>Link</th><th>Owner</th><th>Responsible for</th></tr></thead>
  <tbody>
  {% for key, link, role in links %}
    {% set who = owners[key] %}
    <tr class="{{ '' if who else 'missing' }}"><th>{{ link }}</th>
      <td>{% if who %}{{ who }}{% else %}<span class="badge fail">missing</span>
        <span class="muted">set <code>owners.{{ key }}</code></span>{% endif %}</td>
      <td class="muted">{{ role }}</td></tr>
  {% endfor %}
  </tbody>
</table>
{% if missing %}<p class="note warn">{{ missing|length }} of {{ links|length }} links have no
owner. A model nobody owns end to end stops creating value when the first link breaks.</p>
{% endif %}
"""


def _points(loaded: LoadedSpec) -> str:
    dp = loaded.spec.decision_points
    if isinstance(dp, EventPoints):
        return f"one per row of source '{dp.source}' (each event is decided when it happens)"
    assert isinstance(dp, SchedulePoints)
    s = dp.schedule
    active = f", active within {fmt_duration(s.active_within)}" if s.active_within else ""
    return (f"each '{s.key}' of '{s.population}' every {fmt_duration(s.every)} from "
            f"{s.start.isoformat()}{active}")


@register_section(order=10, id="framing", title="Framing")
def framing_section(loaded: LoadedSpec, workspace: Path) -> Section:
    """The decision the model serves and who owns each link of the value chain."""
    spec = loaded.spec
    owners = spec.owners.model_dump()
    missing = [key for key, _, _ in OWNER_LINKS if not owners.get(key)]
    batch = isinstance(spec.decision_points, SchedulePoints)
    html = fragment(
        _FRAMING, project=spec.project, d=spec.decision, label=spec.label, owners=owners,
        links=OWNER_LINKS, missing=missing, points=_points(loaded), batch=batch,
    )
    no_budget = spec.decision.latency_budget_ms is None and not batch
    incomplete = missing or not spec.decision.kpi or no_budget
    return Section("framing", "Framing", html, "warn" if incomplete else "ok")


_READINESS = """
<p class="verdict">{{ badge(passed, 'ready', 'not ready') }}
  {{ n_pass }} of {{ checklist|length }} checklist items pass
  {%- if data_checks %}; {{ d_pass }} of {{ data_checks|length }} data checks pass{% endif %}.</p>
{% if stale %}<p class="note warn">The spec changed after this check ran. Run
<code>valuechain check</code> again to refresh it.</p>{% endif %}
<table class="data checks">
  <thead><tr><th></th><th>Checklist item</th><th>Reason</th></tr></thead>
  <tbody>
  {% for c in checklist %}
    <tr><td>{{ badge(c.passed) }}</td><th>{{ c.title }}</th><td>{{ c.reason }}</td></tr>
  {% endfor %}
  </tbody>
</table>
{% if data_checks %}
<h3>Data checks</h3>
<table class="data checks">
  <thead><tr><th></th><th>Check</th><th>Result</th></tr></thead>
  <tbody>
  {% for c in data_checks %}
    <tr><td>{{ badge(c.passed) }}</td><th>{{ c.name }}</th><td>{{ c.message }}</td></tr>
  {% endfor %}
  </tbody>
</table>
{% endif %}
"""


def _items(report: Record, key: str, *fields: str) -> list[dict[str, Any]]:
    out = []
    for item in report.subs(key):
        entry: dict[str, Any] = {f: plain_text(item.text(f)) for f in fields}
        entry["passed"] = item["passed"] is True
        out.append(entry)
    return out


@register_section(order=20, id="readiness", title="Readiness checklist")
def readiness_section(loaded: LoadedSpec, workspace: Path) -> Section:
    """The readiness checklist and data checks written by ``valuechain check``."""
    path = workspace / "check.json"
    raw = read_json(path)
    if raw is None:
        return unavailable("readiness", "Readiness checklist", "valuechain check",
                           "The readiness checklist has not been run on this spec.")
    report = Record(raw if isinstance(raw, dict) else {"checklist": raw}, "check.json",
                    "valuechain check")
    checklist = _items(report, "checklist", "item", "title", "reason")
    data_checks = _items(report, "data_checks", "name", "message")
    passed = report["passed"] is True
    stale = loaded.path.is_file() and loaded.path.stat().st_mtime > path.stat().st_mtime
    html = fragment(
        _READINESS, passed=passed, checklist=checklist, data_checks=data_checks, stale=stale,
        n_pass=sum(c["passed"] for c in checklist), d_pass=sum(c["passed"] for c in data_checks),
    )
    return Section("readiness", "Readiness checklist", html,
                   "fail" if not passed else ("warn" if stale else "ok"))
