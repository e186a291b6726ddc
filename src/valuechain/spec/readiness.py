"""The readiness checklist from the lesson, evaluated on a spec.

Five questions decide whether a model will create value: task → decision fit, training /
inference parity, evaluation realism, operational ownership, monitoring discipline. Each is
answered pass/fail with the reason, from the spec alone (data checks live in
:mod:`valuechain.data.validate`).
"""

from __future__ import annotations

from dataclasses import dataclass

from valuechain.spec.durations import format_duration as fmt
from valuechain.spec.models import (
    AggregateFeature,
    LookupFeature,
    SchedulePoints,
    Spec,
    alert_owner_problems,
)

__all__ = ["ChecklistItem", "readiness"]


@dataclass(frozen=True)
class ChecklistItem:
    item: str
    title: str
    passed: bool
    reason: str


def _decision_fit(spec: Spec) -> ChecklistItem:
    d = spec.decision
    gaps = []
    if len(d.actions) < 2:
        gaps.append("name at least two actions (what happens on each side of the rule)")
    if not d.kpi:
        gaps.append("state the KPI the decision should move (`decision.kpi`)")
    ok = not gaps
    reason = (
        f"'{d.statement}' is taken {d.moment} by {d.owner} with actions {d.actions}; "
        f"label '{spec.label.name}' within {fmt(spec.label.horizon)}; KPI: {d.kpi}."
        if ok else "; ".join(gaps) + "."
    )
    return ChecklistItem("task_to_decision_fit", "Task → decision fit", ok, reason)


def _parity(spec: Spec) -> ChecklistItem:
    gaps, static = [], []
    own = spec.event_source
    for f in spec.features:
        if isinstance(f, AggregateFeature):
            src = spec.sources.get(f.source or own or "")
            if src is not None and not (src.event_time or src.available_at):
                gaps.append(f"'{f.name}' aggregates a source with no event time or available_at")
        elif isinstance(f, LookupFeature):
            src = spec.sources.get(f.lookup.source)
            if src is not None and not (src.valid_from or src.available_at):
                static.append(f"'{f.name}'")
    budget = spec.decision.latency_budget_ms
    points = spec.decision_points
    if budget is None and not isinstance(points, SchedulePoints):
        gaps.append("no latency budget: state how fast a decision must be served")
    ok = not gaps
    if budget is not None:
        serving = f"latency budget {budget:g} ms"
    elif isinstance(points, SchedulePoints):  # a batch decision: a list, not one case online
        serving = ("a batch decision on a schedule, every "
                   f"{fmt(points.schedule.every)}: no millisecond latency budget needed")
    else:
        serving = "no latency budget"
    reason = (
        f"all {len(spec.features)} features use only data known at decision time, defined once "
        f"for training and serving ({serving})."
        if ok else "; ".join(gaps) + "."
    )
    if static:
        reason += (f" Static lookups {', '.join(static)} assume their dimension never changes; "
                   "`valuechain audit` checks that.")
    return ChecklistItem("training_inference_parity", "Training vs. inference parity", ok, reason)


def _evaluation(spec: Spec) -> ChecklistItem:
    gaps = []
    split = spec.split
    if split is None or len(split.periods) < 2:
        gaps.append("declare time-ordered `split.periods` (train, then validation/test)")
    else:
        embargo = split.embargo if split.embargo is not None else spec.label.horizon
        if embargo < spec.label.horizon:
            gaps.append(f"embargo {fmt(embargo)} is shorter than the label horizon "
                        f"{fmt(spec.label.horizon)}: training labels overlap the next period")
        for a, b in zip(split.periods, split.periods[1:], strict=False):
            if a.start >= a.end:
                gaps.append(f"period '{a.name}' ends before it starts")
            if b.start < a.end + embargo:
                gaps.append(f"period '{b.name}' starts {b.start:%Y-%m-%d}, before '{a.name}' "
                            f"ends plus the embargo ({(a.end + embargo):%Y-%m-%d})")
    if spec.value is None or not spec.value.costs:
        gaps.append("price the errors in `value.costs` so evaluation matches business cost")
    ok = not gaps
    reason = (
        f"{len(split.periods)} consecutive periods with an embargo; costs "
        f"{sorted(spec.value.costs)}; capacity {sorted(spec.value.capacity) or 'none'}."
        if ok and split and spec.value else "; ".join(gaps) + "."
    )
    return ChecklistItem("evaluation_realism", "Evaluation realism", ok, reason)


def _ownership(spec: Spec) -> ChecklistItem:
    owners = spec.owners.model_dump()
    missing = [role for role, who in owners.items() if not who]
    alerts = [message for _, _, message in alert_owner_problems(spec)]
    ok = not missing and not alerts
    reason = ("every link has an owner: " + ", ".join(f"{r}: {w}" for r, w in owners.items())
              + "." if ok else "; ".join(
                  ([f"no owner for {', '.join(missing)} (set `owners.<role>`)"] if missing
                   else []) + alerts) + ".")
    return ChecklistItem("operational_ownership", "Operational ownership", ok, reason)


def _monitoring(spec: Spec) -> ChecklistItem:
    m = spec.monitoring
    if m is None:
        return ChecklistItem("monitoring_discipline", "Monitoring discipline", False,
                             "no `monitoring` block: declare cadence, drift metric and KPIs.")
    if not m.kpis:
        return ChecklistItem("monitoring_discipline", "Monitoring discipline", False,
                             "`monitoring.kpis` is empty: name the business KPIs to watch.")
    return ChecklistItem(
        "monitoring_discipline", "Monitoring discipline", True,
        f"every {fmt(m.cadence)}: {m.drift_metric} drift (alert above {m.drift_threshold}), "
        f"KPIs {m.kpis}; matured labels arrive after {fmt(spec.label.horizon)}.",
    )


def readiness(spec: Spec) -> list[ChecklistItem]:
    """The five checklist items, in the lesson's order."""
    return [_decision_fit(spec), _parity(spec), _evaluation(spec), _ownership(spec),
            _monitoring(spec)]
