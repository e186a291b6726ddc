"""Report section "Uplift": what a call changes, judged on the randomized history.

Reads ``<workspace>/uplift/latest`` -> ``uplift/<run_id>/uplift.json`` (written by
``valuechain uplift``, :mod:`valuechain.uplift.run`) and draws, with the offline SVG charts
of :mod:`valuechain.report.svg`: the Qini and gain-vs-budget curves of the chosen learner
and of the risk score on the randomized test rows, each with its 95 % band (customers
resampled), control vs treated churn per matured week, the lists compared (risk-ranked,
uplift-ranked, random, today's rule) in churners saved and money, and the holdout planner.
No card when the spec has no ``treatment:`` block or no uplift run exists.
"""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path
from typing import Any

from markupsafe import Markup

from valuechain.report.section import Section, Status, fragment, read_json, register_section
from valuechain.report.svg import PALETTE, Line, period_chart, xy_chart
from valuechain.spec.loader import LoadedSpec
from valuechain.uplift.planner import plan_holdout

__all__ = ["uplift_section"]

TITLE = "Uplift: what a call changes"
COMMAND = "valuechain uplift"

_BODY = """
<p data-key="uplift-summary">From the randomized history (<code>{{ s.treatment.source }}</code>):
{{ a.assigned_rows|thousands }} matured listings ({{ a.treated|thousands }} treated,
{{ a.control|thousands }} held out). Chosen learner <code>{{ s.chosen_learner }}</code>
(highest validation Qini). Pooled over {{ p.weeks }} weeks, the action changes the outcome
rate by <strong>{{ p.effect.value|num }}</strong> [{{ p.effect.low|num }},
{{ p.effect.high|num }}] (control {{ p.control_rate|pct }} vs treated
{{ p.treated_rate|pct }}).</p>
<p data-key="uplift-verdict"><strong>Verdict:</strong> {{ s.verdict }}.</p>
{% for title, chart, note in charts %}<h3>{{ title }}</h3>
{% if note %}<p class="muted small">{{ note }}</p>{% endif %}{{ chart }}
{% endfor %}
<h3>Lists of {{ s.capacity|thousands }} a week on the {{ s.weeks_test }} test weeks</h3>
<p class="muted small">Saves = churners a call prevents. <em>Measured</em>: estimated from
the randomized history (Horvitz-Thompson over the list's listings that were randomized; the
rest of a list is not measurable from the history). <em>True</em>: the generator's true
effects (only with <code>--truth</code>). Intervals resample customers.</p>
<div class="scroll"><table class="data" data-key="uplift-lists"><thead><tr><th>List</th>
<th>Listed</th><th>Measured</th><th>Est. saves</th><th>Est. money</th>
{% if truth %}<th>True saves</th><th>True money</th><th>True saves vs risk</th>{% endif %}
</tr></thead><tbody>
{% for o in s.lists %}<tr><td>{{ o.name }}</td><td>{{ o.listed|thousands }}</td>
<td>{{ o.measured|thousands }} ({{ o.measured_share|pct }})</td>
<td>{{ iv(o.saves_measured, 1) }}</td><td>{{ iv(o.money_measured, 0) }}</td>
{% if truth %}<td>{{ iv(o.get('true_saves'), 1) }}</td><td>{{ iv(o.get('true_money'), 0) }}</td>
<td>{{ iv(o.get('true_saves_vs_risk'), 1) }}</td>{% endif %}</tr>
{% endfor %}</tbody></table></div>
<h3>Learners</h3>
<div class="scroll"><table class="data" data-key="uplift-learners"><thead><tr><th>Learner</th>
<th>Validation Qini</th><th>Test Qini</th><th>Test AUUC</th><th>Uplift, top 30 % a week</th>
{% if truth %}<th>Corr. with true effect</th>{% endif %}</tr></thead><tbody>
{% for name, l in s.learners.items() %}<tr><td>{{ name }}{% if name == s.chosen_learner %}
(chosen){% endif %}</td><td>{{ iv(l.validation.qini, 4) }}</td><td>{{ iv(l.test.qini, 4) }}</td>
<td>{{ iv(l.test.auuc, 4) }}</td><td>{{ iv(l.test.uplift_at_k, 3) }}</td>
{% if truth %}<td>{{ l.test_truth.corr_listed|num if l.get('test_truth') else '–' }}</td>{% endif %}
</tr>{% endfor %}</tbody></table></div>
{% if checks %}<h3>Estimates against the true effects</h3>
<ul data-key="uplift-truth"><li>Pooled estimate {{ iv(checks.pooled_vs_true_mean.estimate, 4) }}
vs the true mean effect of the listed {{ checks.pooled_vs_true_mean.true_mean_uplift_listed|num }}:
{{ 'inside' if checks.pooled_vs_true_mean.agrees else 'OUTSIDE' }} the interval.</li>
{% for g in checks.by_predicted_tercile %}<li>Predicted-uplift tercile {{ g.group }}
({{ g.rows }} test listings, mean prediction {{ g.mean_predicted|num }}): estimate
{{ iv(g.estimate, 3) }} vs true {{ g.true_mean|num }}
({{ 'inside' if g.agrees else 'OUTSIDE' }}).</li>{% endfor %}</ul>{% endif %}
<h3>Holdout planner</h3>
{% if plan %}<p data-key="uplift-planner">With {{ s.capacity|thousands }} listed a week and
{{ share|pct }} held out, an effect of {{ plan.effect|num }} on a control churn rate of
{{ plan.base|pct }} is detected with 80 % power at the 5 % level after
<strong>{{ plan.weeks }} matured weeks</strong>; {{ p.weeks }} weeks have matured so far
({{ 'enough' if p.weeks >= plan.weeks else (plan.weeks - p.weeks) ~ ' more needed' }}).
<code>valuechain plan-holdout</code> plans other list sizes and shares.</p>
{% else %}<p data-key="uplift-planner">The pooled effect so far is not positive: no planned
duration (run <code>valuechain plan-holdout</code> with the effect you expect).</p>{% endif %}
<p class="muted small">Run <code>{{ s.run_id }}</code>, {{ s.created_at[:16]|replace('T', ' ') }}
UTC.</p>
"""


def _iv(block: dict[str, Any] | None, digits: int = 3) -> str:
    if not block:
        return "–"
    def f(v: Any) -> str:
        if v is None or (isinstance(v, float) and not math.isfinite(v)):
            return "–"
        return f"{v:,.{digits}f}"
    return f"{f(block.get('value'))} [{f(block.get('low'))}, {f(block.get('high'))}]"


def _curve_chart(curves: dict[str, Any], kind: str, title: str, y_label: str) -> Markup:
    lines: list[Line] = []
    values: list[float] = []
    for i, (name, label) in enumerate((("uplift", "uplift model"), ("risk", "risk score"))):
        if name not in curves:
            continue
        c = curves[name][kind]
        color = PALETTE[i]
        lines.append(Line(label, c["fraction"], c["value"], color))
        lines.append(Line(f"{label} 95 % band", c["fraction"], c["low"], color, dashed=True))
        lines.append(Line(f"{label} (band)", c["fraction"], c["high"], color, dashed=True))
        values += [v for v in (*c["low"], *c["high"]) if v is not None and math.isfinite(v)]
        if i == 0:
            end = c["value"][-1]
            lines.append(Line("random", [0.0, 1.0], [0.0, end], "#9ca3af", dashed=True))
    lo, hi = min(values, default=0.0), max(values, default=1.0)
    pad = (hi - lo) * 0.05 or 0.01
    return xy_chart(lines, title, "share of the randomized test listings acted on", y_label,
                    (0.0, 1.0), (lo - pad, hi + pad))


def _weekly_chart(weekly: list[dict[str, Any]]) -> Markup | None:
    if not weekly:
        return None
    periods = [date.fromisoformat(str(w["week"])[:10]) for w in weekly]
    return period_chart(periods, [
        Line("control (held out)", [], [w["control_rate"] for w in weekly], PALETTE[1]),
        Line("treated (called)", [], [w["treated_rate"] for w in weekly], PALETTE[0])],
        "Churn within the horizon, control vs treated, per matured week", "churn rate")


def _cumulative_chart(rows: list[dict[str, Any]], needed: int | None) -> Markup | None:
    if not rows:
        return None
    periods = [date.fromisoformat(str(r["week"])[:10]) for r in rows]
    lines = [Line("pooled effect so far", [], [r["effect"] for r in rows], PALETTE[0]),
             Line("95 % interval", [], [r["low"] for r in rows], PALETTE[0], dashed=True),
             Line("(interval)", [], [r["high"] for r in rows], PALETTE[0], dashed=True),
             Line("no effect", [], [0.0] * len(rows), "#9ca3af", dashed=True)]
    if needed is not None and needed <= len(rows):
        lines.append(Line(f"week {needed}: planned power reached", [],
                          [rows[needed - 1]["effect"] if i == needed - 1 else None
                           for i in range(len(rows))], PALETTE[3], joined=False,
                          markers=True))
    return period_chart(periods, lines, "Pooled effect of the action after each matured week",
                        "control - treated churn")


@register_section(order=85, id="uplift", title=TITLE)
def uplift_section(loaded: LoadedSpec, workspace: Path) -> Section | None:
    """The latest ``valuechain uplift`` run; ``None`` (no card) when there is none."""
    folder = workspace / "uplift"
    pointer = folder / "latest"
    if loaded.spec.treatment is None or not pointer.is_file():
        return None
    run_id = pointer.read_text(encoding="utf-8").strip()
    s = read_json(folder / run_id / "uplift.json", rebuild=f"{COMMAND} --spec {loaded.root}")
    if not isinstance(s, dict):
        return None
    charts: list[tuple[str, Markup, str]] = []
    curves = s.get("curves", {})
    if curves:
        charts.append(("Qini curve", _curve_chart(
            curves, "qini", "Qini curve", "churners prevented per listing"),
            "Churners prevented among the treated of the top share, per listing; dashed: "
            "95 % bands (customers resampled) and the random ranking."))
        charts.append(("Gain vs budget", _curve_chart(
            curves, "gain", "Gain vs budget", "churners prevented per listing"),
            "Churners prevented if the top share of the listings were called (uplift curve)."))
    weekly = _weekly_chart(s.get("weekly", []))
    if weekly is not None:
        charts.append(("Control vs treated over matured weeks", weekly, ""))
    p = s["pooled"]
    a = s["assignment"]
    share = a["control"] / a["assigned_rows"] if a["assigned_rows"] else 0.2
    plan = None
    effect, base = p["effect"]["value"], p["control_rate"]
    if (effect is not None and base is not None and math.isfinite(effect) and effect > 0
            and 0 < base < 1 and 0 < share < 1 and base - effect >= 0):
        plan = plan_holdout(base=base, effect=effect, list_size=max(2, int(s["capacity"])),
                            control_share=share)
    cumulative = _cumulative_chart(s.get("cumulative", []), plan.weeks if plan else None)
    if cumulative is not None:
        charts.append(("The effect as the weeks mature", cumulative,
                       "Pooled control - treated churn over the weeks so far (normal "
                       "interval; the headline figure above resamples customers). The "
                       "marker: the week the planner says 80 % power is reached."))
    truth = any("true_saves" in o for o in s.get("lists", []))
    html = fragment(_BODY, s=s, a=a, p=p, charts=charts, truth=truth, iv=_iv,
                    checks=s.get("truth_checks"), plan=plan, share=share)
    status: Status = "ok" if "FEWER" not in str(s.get("verdict", "")) else "warn"
    return Section("uplift", TITLE, html, status)
