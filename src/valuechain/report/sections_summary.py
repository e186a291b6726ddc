"""The report's first screen: each owner's answer in seconds, before the detail sections.

Reads ``decide.json`` (:class:`~valuechain.decide.DecideResult`), ``check.json`` and the
spec, and shows:

- the decision statement and its owner;
- the chosen policy in words (``decline at or above 0.475, send 0.024–0.475 to review (at
  most 150 a day; beyond that approve), approve the rest``);
- money saved against today's rule on the test period, with its 95 % day-block interval, the
  period named (dates and days) and projected per day, month and year (a straight-line
  projection: per day = the total over the days with decisions, a month = 365.25 / 12 days,
  a year = 365 days; the interval scales the same way);
- the cost model next to the money: what a missed positive, a false decline and a review
  cost, the reviewers' catch rate and friction, today's rule;
- the spec's KPI as a number for the policy and for today's rule on test;
- positives caught (not approved) and the review load against capacity: most and mean per
  day, days at the limit, cases the bands sent that spilled over the limit;
- the readiness verdict of ``valuechain check``.

Every figure carries a ``data-key`` and its exact ``data-value``, equal to the ``--json``
output of the stage it comes from (``tests/test_report_summary.py`` checks it). The KPI and
the spills are not in ``decide.json``; they are recomputed from the run's stored test
predictions with decide's own code (:func:`valuechain.decide.stage.run_decisions`,
:func:`valuechain.decide.price.apply`, :func:`~valuechain.decide.price.baseline_actions`)
and the KPI with the monitor's definition (:func:`valuechain.monitor.kpis.forms`), and the
section checks that the recomputed policy cost equals ``decide.json``'s.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from valuechain.decide import DecideResult
from valuechain.report.fmt import fmt_int, fmt_num
from valuechain.report.record import Record
from valuechain.report.section import (
    Section,
    Status,
    fragment,
    read_json,
    register_section,
    unavailable,
)
from valuechain.spec.loader import LoadedSpec

__all__ = ["DAYS_PER_MONTH", "DAYS_PER_YEAR", "KpiFigures", "policy_in_words",
           "recompute_kpis", "summary_section"]

#: The projection rule: a month is 365.25 / 12 days, a year 365 days of the test per-day rate.
DAYS_PER_MONTH = 365.25 / 12
DAYS_PER_YEAR = 365.0

_COST_WORDS = {"false_negative": "a missed positive (approved, turns out positive)",
               "false_positive": "a false decline (declined, turns out negative)",
               "review": "a review"}


def _money(value: float | None) -> str:
    """Whole currency units with separators (cents below 10).

    >>> _money(14514.27), _money(-3.5), _money(None)
    ('14,514', '-3.50', '–')
    """
    if value is None or not math.isfinite(value):
        return "–"
    if abs(value) < 10 and value != 0:
        return f"{value:,.2f}"
    return f"{value:,.0f}"


#: decide.json records infinite thresholds as null: a null review_at reviews every score
#: below the decline band (-inf), a null decline_at or threshold never acts (+inf)
_THRESHOLDS = {"review_at": -math.inf, "decline_at": math.inf, "threshold": math.inf}


def policy_in_words(policy: Any, *, limit: int | None = None, per: str = "day",
                    overflow: str | None = None) -> str:
    """The chosen policy as a clause (:func:`valuechain.policy.describe` without its frame).

    >>> policy_in_words({"kind": "three_band", "review_at": 0.18, "decline_at": 0.62,
    ...                  "actions": ["approve", "review", "decline"]}, limit=150,
    ...                 overflow="approve")
    'decline when the score is 0.62 or above; send 0.18–0.62 to review (at most 150 a day, the rest approved); approve the rest'
    """
    from valuechain.policy import describe

    if isinstance(policy, dict):  # decide.json records an infinite threshold as null
        policy = {k: _THRESHOLDS[k] if v is None and k in _THRESHOLDS else v
                  for k, v in policy.items()}
    unit = {"day": "1d", "week": "7d", "hour": "1h"}.get(per, per)
    return describe(policy, limit, per=unit, overflow=overflow).removeprefix(
        "Policy: ").removesuffix(".")


def run_policy(workspace: Path, decided: DecideResult) -> Any:
    """The decided policy as written to its run (``policy.yaml``; ``decide.json``'s copy
    when the file is gone)."""
    from valuechain.policy import load_policy, policy_from_dict

    path = workspace / "runs" / decided.run_id / "policy.yaml"
    return load_policy(path) if path.is_file() else policy_from_dict(decided.policy)


@dataclass(frozen=True)
class KpiFigures:
    """The KPI and the spills, recomputed on test with decide's code.

    ``policy_kpi`` / ``rule_kpi``: the spec's KPI (loss per 1,000 of approved exposure) for
    the policy and today's rule (``None`` without a rule); ``spilled``: rows the bands sent to
    the limited action beyond the limit (they took the overflow action); ``policy_cost``: the
    recomputed realised cost (checked against ``decide.json``).
    """

    policy_kpi: float
    rule_kpi: float | None
    spilled: int
    policy_cost: float


def _kpi(rows: Any, actions: Any) -> float:
    from valuechain.monitor.kpis import forms
    frame = pd.DataFrame({
        "role": actions,
        "exposure": np.broadcast_to(rows.costs.false_negative, (len(rows),)).astype(float),
        "cost_positive": 0.0, "cost_negative": 0.0, "score": rows.scores})
    form = next(f for f in forms(frame) if f.name == "loss_per_1000")
    return form.value(rows.labels)


def recompute_kpis(loaded: LoadedSpec, decided: DecideResult) -> KpiFigures:
    """The KPI of the policy and of today's rule on test, and the spills (see the module)."""
    from valuechain.decide.price import apply, baseline_actions, realised_cost
    from valuechain.decide.stage import _capacity, run_decisions
    from valuechain.train.result import TrainResult

    run_dir = loaded.workspace / "runs" / decided.run_id
    run = TrainResult.load(run_dir, root=loaded.root)
    action, limit, per_us, overflow, _, _ = _capacity(loaded)
    validation, _ = run_decisions(loaded, run, run_dir, "validation", per_us)
    test, rule = run_decisions(loaded, run, run_dir, "test", per_us)
    policy = run_policy(loaded.workspace, decided)
    acted = apply(policy, test, limit, overflow)
    asked = np.asarray(policy.apply(test.scores, test.periods), dtype=object) == action
    _, index = np.unique(test.periods, return_inverse=True)
    requested = np.bincount(index, weights=asked)
    spilled = int(np.clip(requested - limit, 0, None).sum()) if limit is not None else 0
    rule_kpi = None
    if rule is not None:
        others = baseline_actions(test, validation, action, limit, overflow, {"rules": rule})
        rule_kpi = _kpi(test, others["rules"])
    return KpiFigures(_kpi(test, acted), rule_kpi, spilled,
                      float(realised_cost(test, acted).sum()))


def _period_of(workspace: Path, decided: DecideResult) -> tuple[str, str]:
    """The test period's first and last decision dates (from the run's metrics.json)."""
    raw = read_json(workspace / "runs" / decided.run_id / "metrics.json")
    if raw is None:
        return "", ""
    test = Record(raw, f"runs/{decided.run_id}/metrics.json", "valuechain train"
                  ).sub("splits").sub("test")
    first = datetime.fromisoformat(test.text("start")).date()
    last = datetime.fromisoformat(test.text("end")).date()
    return first.isoformat(), last.isoformat()


_HTML = """
<div class="summary-grid">
<div class="tile"><h3>The decision</h3>
<p>{{ statement }}</p>
<p class="muted">Owner: <strong data-key="summary-owner">{{ owner }}</strong>.
KPI: {{ kpi_text }}.</p></div>
<div class="tile"><h3>The policy</h3>
<p data-key="summary-policy">{{ policy_words }}.</p>
<p class="muted">Model: {{ candidate }} (run {{ run_id }}); policy fitted on validation, figures
below on the test period.</p></div>
<div class="tile"><h3>Readiness</h3>
{% if check is none %}<p>Not checked yet: run <code>valuechain check</code>.</p>
{% else %}<p data-key="summary-ready" data-value="{{ check.passed|lower }}">{{ badge(check.passed, 'ready', 'not ready') }}
{{ check.ok }} of {{ check.total }} checklist items pass{% if check.failed %}; failing: {{ check.failed|join(', ') }}{% endif %}
{{ " " }}(<code>valuechain check</code>).</p>{% endif %}</div>
</div>
{% if money %}
<div class="summary-money">
<h3>Money saved ({{ currency }}) against today's rule, test period {{ money.first }} to {{ money.last }} ({{ money.days }} days)</h3>
<div class="table-wrap"><table class="figures">
<thead><tr><th>saved</th><th>estimate</th><th>95 % interval</th></tr></thead>
<tbody>
<tr><th>over the test period</th><td data-key="summary-savings" data-value="{{ money.value }}">{{ money.value_t }}</td><td>{{ money.low_t }} to {{ money.high_t }}</td></tr>
<tr><th>per day</th><td data-key="summary-savings-per-day" data-value="{{ money.per_day }}">{{ money.per_day_t }}</td><td>{{ money.day_low_t }} to {{ money.day_high_t }}</td></tr>
<tr><th>per month (projected)</th><td data-key="summary-savings-per-month" data-value="{{ money.per_month }}">{{ money.per_month_t }}</td><td>{{ money.month_low_t }} to {{ money.month_high_t }}</td></tr>
<tr><th>per year (projected)</th><td data-key="summary-savings-per-year" data-value="{{ money.per_year }}">{{ money.per_year_t }}</td><td>{{ money.year_low_t }} to {{ money.year_high_t }}</td></tr>
</tbody></table></div>
<p class="caption">{{ currency }}, realised under the test labels: today's rule costs
<span data-key="summary-rule-cost" data-value="{{ money.rule_cost }}">{{ money.rule_cost_t }}</span>,
the policy <span data-key="summary-policy-cost" data-value="{{ money.policy_cost }}">{{ money.policy_cost_t }}</span>.
The interval resamples whole decision days (95 %). Projection: the per-day figure is the total
over the {{ money.blocks }} days with decisions; a month is 365.25 / 12 days and a year 365 days of
that rate, assuming the volume, fraud mix and costs of the test period hold.</p>
<p class="caption"><strong>Cost model</strong> (spec <code>value</code>): {% for name, text in costs %}{{ name }} costs <code>{{ text }}</code>{{ "; " if not loop.last else "." }}{% endfor %}
{{ " " }}{% if review %}Reviewers stop {{ review.catch }} of the positives they see; {{ review.friction }} of genuine customers held for review abandon.{% endif %}
{{ " " }}Today's rule: {% if rule_text %}<code>{{ rule_text }}</code> (its flagged rows go to review, first come first served, within the same capacity){% else %}none given{% endif %}.</p>
</div>
{% endif %}
<div class="summary-grid">
{% if kpi_error %}<div class="tile"><h3>The KPI on test</h3><p class="muted">Not available: the
KPI and the spilled cases are recomputed from the run's test predictions, which cannot be read
({{ kpi_error }}).</p></div>{% endif %}
{% if kpi %}<div class="tile"><h3>The KPI on test</h3>
<p>{{ kpi_text }}:
policy <strong data-key="summary-kpi-policy" data-value="{{ kpi.policy }}">{{ kpi.policy_t }}</strong>{% if kpi.rule is not none %},
today's rule <span data-key="summary-kpi-rule" data-value="{{ kpi.rule }}">{{ kpi.rule_t }}</span>{% endif %}.</p>
<p class="muted">Computed as 1,000 × the <code>false_negative</code> cost of approved positives / the <code>false_negative</code> cost of all approved decisions (the monitor's <code>loss_per_1000</code>), with decide's actions.</p></div>{% endif %}
{% if caught %}<div class="tile"><h3>Positives caught</h3>
<p><strong data-key="summary-caught" data-value="{{ caught.value }}">{{ caught.value_t }}</strong> of
<span data-key="summary-positives" data-value="{{ caught.positives }}">{{ caught.positives_t }}</span> positives not approved
({{ caught.share }}); today's rule: <span data-key="summary-caught-rule" data-value="{{ caught.rule }}">{{ caught.rule_t }}</span>.</p></div>{% endif %}
{% if load %}<div class="tile"><h3>Review load against capacity</h3>
<p>Limit {{ load.limit_t }} a {{ load.per }}: most <strong data-key="summary-load-max" data-value="{{ load.max }}">{{ load.max_t }}</strong>,
mean <span data-key="summary-load-mean" data-value="{{ load.mean }}">{{ load.mean_t }}</span> a {{ load.per }};
at the limit on <span data-key="summary-days-at-limit" data-value="{{ load.at_limit }}">{{ load.at_limit }}</span> of {{ load.periods }} {{ load.per }}s;
the bands asked for more on {{ load.asked_over }};
<span data-key="summary-spilled" data-value="{{ load.spilled }}">{{ load.spilled_t }}</span> cases spilled past the limit ({{ load.overflow }} instead).</p></div>{% endif %}
</div>
"""


def _check(workspace: Path) -> dict[str, Any] | None:
    raw = read_json(workspace / "check.json")
    if raw is None:
        return None
    record = Record(raw, "check.json", "valuechain check")
    items = record.subs("checklist")
    failed = [str(item.get("title") or item.get("item")) for item in items if not item["passed"]]
    return {"passed": bool(record["passed"]), "ok": len(items) - len(failed),
            "total": len(items), "failed": failed}


def _pct(value: float) -> str:
    return f"{100 * value:.0f} %"


@register_section(order=5, id="summary", title="Summary")
def summary_section(loaded: LoadedSpec, workspace: Path) -> Section:
    """The first screen (see the module docstring)."""
    spec = loaded.spec
    check = _check(workspace)
    decide_raw = read_json(workspace / "decide.json")
    context: dict[str, Any] = {
        "statement": spec.decision.statement, "owner": spec.decision.owner,
        "kpi_text": spec.decision.kpi or "no KPI named in the spec", "check": check,
        "money": None, "kpi": None, "caught": None, "load": None, "costs": [],
        "review": None, "rule_text": None, "currency": "",
        "policy_words": "not decided yet: run valuechain decide", "candidate": "–",
        "run_id": "–", "kpi_error": ""}
    if decide_raw is None:
        section = Section("summary", "Summary", fragment(_HTML, **context),
                          "ok" if check and check["passed"] else "warn")
        return section if check is not None else unavailable(
            "summary", "Summary", "valuechain decide",
            "The summary shows the policy and its value once the decision stage has run.")
    from valuechain.errors import DataError
    try:
        decided = DecideResult.load(workspace, root=loaded.root)
    except DataError as err:  # the Decision policy section fails and names the file
        return Section("summary", "Summary", fragment(
            '<div class="hint error">The decision stage\'s output cannot be read, so the '
            "summary cannot show the policy and its value: {{ err }}</div>", err=str(err)),
            "warn")
    value = spec.value
    limit = decided.test.capacity.limit
    cap = next(iter(value.capacity.items()), None) if value and value.capacity else None
    per = "day"
    overflow = cap[1].overflow if cap else None
    if cap is not None:
        from valuechain.spec.durations import format_duration
        text = format_duration(cap[1].per)
        per = "day" if text == "1d" else ("week" if text == "7d" else text)
    context.update(policy_words=policy_in_words(run_policy(workspace, decided), limit=limit,
                                                per=per,
                                                overflow=overflow),
                   candidate=decided.candidate, run_id=decided.run_id)
    if value is not None:
        context["currency"] = value.currency
        context["costs"] = [(_COST_WORDS.get(k, k), str(v))
                            for k, v in value.costs.items()]
        context["review"] = {"catch": _pct(value.review.catch_rate),
                             "friction": _pct(value.review.friction)}
        context["rule_text"] = value.baseline_policy
    first, last = _period_of(workspace, decided)
    days = decided.test.capacity.periods
    saved = (decided.test.savings or {}).get("rules")
    rule = decided.baselines.get("rules")
    if saved is not None and rule is not None:
        low = saved.low if saved.low is not None else math.nan
        high = saved.high if saved.high is not None else math.nan
        # The days the per-day figure divides by (days with decisions), as decide counts.
        n_days = round(saved.value / saved.per_day) if saved.per_day else max(days, 1)
        span = ((datetime.fromisoformat(last) - datetime.fromisoformat(first)).days + 1
                if first and last else n_days)
        money: dict[str, Any] = {
            "first": first, "last": last, "days": span, "blocks": n_days, "value": saved.value,
            "per_day": saved.per_day, "per_month": saved.per_day * DAYS_PER_MONTH,
            "per_year": saved.per_day * DAYS_PER_YEAR, "rule_cost": rule.expected_cost,
            "policy_cost": decided.test.expected_cost}
        scale = {"": 1.0, "day_": 1 / n_days, "month_": DAYS_PER_MONTH / n_days,
                 "year_": DAYS_PER_YEAR / n_days}
        for prefix, factor in scale.items():
            money[f"{prefix}low_t"] = _money(low * factor)
            money[f"{prefix}high_t"] = _money(high * factor)
        for key in ("value", "per_day", "per_month", "per_year", "rule_cost", "policy_cost"):
            money[f"{key}_t"] = _money(money[key])
        context["money"] = money
    figures, kpi_error = None, ""
    try:
        figures = recompute_kpis(loaded, decided)
    except DataError as err:  # the run or its predictions are gone: no KPI, say why
        kpi_error = str(err)
    context["kpi_error"] = kpi_error
    if figures is not None:
        if not math.isclose(figures.policy_cost, decided.test.expected_cost, rel_tol=1e-6,
                            abs_tol=0.01):
            from valuechain.errors import DataError
            raise DataError(
                f"decide.json: the test cost ({decided.test.expected_cost:,.2f}) differs from "
                f"the cost of its policy on run {decided.run_id}'s test predictions "
                f"({figures.policy_cost:,.2f}). Run `valuechain decide` to price it again.")
        context["kpi"] = {"policy": figures.policy_kpi, "policy_t": f"{figures.policy_kpi:,.2f}",
                          "rule": figures.rule_kpi,
                          "rule_t": f"{figures.rule_kpi:,.2f}"
                          if figures.rule_kpi is not None else "–"}
    test = decided.test
    context["caught"] = {
        "value": test.caught_positives, "value_t": fmt_int(test.caught_positives),
        "positives": test.positives, "positives_t": fmt_int(test.positives),
        "share": _pct(test.caught_positives / test.positives) if test.positives else "–",
        "rule": rule.caught_positives if rule else None,
        "rule_t": fmt_int(rule.caught_positives) if rule else "–"}
    if limit is not None:
        used = test.capacity.used_per_period
        asked = test.capacity.requested_over_limit or 0
        context["load"] = {
            "limit_t": fmt_int(limit), "per": per, "max": test.capacity.max_used,
            "max_t": fmt_int(test.capacity.max_used), "mean": test.capacity.mean_used,
            "mean_t": fmt_num(test.capacity.mean_used, 1),
            "at_limit": sum(u >= limit for u in used), "periods": len(used),
            "asked_over": f"{asked} {per}{'s' if asked != 1 else ''}",
            "spilled": figures.spilled if figures else 0,
            "spilled_t": fmt_int(figures.spilled if figures else 0),
            "overflow": overflow or "overflow"}
    status: Status = "ok" if check is not None and check["passed"] else "warn"
    return Section("summary", "Summary", fragment(_HTML, **context), status)
