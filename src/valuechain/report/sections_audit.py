"""Report section from ``valuechain audit``: the leakage findings and the numbers behind them.

Reads ``<workspace>/audit.json`` (:meth:`valuechain.audit.findings.AuditResult.to_json`)
strictly (a key the audit always writes that is missing fails the section): the
verdict (unaccepted critical findings), every finding with its evidence and fix (accepted ones
stay visible with who accepted them and why), the random-split vs time-split AUC of the full
model and a chart of each feature's single-feature AUC against the critical threshold.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape

from valuechain.audit.empirical import CRITICAL_AUC, WARNING_AUC
from valuechain.errors import DataError
from valuechain.evaluate import RANDOM_TIME_GAP
from valuechain.report.fmt import fmt_num
from valuechain.report.provenance import origin_note, provenance
from valuechain.report.record import Record
from valuechain.report.section import (
    Section,
    code_spans,
    fragment,
    read_json,
    register_section,
    unavailable,
)
from valuechain.report.svg import COLORS
from valuechain.spec.loader import LoadedSpec

__all__ = ["auc_chart", "audit_section"]

AUDIT = "valuechain audit"
MAX_BARS = 60
_SEVERITIES = ("critical", "warning", "info")
_BADGE_CLASS = {"critical": "fail", "warning": "warn", "info": "na"}
_FONT = 'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif"'


def _auc(value: float | None) -> str:
    """An AUC to three decimals (``1.000``, not ``1``), or an en dash."""
    return "–" if value is None else f"{value:.3f}"


def _bar_color(value: float) -> str:
    if value >= CRITICAL_AUC:
        return COLORS["positive"]
    if value >= WARNING_AUC:
        return COLORS["warn"]
    return COLORS["primary"]


def auc_chart(aucs: Sequence[tuple[str, float]], critical: float = CRITICAL_AUC,
              width: int = 720) -> Markup:
    """Horizontal bars of single-feature AUC on a 0-1 scale, with chance and critical lines.

    >>> print(auc_chart([("amount", 0.71), ("status", 1.0)])[:4])
    <svg
    """
    row, label_w, value_w, top, bottom = 20, 190, 56, 22, 24
    span = width - label_w - value_w
    height = top + row * len(aucs) + bottom

    def x(v: float) -> float:
        return label_w + max(0.0, min(v, 1.0)) * span

    body: list[str] = []
    base = top + row * len(aucs)
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        body.append(
            f'<line x1="{x(tick):.1f}" x2="{x(tick):.1f}" y1="{top}" y2="{base}" '
            f'stroke="{COLORS["grid"]}"/>'
            f'<text x="{x(tick):.1f}" y="{base + 15}" text-anchor="middle" font-size="11" '
            f'fill="{COLORS["muted"]}">{tick:g}</text>'
        )
    for i, (name, value) in enumerate(aucs):
        y = top + i * row
        shown = name if len(name) <= 30 else name[:29] + "…"
        tip = f"{name}: AUC {_auc(value)} alone on the later period"
        body.append(
            f'<text x="{label_w - 8}" y="{y + 14}" text-anchor="end" font-size="12" '
            f'fill="{COLORS["ink"]}">{escape(shown)}<title>{escape(name)}</title></text>'
            f'<rect x="{label_w}" y="{y + 3}" width="{max(x(value) - label_w, 1.0):.1f}" '
            f'height="{row - 6}" rx="2" fill="{_bar_color(value)}">'
            f"<title>{escape(tip)}</title></rect>"
            f'<text x="{x(value) + 6:.1f}" y="{y + 14}" font-size="11" '
            f'fill="{COLORS["muted"]}">{_auc(value)}</text>'
        )
    body.append(
        f'<line x1="{x(0.5):.1f}" x2="{x(0.5):.1f}" y1="{top - 4}" y2="{base}" '
        f'stroke="{COLORS["muted"]}" stroke-dasharray="3 3"/>'
        f'<text x="{x(0.5):.1f}" y="{top - 8}" text-anchor="middle" font-size="11" '
        f'fill="{COLORS["muted"]}">chance 0.5</text>'
        f'<line class="critical-line" x1="{x(critical):.1f}" x2="{x(critical):.1f}" '
        f'y1="{top - 4}" y2="{base}" stroke="{COLORS["positive"]}" stroke-width="1.5" '
        'stroke-dasharray="5 3"/>'
        f'<text x="{x(critical) - 4:.1f}" y="{top - 8}" text-anchor="end" font-size="11" '
        f'fill="{COLORS["positive"]}">critical {fmt_num(critical, 3)}</text>'
    )
    title = (f"Single-feature AUC on the later period for {len(aucs)} features; "
             f"{fmt_num(critical, 3)} and above is critical")
    head = (f'<svg class="chart chart-bars chart-auc" role="img" viewBox="0 0 {width} {height}" '
            f'width="100%" preserveAspectRatio="xMinYMin meet" {_FONT}>'
            f"<title>{escape(title)}</title>")
    return Markup(head + "".join(body) + "</svg>")


_AUDIT = """
{{ origin }}
<p class="verdict" data-key="audit-critical" data-value="{{ critical }}">{{ badge(critical == 0,
  'no unaccepted critical finding',
  critical ~ ' unaccepted critical finding' ~ ('' if critical == 1 else 's')) }}
  {{ counts.critical }} critical, {{ counts.warning }} warning, {{ counts.info }} info
  {%- if accepted %}; {{ accepted|length }} accepted in the spec{% endif %}.
  <span class="muted">{% if mode == 'frame' %}Flat table <code>{{ frame }}</code>
  {%- elif frame %}Built frame <code>{{ frame }}</code>{% endif %}
  {%- if rows is not none %}, {{ rows|thousands }} rows{% endif %}.</span></p>
{% if stale %}<p class="note warn">The spec changed after this audit ran. Run
<code>valuechain audit</code> again to refresh it.</p>{% endif %}
{% if critical %}<p class="note warn"><code>valuechain audit</code> exits with 1 until each
critical finding is fixed, or accepted on purpose under <code>audit.accept</code> in the spec
(<code>{id, reason, by}</code>). <code>valuechain audit --explain ID</code> prints the rows
behind a finding.</p>{% endif %}
{% if accepted %}
<h3>Accepted in the spec</h3>
<ul>
{% for f in accepted %}
  <li><code>{{ f.id }}</code> ({{ f.severity }}) accepted by <strong>{{ f.accepted_by }}</strong>
    {%- if f.accepted_reason %}: {{ f.accepted_reason }}{% endif %}</li>
{% endfor %}
</ul>
{% endif %}
{% if unused %}<p class="note warn">The spec accepts
{% for id in unused %}<code>{{ id }}</code>{{ ', ' if not loop.last }}{% endfor %}, which
this audit did not report: remove the acceptance, or run the audit again.</p>{% endif %}
{% if findings %}
<h3>Findings</h3>
<div class="scroll"><table class="data findings">
  <thead><tr><th>Severity</th><th>Finding</th><th>Features</th><th>Explanation</th>
    <th>Evidence</th><th>Fix</th></tr></thead>
  <tbody>
  {% for f in findings %}
    <tr><td><span class="badge {{ f.badge }}">{{ f.severity }}</span>
      {% if f.accepted %}<br><span class="badge pass">accepted</span>
      <div class="small">by {{ f.accepted_by }}{% if f.accepted_reason %}: {{ f.accepted_reason }}
      {%- endif %}</div>{% endif %}</td>
      <th><code>{{ f.id }}</code><div class="muted small">{{ f.check }}</div></th>
      <td>{% for name in f.features %}<span class="chip">{{ name }}</span>{% else %}
        <span class="muted">–</span>{% endfor %}</td>
      <td>{{ f.explanation }}</td>
      <td class="small">{% for key, value in f.evidence %}
        <div class="nowrap"><span class="muted">{{ key }}</span> <strong>{{ value }}</strong></div>
        {%- endfor %}</td>
      <td>{{ f.fix }}</td></tr>
  {% endfor %}
  </tbody>
</table></div>
{% else %}<p>No findings.</p>{% endif %}
<h3>Random split vs split by time: a leakage probe</h3>
<div class="tiles">
  <div class="tile"><div class="value">{{ auc_time }}</div>
    <div class="label">full-model AUC, split by time (train on the earlier 70 %)</div></div>
  <div class="tile"><div class="value">{{ auc_random }}</div>
    <div class="label">full-model AUC, random 30 % held out</div></div>
  <div class="tile{{ ' accent' if gap_warn }}"><div class="value">{{ gap }}</div>
    <div class="label">gap (random − time; a warning from {{ gap_warning|num }})</div></div>
  <div class="tile"><div class="value">{{ train_rows|thousands }} / {{ test_rows|thousands }}
    </div><div class="label">rows before / after the time split</div></div>
</div>
<p class="muted small">A random split lets the model see the same period, entities and
campaigns on both sides; a split by time is what production looks like. A large gap means
information shared across time (leakage, repeated entities or campaigns) or drift between
periods: trust the time split. This probe trains a quick model on every labelled row (the
earlier 70 % of time vs a random 30 %); the Evaluation section's comparison measures the chosen
candidate on the run's own periods, so the two give different numbers.</p>
<h3>Single-feature power</h3>
{% if chart %}{{ chart }}
<p class="muted small">Each feature alone, binned on the earlier 70 % of time and scored on the
later part. At {{ critical_auc|num }} or above a single feature is a critical finding (red);
from {{ warning_auc|num }} (amber) it is a warning when it also explains at least 90 % of the
full model's lift. Near 0.5 a feature carries no signal on its own; below 0.5 the relation
learnt on the earlier period reversed later (drift).
{% if hidden %}The {{ hidden|thousands }} weakest features are not shown.{% endif %}</p>
{% else %}<div class="hint">This audit recorded no single-feature AUC.</div>{% endif %}
"""


def _evidence(raw: Any) -> list[tuple[str, str]]:
    if not isinstance(raw, dict):
        return []
    out = []
    for key, value in raw.items():
        if isinstance(value, bool):
            text = "yes" if value else "no"
        elif isinstance(value, int | float):
            text = fmt_num(value)
        else:
            text = str(value)
        out.append((str(key), text))
    return out


def _finding(raw: Record) -> dict[str, Any]:
    severity = raw.text("severity")
    accepted = raw["accepted"] is True
    return {
        "id": raw.text("id"),
        "check": raw.text("check"),
        "severity": severity,
        "badge": _BADGE_CLASS.get(severity, "na"),
        "features": [str(f) for f in raw.sequence("features")],
        "evidence": _evidence(raw.sub("evidence").data),
        "explanation": code_spans(raw.text("explanation")),
        "fix": code_spans(raw.text("fix")),
        "accepted": accepted,
        "accepted_by": raw.text("accepted_by") if accepted else "",
        "accepted_reason": str(raw.get("accepted_reason") or "") if accepted else "",
    }


def _aucs(raw: Record) -> list[tuple[str, float]]:
    known = [(str(name), number) for name in raw.data
             if (number := raw.number(name)) is not None]
    return sorted(known, key=lambda item: (-item[1], item[0]))


def _audit_mismatch(workspace: Path, spec_hash: str) -> bool:
    try:
        return bool(provenance(workspace, spec_hash).of("audit"))
    except DataError:  # shown by the Provenance section and the origin line
        return False


@register_section(order=60, id="audit", title="Leakage audit")
def audit_section(loaded: LoadedSpec, workspace: Path) -> Section:
    """Leakage findings, the random-vs-time AUC gap and single-feature AUC per feature."""
    path = workspace / "audit.json"
    raw = read_json(path)
    if raw is None:
        return unavailable("audit", "Leakage audit", AUDIT,
                           "No leakage audit has been run on this spec.")
    report = Record(raw if isinstance(raw, dict) else {"findings": raw}, "audit.json", AUDIT)
    findings = [_finding(f) for f in report.subs("findings")]
    critical = sum(f["severity"] == "critical" and not f["accepted"] for f in findings)
    if critical != report.integer("critical"):
        raise DataError(f"audit.json: `critical` is {report['critical']} but the findings hold "
                        f"{critical} unaccepted critical ones; run `{AUDIT}` to write it again.")
    counts = {s: sum(f["severity"] == s for f in findings) for s in _SEVERITIES}
    accepted = [f for f in findings if f["accepted"]]
    reported = {f["id"] for f in findings}
    unused = [a.id for a in loaded.spec.audit.accept if a.id not in reported]
    ctx = report.sub("context")
    auc_time, auc_random = ctx.number("auc_time_split"), ctx.number("auc_random_split")
    gap = None if auc_time is None or auc_random is None else auc_random - auc_time
    aucs = _aucs(ctx.sub("feature_auc"))
    shown = aucs[:MAX_BARS]
    chart = auc_chart(shown) if shown else None
    stale = loaded.path.is_file() and loaded.path.stat().st_mtime > path.stat().st_mtime
    html = fragment(
        _AUDIT, critical=critical, counts=counts, accepted=accepted, unused=unused,
        findings=findings, stale=stale, mode=ctx.text("mode"),
        frame=ctx.text("frame"), rows=ctx.integer("rows"),
        auc_time=_auc(auc_time), auc_random=_auc(auc_random),
        gap="–" if gap is None else f"{gap:+.3f}", gap_warn=gap is not None and gap >= RANDOM_TIME_GAP,
        gap_warning=RANDOM_TIME_GAP, train_rows=ctx.integer("train_rows"),
        test_rows=ctx.integer("test_rows"), chart=chart, hidden=len(aucs) - len(shown),
        critical_auc=CRITICAL_AUC, warning_auc=WARNING_AUC,
        origin=origin_note(workspace, loaded.hash, "audit"),
    )
    warned = stale or any(f["severity"] == "warning" and not f["accepted"] for f in findings) \
        or bool(_audit_mismatch(workspace, loaded.hash))
    return Section("audit", "Leakage audit", html,
                   "fail" if critical else ("warn" if warned else "ok"))
