"""Alert rules over the monitor's signals, without alert fatigue; the retrain recommendation.

Every monitor component returns a *signals* table (one row per window × section × metric ×
subject, see :data:`SIGNAL_COLUMNS`). :func:`evaluate_alerts` runs the spec's rules
(:class:`~valuechain.spec.models.AlertRule`) over it:

- **Effect size, not p-values.** A rule compares the value itself (PSI, a rate, a cost)
  with its threshold, so a huge sample with a negligible shift does not fire.
- **Minimum samples.** A window whose ``n`` is below the rule's ``min_samples``, or that
  its producer marked ``insufficient``, is *not evaluated*; so is a ``pending`` window
  (labels not mature: never read as zero). A window that is not evaluated neither counts
  towards a streak nor breaks it: the streak runs over the *evaluated* windows of a series.
  Daily drift over a quiet weekend therefore neither fires on 40 decisions nor forgets the
  Friday breach.
- **Consecutive windows.** A rule fires when ``windows`` evaluated windows in a row breach.
- **De-duplication.** One :class:`Alert` per rule × series × streak, with its first window
  and its length: a feature that drifts for 20 days is one alert of 20 windows, not 20
  alerts. A streak still running at the last evaluated window is ``active``.

>>> import pandas as pd
>>> from valuechain.spec.models import AlertRule
>>> days = pd.date_range("2025-08-04", periods=4, freq="D", tz="UTC")
>>> signals = pd.DataFrame({"window": days, "section": "drift", "metric": "psi",
...     "subject": "amount", "value": [0.05, 0.3, 0.4, 0.35], "lower": float("nan"),
...     "upper": float("nan"), "n": 1000, "status": "ok"})
>>> rule = AlertRule(name="drift", metric="psi", above=0.2, windows=2)
>>> [(a.subject, str(a.first_window.date()), a.windows, a.active)
...  for a in evaluate_alerts(signals, [rule])]
[('amount', '2025-08-05', 3, True)]
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from valuechain.errors import DataError
from valuechain.spec.models import SEVERITIES, AlertRule, Owners

__all__ = [
    "DRIFT_METRICS",
    "SIGNAL_COLUMNS",
    "Alert",
    "RetrainAdvice",
    "check_signals",
    "empty_signals",
    "evaluate_alerts",
    "resolve_owner",
    "retrain_advice",
    "rule_notes",
]

#: The columns of a signals table, in order.
SIGNAL_COLUMNS = ("window", "section", "metric", "subject", "value", "lower", "upper", "n",
                  "status")
#: Per-feature drift metrics (a feature is the subject).
DRIFT_METRICS = ("psi", "ks", "js", "wasserstein")
#: Statuses under which a window is evaluated; other statuses are skipped.
EVALUATED = "ok"
#: The status of rows holding the reference period's value of a metric.
REFERENCE = "reference"


def empty_signals() -> pd.DataFrame:
    """A signals table with no rows and the right column types."""
    return pd.DataFrame({
        "window": pd.Series([], dtype="datetime64[us, UTC]"),
        "section": pd.Series([], dtype=object), "metric": pd.Series([], dtype=object),
        "subject": pd.Series([], dtype=object), "value": pd.Series([], dtype="float64"),
        "lower": pd.Series([], dtype="float64"), "upper": pd.Series([], dtype="float64"),
        "n": pd.Series([], dtype="int64"), "status": pd.Series([], dtype=object)})


def check_signals(signals: pd.DataFrame, what: str = "signals") -> None:
    """Raise :class:`~valuechain.errors.DataError` if ``signals`` lacks a signals column."""
    missing = [c for c in SIGNAL_COLUMNS if c not in signals.columns]
    if missing:
        raise DataError(
            f"{what}: columns {missing} are missing; a signals table has "
            f"{list(SIGNAL_COLUMNS)} (docs/monitoring.md). Build it with the monitor's "
            "components (drift_signals, ops_signals, kpi_signals, estimate_signals).")


@dataclass(frozen=True)
class Alert:
    """One firing streak of one rule on one series (section × subject).

    Attributes
    ----------
    rule, metric, subject, section : str
        The rule's name, the metric, the feature or action (``""`` for none), the section.
    severity : str
        ``info``, ``warning`` or ``critical``.
    owner : str
        Who acts (the ``owners`` entry the rule names, or the name written).
    first_window, last_window : datetime
        Start of the first and of the last window of the streak.
    windows : int
        Evaluated windows in the streak (at least the rule's ``windows``).
    value : float
        The value in the streak's last window; ``peak`` the worst one.
    threshold : float
        The absolute threshold compared with (a relative rule's is computed from the
        reference value, ``reference``).
    active : bool
        The streak runs up to the series' last evaluated window (still firing).
    channel : str or None
        Where to send it.
    message : str
        One sentence for people.
    """

    rule: str
    metric: str
    subject: str
    severity: str
    owner: str
    first_window: datetime
    windows: int
    value: float
    threshold: float
    message: str
    section: str = ""
    last_window: datetime | None = None
    peak: float = math.nan
    active: bool = True
    channel: str | None = None
    reference: float | None = None
    direction: str = "above"

    def to_json(self) -> dict[str, Any]:
        """JSON-ready mapping (times ISO-8601 UTC; non-finite numbers as ``null``)."""
        return {"rule": self.rule, "section": self.section, "metric": self.metric,
                "subject": self.subject, "severity": self.severity, "owner": self.owner,
                "channel": self.channel, "active": self.active,
                "first_window": _iso(self.first_window), "last_window": _iso(self.last_window),
                "windows": self.windows, "direction": self.direction,
                "value": _num(self.value), "peak": _num(self.peak),
                "threshold": _num(self.threshold), "reference": _num(self.reference),
                "message": self.message}


def _iso(value: datetime | None) -> str | None:
    if value is None or pd.isna(value):
        return None
    return pd.Timestamp(value).isoformat()


def _num(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def resolve_owner(owner: str | None, owners: Owners | None, default: str) -> str:
    """The person or team behind a rule's ``owner``.

    >>> resolve_owner("data_science", Owners(data_science="Fraud DS"), "Risk team")
    'Fraud DS (data_science)'
    >>> resolve_owner("Jane", None, "Risk team"), resolve_owner(None, None, "Risk team")
    ('Jane', 'Risk team')
    """
    if owner is None:
        return default
    if owners is not None and owner in type(owners).model_fields:
        named = getattr(owners, owner)
        return f"{named} ({owner})" if named else owner
    return owner


class _Row(NamedTuple):
    window: pd.Timestamp
    value: float
    lower: float
    upper: float
    n: int
    status: str


def _rows(frame: pd.DataFrame) -> list[_Row]:
    return [_Row(pd.Timestamp(w), float(v), float(lo), float(hi), int(n), str(s))
            for w, v, lo, hi, n, s in zip(frame["window"], frame["value"], frame["lower"],
                                          frame["upper"], frame["n"], frame["status"],
                                          strict=True)]


def _references(signals: pd.DataFrame) -> dict[tuple[str, str], float]:
    rows = signals[signals["status"] == REFERENCE]
    values = rows["value"].to_numpy(dtype=np.float64)
    return {(str(m), str(s)): float(v) for m, s, v in zip(rows["metric"], rows["subject"],
                                                          values, strict=True)
            if math.isfinite(v)}


def _series(signals: pd.DataFrame, rule: AlertRule) -> Iterable[tuple[tuple[str, str],
                                                                      pd.DataFrame]]:
    rows = signals[signals["metric"] == rule.metric]
    if rule.section is not None:
        rows = rows[rows["section"] == rule.section]
    if rule.subject != "*":
        rows = rows[rows["subject"] == rule.subject]
    rows = rows[rows["status"] != REFERENCE]
    for (section, subject), group in rows.groupby(["section", "subject"], sort=True):
        yield (str(section), str(subject)), group.sort_values("window", kind="stable")


def _threshold(rule: AlertRule, reference: float | None) -> float | None:
    if not rule.relative:
        return rule.threshold
    if reference is None:
        return None
    margin = rule.threshold
    return reference * (1 + margin) if rule.direction == "above" else reference * (1 - margin)


def _breach(rule: AlertRule, value: float, lower: float, upper: float, threshold: float) -> bool:
    if rule.direction == "above":
        seen = lower if rule.confident and math.isfinite(lower) else value
        return seen > threshold
    seen = upper if rule.confident and math.isfinite(upper) else value
    return seen < threshold


def _message(rule: AlertRule, subject: str, section: str, streak: list[_Row], threshold: float,
             reference: float | None) -> str:
    what = rule.metric + (f" of {subject}" if subject else "") + (
        f" ({section})" if section else "")
    than = f"{threshold:.4g}" + (
        f" (the reference's {reference:.4g} {'+' if rule.direction == 'above' else '-'}"
        f"{rule.threshold:.0%})" if reference is not None else "")
    first, last = streak[0], streak[-1]
    days = f"{first.window:%Y-%m-%d}" + (
        f" to {last.window:%Y-%m-%d}" if len(streak) > 1 else "")
    return (f"{what} {rule.direction} {than} in {len(streak)} consecutive window"
            f"{'s' if len(streak) > 1 else ''} ({days}); latest {last.value:.4g} "
            f"on {last.n:,} samples.")


def evaluate_alerts(
    signals: pd.DataFrame,
    rules: Sequence[AlertRule],
    *,
    owners: Owners | None = None,
    default_owner: str = "",
    channel: str | None = None,
    references: Mapping[tuple[str, str], float] | None = None,
) -> list[Alert]:
    """The alerts ``rules`` raise on ``signals``: one per rule × series × firing streak.

    Parameters
    ----------
    signals : DataFrame
        A signals table (:data:`SIGNAL_COLUMNS`). Rows with status ``reference`` hold the
        reference period's value of a metric (``window`` ignored) for relative rules.
    rules : sequence of AlertRule
        The rules (``spec.monitoring.rules``).
    owners, default_owner
        Resolve each rule's ``owner`` (:func:`resolve_owner`); rules without one go to
        ``default_owner`` (the decision's owner).
    channel
        Where alerts go when the rule names no channel (``monitoring.alert_channel``).
    references
        ``(metric, subject) -> value`` of the reference period, overriding the signals'
        ``reference`` rows (``subject`` ``""`` applies to every subject).

    Returns
    -------
    list of Alert
        Active alerts first, then by severity (critical first), rule and subject.

    Raises
    ------
    DataError
        When ``signals`` lacks a column.

    Examples
    --------
    A window below ``min_samples`` is skipped: it neither breaks nor extends the streak.

    >>> import pandas as pd
    >>> days = pd.date_range("2025-08-04", periods=4, freq="D", tz="UTC")
    >>> signals = pd.DataFrame({"window": days, "section": "ops", "metric": "queue_fill",
    ...     "subject": "review", "value": [1.0, 1.0, 0.2, 1.0], "lower": float("nan"),
    ...     "upper": float("nan"), "n": [900, 800, 30, 900], "status": "ok"})
    >>> rule = AlertRule(name="full", metric="queue_fill", above=0.99, windows=3,
    ...                  min_samples=100)
    >>> [a.windows for a in evaluate_alerts(signals, [rule])]
    [3]
    """
    check_signals(signals)
    refs = _references(signals)
    refs.update(references or {})
    alerts: list[Alert] = []
    for rule in rules:
        for (section, subject), rows in _series(signals, rule):
            reference = refs.get((rule.metric, subject), refs.get((rule.metric, "")))
            threshold = _threshold(rule, reference)
            if threshold is None:
                continue  # a relative rule without a reference value: see rule_notes
            evaluated = [r for r in _rows(rows) if r.status == EVALUATED
                         and r.n >= rule.min_samples and math.isfinite(r.value)]
            streaks: list[tuple[list[_Row], bool]] = []
            streak: list[_Row] = []
            for r in evaluated:
                if _breach(rule, r.value, r.lower, r.upper, threshold):
                    streak.append(r)
                    continue
                if len(streak) >= rule.windows:
                    streaks.append((streak, False))
                streak = []
            if len(streak) >= rule.windows:
                streaks.append((streak, True))
            for run, active in streaks:
                values = [r.value for r in run]
                peak = max(values) if rule.direction == "above" else min(values)
                alerts.append(Alert(
                    rule=rule.name, metric=rule.metric, subject=subject,
                    severity=rule.severity,
                    owner=resolve_owner(rule.owner, owners, default_owner),
                    first_window=run[0].window.to_pydatetime(),
                    windows=len(run), value=values[-1], threshold=threshold,
                    message=_message(rule, subject, section, run, threshold,
                                     reference if rule.relative else None),
                    section=section,
                    last_window=run[-1].window.to_pydatetime(), peak=peak,
                    active=active, channel=rule.channel or channel,
                    reference=reference if rule.relative else None,
                    direction=rule.direction))
    rank = {s: i for i, s in enumerate(reversed(SEVERITIES))}
    alerts.sort(key=lambda a: (not a.active, rank.get(a.severity, len(rank)), a.rule,
                               a.subject, a.first_window))
    return alerts


def rule_notes(signals: pd.DataFrame, rules: Sequence[AlertRule],
               references: Mapping[tuple[str, str], float] | None = None) -> list[str]:
    """Why a rule could not fire at all: no signal of its metric, or no reference value.

    >>> from valuechain.spec.models import default_alert_rules
    >>> rule_notes(empty_signals(), default_alert_rules()[:1])
    ["rule 'feature_drift': no signal of metric `psi` in section `drift` (yet)."]
    """
    check_signals(signals)
    refs = _references(signals)
    refs.update(references or {})
    notes = []
    for rule in rules:
        series = list(_series(signals, rule))
        where = f" in section `{rule.section}`" if rule.section else ""
        of = f" for subject `{rule.subject}`" if rule.subject != "*" else ""
        if not series:
            notes.append(f"rule '{rule.name}': no signal of metric `{rule.metric}`{where}"
                         f"{of} (yet).")
        elif rule.relative and not any(
                (rule.metric, s) in refs or (rule.metric, "") in refs for (_, s), _ in series):
            notes.append(f"rule '{rule.name}': no reference value of `{rule.metric}`, so its "
                         "relative threshold cannot be computed; write an absolute `above` "
                         "or `below` instead.")
    return notes


@dataclass(frozen=True)
class RetrainAdvice:
    """Whether to retrain, and why (each reason one sentence naming its evidence)."""

    recommend: bool
    reasons: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {"recommend": self.recommend, "reasons": list(self.reasons)}


def retrain_advice(
    alerts: Sequence[Alert],
    signals: pd.DataFrame,
    *,
    importance: Mapping[str, float] | None = None,
    min_importance: float = 0.05,
    top_features: int = 5,
    missed_cohorts: int = 2,
) -> RetrainAdvice:
    """Recommend retraining from the active alerts and the matured estimates.

    Reasons (any one recommends retraining):

    - an active drift alert on an *important* feature: among the ``top_features`` of the
      model's normalised importance, or with a share of at least ``min_importance``
      (without ``importance``, any feature counts);
    - an active score-drift alert (``score_psi``);
    - an active alert on a matured KPI (section ``kpi``), severity warning or critical;
    - the estimate missed its own interval on the last ``missed_cohorts`` matured cohorts
      of a metric (the estimate section's ``covered`` rows).

    Operational alerts (queue at capacity, latency, volume) are not reasons to retrain:
    they call for thresholds, capacity or infrastructure, and are left to their owners.

    >>> advice = retrain_advice([], empty_signals())
    >>> advice.recommend, advice.reasons
    (False, ())
    """
    reasons: list[str] = []
    important: set[str] | None = None
    if importance:
        ranked = sorted(importance.items(), key=lambda kv: -kv[1])
        important = {name for i, (name, share) in enumerate(ranked)
                     if i < top_features or share >= min_importance}
    active = [a for a in alerts if a.active]
    drifted = [a for a in active if a.section in ("drift", "") and a.metric in DRIFT_METRICS
               and (important is None or a.subject in important)]
    if drifted:
        listed = ", ".join(f"{a.subject} ({a.metric} {a.value:.3g} over {a.windows} "
                           "windows)" for a in drifted[:5])
        more = f" and {len(drifted) - 5} more" if len(drifted) > 5 else ""
        reasons.append(f"sustained drift on important feature(s): {listed}{more}.")
    for a in active:
        if a.metric == "score_psi":
            reasons.append(f"the score distribution drifted (score PSI {a.value:.3g} over "
                           f"{a.windows} windows since {a.first_window:%Y-%m-%d}).")
        elif a.section == "kpi" and a.severity in ("warning", "critical"):
            reasons.append(f"matured KPI worse than allowed: {a.message}")
    reasons.extend(_missed_estimates(signals, missed_cohorts))
    return RetrainAdvice(bool(reasons), tuple(reasons))


def _missed_estimates(signals: pd.DataFrame, k: int) -> list[str]:
    """Metrics whose estimate missed its interval on the last ``k`` matured cohorts.

    Reads the estimate section's ``covered`` rows (value 1.0 when the interval held the
    realised value, else 0.0; the estimated metric is the subject).
    """
    check_signals(signals)
    rows = signals[(signals["section"] == "estimate") & (signals["metric"] == "covered")
                   & (signals["status"] == EVALUATED)]
    if rows.empty or k < 1:
        return []
    out = []
    for metric, group in rows.groupby("subject", sort=True):
        last = group.sort_values("window", kind="stable").tail(k)
        if len(last) == k and bool((last["value"].to_numpy(dtype=np.float64) < 0.5).all()):
            out.append(f"the estimate of {metric} missed its interval on the last {k} matured "
                       f"cohorts (since {pd.Timestamp(last['window'].iloc[0]):%Y-%m-%d}): "
                       "the scores no longer price the outcomes.")
    return out
