"""Report section "Monitoring": what ``valuechain monitor`` last found, as time plots.

Reads ``<workspace>/monitor/monitor.json`` and ``signals.parquet`` (written by
``valuechain monitor``, see :mod:`valuechain.monitor.run`) and draws, with the offline SVG
charts of :mod:`valuechain.report.svg`: drift of the most drifted features (and of the score)
per window with the alert threshold, the action mix, the review queue against its capacity
limit, the main KPIs realised vs estimated (with the estimate's interval; cohorts whose labels are
not mature are marked *pending*, never drawn as zero), then the alerts with their owners and
the retrain recommendation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import pandas as pd
from markupsafe import Markup

from valuechain.artifacts import open_artifact
from valuechain.report.record import Record
from valuechain.report.section import (
    Section,
    Status,
    fragment,
    read_json,
    register_section,
    unavailable,
)
from valuechain.report.svg import COLORS, PALETTE, Line, period_chart
from valuechain.spec.loader import LoadedSpec

__all__ = ["monitor_section"]

TITLE = "Monitoring"
COMMAND = "valuechain monitor"
#: Ops metrics drawn as the action mix (share of decisions per action).
ACTION_MIX = ("approve_rate", "review_rate", "decline_rate", "action_share", "action_rate")
TOP_FEATURES = 5
#: KPI charts in this order (others present follow, by name).
KPI_ORDER = ("loss_per_1000", "precision", "recall", "cost", "positive_rate",
             "false_decline_rate")
#: KPI charts drawn at most (the first of KPI_ORDER present; every value is in the JSON).
MAX_KPI_CHARTS = 4
#: Signals of the kpi and estimate sections that are not KPIs themselves.
NOT_KPIS = frozenset({"estimate_error", "covered", "mature_share", "expected_cost"})

_BODY = """
<p data-key="monitor-summary">Bundle <code>{{ r.text('bundle_version') }}</code>,
{{ r.integer('decisions')|thousands }} decisions in {{ r.integer('windows') }} windows of
{{ r.text('window') }}{% if r.get('first_window') %} ({{ r['first_window'][:10] }} ..
{{ r['last_window'][:10] }}){% endif %}, as of {{ r.text('as_of')[:16]|replace('T', ' ') }} UTC.
Status: {{ badge(r.text('status') == 'ok', 'no active alert', r.text('status') ~ ': ' ~
r.integer('active_alerts') ~ ' active alert(s)') }}
{% if stale %}<br><span class="muted">Made from another version of the spec
(<code>{{ r.text('spec_hash') }}</code>); run <code>valuechain monitor</code> again.</span>
{% endif %}</p>
<div class="retrain" data-key="monitor-retrain">
{% if retrain.recommend %}<strong>Retraining recommended</strong>
(<code>valuechain retrain</code>):<ul>{% for reason in retrain.reasons %}<li>{{ reason }}</li>
{% endfor %}</ul>{% else %}Retraining not needed: no sustained drift on important features, no
matured KPI out of bounds, estimates within their intervals.{% endif %}</div>
{% for title, chart, note in charts %}<h3>{{ title }}</h3>
{% if note %}<p class="muted small">{{ note }}</p>{% endif %}{{ chart }}
{% endfor %}
<h3>Alerts</h3>
{% if alerts %}<div class="scroll"><table class="data" data-key="monitor-alerts">
<thead><tr><th>Severity</th><th>Rule</th><th>Subject</th><th>Windows</th><th>Latest</th>
<th>Threshold</th><th>Owner</th><th>State</th><th>What</th></tr></thead><tbody>
{% for a in alerts %}<tr><td>{{ badge(a.severity == 'info', a.severity, a.severity) }}</td>
<td>{{ a.rule }}</td><td>{{ a.subject or '–' }}</td>
<td>{{ a.first_window[:10] }} + {{ a.windows }}</td><td>{{ a.value|num }}</td>
<td>{{ a.direction }} {{ a.threshold|num }}</td><td>{{ a.owner }}</td>
<td>{{ 'active' if a.active else 'ended ' ~ a.last_window[:10] }}</td>
<td class="small">{{ a.message }}</td></tr>
{% endfor %}</tbody></table></div>
{% else %}<p data-key="monitor-alerts">No alert fired.</p>{% endif %}
{% if notes %}<ul class="muted small">{% for note in notes %}<li>{{ note }}</li>{% endfor %}
</ul>{% endif %}
"""


def _day(value: Any) -> date:
    return pd.Timestamp(value).date()


def _series(rows: pd.DataFrame, windows: Sequence[pd.Timestamp], column: str = "value",
            keep: pd.Series | None = None) -> list[float | None]:
    """Values of ``rows`` aligned with ``windows`` (``None`` where absent or not kept)."""
    if keep is not None:
        rows = rows[keep]
    by = {pd.Timestamp(w): float(v) for w, v in zip(rows["window"], rows[column], strict=True)}
    out: list[float | None] = []
    for w in windows:
        v = by.get(w)
        out.append(v if v is not None and math.isfinite(v) else None)
    return out


def _drift_chart(signals: pd.DataFrame, ranking: list[dict[str, Any]], threshold: float | None,
                 windows: list[pd.Timestamp]) -> Markup | None:
    drift = signals[(signals["section"] == "drift") & (signals["status"] != "reference")]
    if drift.empty:
        return None
    metric = "psi" if (drift["metric"] == "psi").any() else str(drift["metric"].iloc[0])
    per_feature = drift[drift["metric"] == metric]
    ranked = [str(r.get("feature") or r.get("subject") or "") for r in ranking]
    ranked = [f for f in ranked if f in set(per_feature["subject"])]
    if not ranked:
        ranked = list(per_feature.groupby("subject")["value"].max()
                      .sort_values(ascending=False).index.astype(str))
    lines = [Line(f, [], _series(per_feature[per_feature["subject"] == f], windows),
                  PALETTE[i % len(PALETTE)]) for i, f in enumerate(ranked[:TOP_FEATURES])]
    score = drift[drift["metric"] == "score_psi"]
    if not score.empty:
        lines.append(Line("score", [], _series(score, windows), COLORS["ink"], dashed=True))
    if threshold is not None:
        lines.append(Line(f"alert threshold {threshold:g}", [], [threshold] * len(windows),
                          COLORS["warn"], dashed=True))
    if not lines:
        return None
    return period_chart([_day(w) for w in windows], lines,
                        f"{metric.upper()} per window, most drifted features", metric.upper())


def _mix_chart(signals: pd.DataFrame, windows: list[pd.Timestamp]) -> Markup | None:
    ops = signals[(signals["section"] == "ops") & signals["metric"].isin(ACTION_MIX)]
    if ops.empty:
        return None
    lines = []
    for i, ((metric, subject), rows) in enumerate(ops.groupby(["metric", "subject"],
                                                              sort=True)):
        label = str(subject) if subject and metric in ("action_share", "action_rate") \
            else str(metric).removesuffix("_rate") + (f" {subject}" if subject else "")
        lines.append(Line(label, [], _series(rows, windows), PALETTE[i % len(PALETTE)]))
    return period_chart([_day(w) for w in windows], lines, "Action mix per window",
                        "share of decisions", (0.0, 1.0) if len(lines) > 1 else None)


def _queue_chart(signals: pd.DataFrame, windows: list[pd.Timestamp],
                 capacity: dict[str, Any] | None) -> Markup | None:
    fill = signals[(signals["section"] == "ops") & (signals["metric"] == "queue_fill")]
    if fill.empty:
        return None
    values = _series(fill, windows)
    top = max([v for v in values if v is not None] + [1.0]) * 1.1
    limit = "capacity limit" + (f" ({capacity['limit']:,} per {capacity['per']})"
                                if capacity else "")
    lines = [Line("queue / capacity", [], values, COLORS["primary"]),
             Line(limit, [], [1.0] * len(windows), COLORS["positive"], dashed=True)]
    overflow = signals[(signals["section"] == "ops") & (signals["metric"] == "overflow_share")]
    if not overflow.empty:
        lines.append(Line("overflow share", [], _series(overflow, windows), COLORS["warn"]))
    return period_chart([_day(w) for w in windows], lines, "Review queue vs capacity",
                        "share of capacity", (0.0, top))


def _kpi_charts(signals: pd.DataFrame, windows: list[pd.Timestamp]
                ) -> list[tuple[str, Markup, str]]:
    kpi = signals[(signals["section"] == "kpi") & (signals["status"] != "reference")]
    est = signals[signals["section"] == "estimate"]
    out = []
    present = (set(kpi["metric"]) | set(est["metric"])) - NOT_KPIS
    for metric in [m for m in KPI_ORDER if m in present][:MAX_KPI_CHARTS]:
        realised = kpi[(kpi["metric"] == metric) & (kpi["subject"] == "")] \
            if (kpi["subject"] == "").any() else kpi[kpi["metric"] == metric]
        estimate = est[(est["metric"] == metric)]
        if realised["subject"].nunique() > 1 or estimate["subject"].nunique() > 1:
            first = sorted(set(realised["subject"]) | set(estimate["subject"]))[0]
            realised = realised[realised["subject"] == first]
            estimate = estimate[estimate["subject"] == first]
        lines = []
        if not estimate.empty:
            lines += [Line("estimated", [], _series(estimate, windows), COLORS["primary"]),
                      Line("interval", [], _series(estimate, windows, "lower"),
                           COLORS["secondary"], dashed=True),
                      Line("interval (upper)", [], _series(estimate, windows, "upper"),
                           COLORS["secondary"], dashed=True)]
        if not realised.empty:
            ok = realised["status"] == "ok"
            lines.append(Line("realised (matured)", [], _series(realised, windows, keep=ok),
                              COLORS["positive"], markers=True))
            pending = realised[realised["status"] == "pending"]
            if not pending.empty:
                at = estimate if not estimate.empty else realised
                ys = [v if w in set(pd.to_datetime(pending["window"])) else None
                      for w, v in zip(windows, _series(at, windows), strict=True)]
                if not any(y is not None for y in ys):
                    ys = [0.0 if w in set(pd.to_datetime(pending["window"])) else None
                          for w in windows]
                lines.append(Line("pending (labels not mature)", [], ys, COLORS["neutral"],
                                  joined=False, hollow=True))
        if not lines:
            continue
        pend = int((realised["status"] == "pending").sum()) if not realised.empty else 0
        note = (f"{pend} cohort(s) pending: their labels are not mature, shown as hollow "
                "markers on the estimate, never as zero." if pend else "")
        out.append((f"{metric}: realised vs estimated",
                    period_chart([_day(w) for w in windows], lines,
                                 f"{metric} per cohort", metric), note))
    return out


@register_section(order=90, id="monitor", title=TITLE)
def monitor_section(loaded: LoadedSpec, workspace: Path) -> Section | None:
    """The last monitoring pass: time plots, alerts with owners, the retrain advice.

    ``None`` (no card) until something is packaged or served: nothing to monitor yet.
    """
    folder = workspace / "monitor"
    raw = read_json(folder / "monitor.json", rebuild=f"{COMMAND} --spec {loaded.root}")
    if raw is None:
        if not (workspace / "registry").exists() and not (workspace / "serve").exists():
            return None  # nothing packaged nor served yet: there is nothing to monitor
        return unavailable("monitor", TITLE, COMMAND,
                           "No monitoring pass yet: it needs a decision log "
                           "(valuechain serve or valuechain score).")
    r = Record(raw, "monitor/monitor.json", COMMAND)
    alerts = [Record(a, r.file, COMMAND) for a in r.sequence("alerts")]
    retrain = r.sub("retrain")
    signals = open_artifact(folder / "signals.parquet", "parquet",
                            rebuild=f"{COMMAND} --spec {loaded.root}")
    signals = signals.assign(window=pd.to_datetime(signals["window"], utc=True),
                             subject=signals["subject"].fillna("").astype(str),
                             status=signals["status"].astype(str),
                             metric=signals["metric"].astype(str),
                             section=signals["section"].astype(str))
    windows = sorted(pd.Timestamp(w) for w in signals.loc[
        signals["status"] != "reference", "window"].dropna().unique())
    threshold = next((a.number("threshold") for a in alerts if a.text("rule") ==
                      "feature_drift"), None)
    if threshold is None and loaded.spec.monitoring is not None:
        rule = next((x for x in loaded.spec.monitoring.rules if x.metric == "psi"
                     and not x.relative), None)
        threshold = rule.threshold if rule is not None else None
    charts: list[tuple[str, Markup, str]] = []
    if windows:
        capacity = r.get("capacity")
        for title, chart, note in (
            ("Drift", _drift_chart(signals, r.sequence("drift_ranking"), threshold, windows),
             "Population stability of the most drifted features (ranked by drift weighted by "
             "model importance) and of the score, against the bundle's reference period."),
            ("Action mix", _mix_chart(signals, windows), ""),
            ("Review queue vs capacity", _queue_chart(signals, windows, capacity),
             "1.0 is the capacity limit; cases beyond it take the overflow action."),
        ):
            if chart is not None:
                charts.append((title, chart, note))
        charts.extend(_kpi_charts(signals, windows))
    active = r.integer("active_alerts")
    status: Status = "fail" if r.integer("critical_alerts") else ("warn" if active else "ok")
    html = fragment(_BODY, r=r, retrain={"recommend": bool(retrain["recommend"]),
                                         "reasons": retrain.sequence("reasons")},
                    charts=charts, alerts=[a.data for a in alerts],
                    notes=r.sequence("notes"), stale=r.text("spec_hash") != loaded.hash)
    return Section("monitor", TITLE, html, status)
