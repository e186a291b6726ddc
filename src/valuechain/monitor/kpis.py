"""Realised KPIs of the cohorts whose labels have matured; the others stay pending.

A *cohort* is the decisions of one monitoring window (a capacity period
``capacity_period(time_us, window_us)``: days from midnight UTC, weeks from Monday). A cohort
is **matured** when its window has closed by ``as_of`` and at least ``min_mature_share`` of
its decisions are mature (:func:`valuechain.monitor.outcomes.label_decisions`); the default
share is 1.0: *every* decision of the cohort is mature, so a day cohort matures
``horizon + delay`` after its last decision. With a share below 1 the metrics are computed
over the mature decisions only (the earliest of the window), which is sooner but no longer
the whole cohort. A cohort that has not matured is emitted with status ``pending`` and NaN
values: never a zero, never counted as negatives.

Every metric is a ratio of two sums that are linear in the labels ``y``
(:class:`Form`: ``(sum(num_c) + sum(num_w * y)) / (sum(den_c) + sum(den_w * y))``), so the
realised value (labels) and the estimate before labels
(:mod:`valuechain.monitor.estimate`, labels drawn from the scores) are one definition:

``positive_rate``
    positives / decisions (the chargeback rate, for the fraud example).
``precision``
    positives among the flagged decisions (role review or decline) / flagged decisions.
``recall``
    flagged positives / positives.
``false_decline_rate``
    declined negatives / negatives.
``loss_per_1000``
    the spec's KPI "chargeback losses per 1,000 USD of approved volume": with ``FN`` the
    ``value.costs.false_negative`` of a row (what an approved positive loses: ``amount``),
    ``1000 * sum(FN * y over approved) / sum(FN over approved)``. The numerator is the loss
    of approved positives (the charged-back amounts), the denominator the approved volume
    (the amount at stake on approved decisions). Decisions sent to review are in neither:
    their outcome depends on the reviewer (their expected loss is in ``cost``).
``cost``
    the realised cost of the actions taken (decide's pricing: approve ``y * FN``, decline
    ``(1 - y) * FP``, review ``R + y (1 - catch) FN + (1 - y) friction FP``), a total.
``expected_cost``
    the same actions priced with the calibrated scores at decision time, a total; next to
    ``cost`` it shows whether the money moved as the model expected.

Intervals: percentile block bootstrap (:func:`valuechain.evaluate.bootstrap.block_ratio_interval`)
of each ratio at ``level``. Blocks are days when the window holds at least 7 days (a week
window: 7 day-blocks) and hours otherwise: a one-day cohort is a single day-block, so its
rows are resampled by hour, which keeps bursts (a campaign's hour) together.

>>> import numpy as np, pandas as pd
>>> rows = pd.DataFrame({"role": ["approve", "review", "decline", "approve"],
...                      "label": [1.0, 1.0, 0.0, 0.0], "exposure": [50.0, 10, 10, 150],
...                      "cost_positive": [50.0, 4, 0, 150], "cost_negative": [0.0, 3, 8, 0],
...                      "score": [0.2, 0.6, 0.9, 0.1]})
>>> {f.name: f.value(rows["label"].to_numpy()) for f in forms(rows)}["loss_per_1000"]
250.0
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from valuechain.data.sources import datetime_to_us
from valuechain.errors import DataError, SpecError
from valuechain.evaluate.bootstrap import block_ratio_interval
from valuechain.policy.capacity import PERIOD_ANCHOR_US, capacity_period
from valuechain.spec.loader import LoadedSpec

if TYPE_CHECKING:
    from collections.abc import Mapping

__all__ = [
    "HOUR_US",
    "KPI_METRICS",
    "SIGNAL_COLUMNS",
    "Cohort",
    "Form",
    "check_labelled",
    "cohorts",
    "forms",
    "kpi_signals",
    "reference_kpis",
    "signals_frame",
]

F64 = npt.NDArray[np.float64]
HOUR_US: Final = 3_600_000_000
DAY_US: Final = 24 * HOUR_US

#: The signals table's columns (every monitor component returns one).
SIGNAL_COLUMNS: Final = ("window", "section", "metric", "subject", "value", "lower", "upper",
                         "n", "status")

#: Metrics of a matured cohort, in output order (cost metrics need ``value.costs``).
KPI_METRICS: Final = ("positive_rate", "precision", "recall", "false_decline_rate",
                      "loss_per_1000", "cost", "expected_cost")
_COST_METRICS: Final = frozenset({"loss_per_1000", "cost", "expected_cost"})


@dataclass(frozen=True, eq=False)
class Form:
    """A metric as a ratio of sums linear in the labels ``y`` (one array entry per row).

    ``value(y) = (sum(num_c) + sum(num_w * y)) / (sum(den_c) + sum(den_w * y))``, NaN when
    the denominator is 0. ``n`` counts the rows the metric is about (flagged decisions for
    precision, approved ones for the KPI, all decisions otherwise).
    """

    name: str
    num_c: F64
    num_w: F64
    den_c: F64
    den_w: F64
    n: int

    @property
    def fixed_denominator(self) -> bool:
        """Whether the denominator does not depend on the labels."""
        return not np.any(self.den_w)

    def value(self, y: F64) -> float:
        """The metric under labels (or probabilities, for a plug-in value) ``y``."""
        den = float(self.den_c.sum() + self.den_w @ y)
        if den == 0:
            return float("nan")
        return float((self.num_c.sum() + self.num_w @ y) / den)

    def per_row(self, y: F64) -> tuple[F64, F64]:
        """Numerator and denominator per row (for block bootstrap intervals)."""
        return self.num_c + self.num_w * y, self.den_c + self.den_w * y


def forms(rows: pd.DataFrame) -> list[Form]:
    """The :data:`KPI_METRICS` of one cohort's rows as :class:`Form` s.

    ``rows`` needs ``role``, and for the cost metrics ``exposure``, ``cost_positive``,
    ``cost_negative`` and ``score`` (columns of
    :func:`~valuechain.monitor.outcomes.label_decisions`); cost metrics are left out when
    ``exposure`` is NaN (no costs in the spec).
    """
    n = len(rows)
    role = rows["role"].to_numpy(dtype=object)
    one, zero = np.ones(n), np.zeros(n)
    flagged = (role != "approve").astype(np.float64)
    declined = (role == "decline").astype(np.float64)
    approved = (role == "approve").astype(np.float64)
    out = [
        Form("positive_rate", zero, one, one, zero, n),
        Form("precision", zero, flagged, flagged, zero, int(flagged.sum())),
        Form("recall", zero, flagged, zero, one, n),
        Form("false_decline_rate", declined, -declined, one, -one, n),
    ]
    exposure = rows["exposure"].to_numpy(dtype=np.float64) if "exposure" in rows else None
    if exposure is not None and n and np.all(np.isfinite(exposure)):
        pos = rows["cost_positive"].to_numpy(dtype=np.float64)
        neg = rows["cost_negative"].to_numpy(dtype=np.float64)
        share = np.full(n, 1.0 / n)
        out += [
            Form("loss_per_1000", zero, 1000.0 * approved * exposure, approved * exposure,
                 zero, int(approved.sum())),
            Form("cost", neg, pos - neg, share, zero, n),
            # Known at decision time: the same actions priced with the calibrated scores.
            Form("expected_cost", neg + rows["score"].to_numpy(np.float64) * (pos - neg),
                 zero, share, zero, n),
        ]
    return out


@dataclass(frozen=True, eq=False)
class Cohort:
    """One window's decisions and whether its labels have matured."""

    window: int  # capacity period index
    start_us: int
    rows: pd.DataFrame  # every decision of the window
    mature_share: float
    matured: bool

    @property
    def labelled(self) -> pd.DataFrame:
        """The rows a matured cohort's metrics are computed over (its mature decisions)."""
        return self.rows[self.rows["mature"].to_numpy(dtype=bool)]


def check_labelled(labelled: pd.DataFrame, spec: LoadedSpec | None) -> None:
    """Refuse a table that was not labelled, or a spec whose label is not binary."""
    missing = [c for c in ("time_us", "score", "role", "label", "mature")
               if c not in labelled.columns]
    if missing:
        raise DataError(f"labelled decisions: columns {missing} are missing; label the "
                        "decisions first with valuechain.monitor.outcomes.label_decisions.")
    if spec is not None and spec.spec.label.kind != "binary":
        raise SpecError(f"{spec.where('label', 'kind')}: KPI monitoring prices binary labels "
                        f"(0/1), got `{spec.spec.label.kind}`.")


def _window_us(window_us: int) -> int:
    if not isinstance(window_us, int | np.integer) or window_us <= 0:
        raise DataError(f"`window_us`: expected a positive number of microseconds (a day is "
                        f"{DAY_US}), got {window_us!r}.")
    return int(window_us)


def cohorts(labelled: pd.DataFrame, *, window_us: int, as_of_us: int | None,
            min_mature_share: float = 1.0) -> Iterator[Cohort]:
    """The cohorts of ``labelled`` in window order, each with its maturity.

    A cohort is matured iff its window has ended by ``as_of_us`` (None: not checked) and its
    share of mature decisions is at least ``min_mature_share``.
    """
    window_us = _window_us(window_us)
    if not 0 < min_mature_share <= 1:
        raise DataError(f"`min_mature_share` must lie in (0, 1], got {min_mature_share}.")
    t = labelled["time_us"].to_numpy(dtype=np.int64)
    period = capacity_period(t, window_us)
    order = np.argsort(period, kind="stable")
    bounds = np.flatnonzero(np.diff(period[order])) + 1
    for chunk in np.split(order, bounds):
        if not len(chunk):
            continue
        k = int(period[chunk[0]])
        rows = labelled.iloc[np.sort(chunk)]
        start = PERIOD_ANCHOR_US + k * window_us
        share = float(rows["mature"].to_numpy(dtype=bool).mean())
        closed = as_of_us is None or start + window_us <= as_of_us
        yield Cohort(window=k, start_us=start, rows=rows, mature_share=share,
                     matured=closed and share >= min_mature_share)


def blocks_of(t_us: npt.NDArray[np.int64], window_us: int) -> npt.NDArray[np.int64]:
    """Bootstrap blocks: days when a window holds at least 7 of them, else hours."""
    size = DAY_US if window_us >= 7 * DAY_US else HOUR_US
    return np.asarray(capacity_period(t_us, size), dtype=np.int64)


def signals_frame(records: list[dict[str, object]]) -> pd.DataFrame:
    """A signals table (:data:`SIGNAL_COLUMNS`, documented dtypes) from row dicts."""
    frame = pd.DataFrame.from_records(records, columns=list(SIGNAL_COLUMNS))
    frame["window"] = pd.to_datetime(frame["window"].astype(np.int64), unit="us",
                                     utc=True).astype("datetime64[us, UTC]")
    for column in ("value", "lower", "upper"):
        frame[column] = frame[column].astype(np.float64)
    frame["n"] = frame["n"].astype(np.int64)
    for column in ("section", "metric", "subject", "status"):
        frame[column] = frame[column].astype(object)
    return frame


def _as_of(as_of: datetime | None, labelled: pd.DataFrame) -> int | None:
    if as_of is not None:
        return datetime_to_us(as_of)
    value = labelled.attrs.get("as_of_us")
    return int(value) if value is not None else None


def kpi_signals(labelled: pd.DataFrame, spec: LoadedSpec, *, window_us: int,
                as_of: datetime, level: float = 0.9, min_mature_share: float = 1.0,
                seed: int = 0) -> pd.DataFrame:
    """Realised KPIs per cohort; cohorts whose labels have not matured are ``pending``.

    Parameters
    ----------
    labelled : DataFrame
        Decisions labelled by :func:`~valuechain.monitor.outcomes.label_decisions`.
    spec : LoadedSpec
        The project's spec (binary label).
    window_us : int
        Window length in microseconds (the spec's ``monitoring.cadence``).
    as_of : datetime
        When the outcomes were extracted (the ``as_of`` the decisions were labelled with):
        a window that has not ended by then is pending.
    level : float, default 0.9
        Coverage of the block bootstrap intervals.
    min_mature_share : float, default 1.0
        Share of a closed window's decisions that must be mature for it to count as matured.
    seed : int, default 0
        Seed of the bootstrap draws.

    Returns
    -------
    DataFrame
        A signals table, section ``kpi``: per window ``mature_share`` (always ``ok``), then
        each of :data:`KPI_METRICS` with its interval — ``pending`` (NaN) until the cohort
        matures, ``insufficient`` (NaN) when its denominator is 0 (e.g. nothing flagged).
    """
    check_labelled(labelled, spec)
    if not 0 < level < 1:
        raise DataError(f"`level` must lie in (0, 1), got {level}.")
    as_of_us = _as_of(as_of, labelled)
    has_costs = "exposure" in labelled and bool(np.isfinite(
        labelled["exposure"].to_numpy(dtype=np.float64)).all()) and len(labelled) > 0
    names = [m for m in KPI_METRICS if has_costs or m not in _COST_METRICS]
    records: list[dict[str, object]] = []
    for cohort in cohorts(labelled, window_us=window_us, as_of_us=as_of_us,
                          min_mature_share=min_mature_share):
        base = {"window": cohort.start_us, "section": "kpi", "subject": ""}
        records.append({**base, "metric": "mature_share", "value": cohort.mature_share,
                        "lower": np.nan, "upper": np.nan, "n": len(cohort.rows),
                        "status": "ok"})
        if not cohort.matured:
            records += [{**base, "metric": name, "value": np.nan, "lower": np.nan,
                         "upper": np.nan, "n": len(cohort.rows), "status": "pending"}
                        for name in names]
            continue
        rows = cohort.labelled
        y = rows["label"].to_numpy(dtype=np.float64)
        blocks = blocks_of(rows["time_us"].to_numpy(dtype=np.int64), window_us)
        for form in forms(rows):
            num, den = form.per_row(y)
            iv = block_ratio_interval(num, den, blocks, alpha=1 - level, seed=seed)
            ok = bool(np.isfinite(iv.value))
            records.append({**base, "metric": form.name, "value": iv.value if ok else np.nan,
                            "lower": iv.low, "upper": iv.high, "n": form.n,
                            "status": "ok" if ok else "insufficient"})
    return signals_frame(records)


def reference_kpis(reference: Any, spec: LoadedSpec, *, level: float = 0.9, seed: int = 0,
                   roles: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The KPIs of the bundle's reference period, as signals rows with status ``reference``.

    Alert rules relative to the reference (``above_reference``) compare each matured
    cohort's metric with these rows (same section ``kpi``, metric and subject).

    Parameters
    ----------
    reference : Reference or DataFrame
        ``valuechain.monitor.inputs.Reference`` (its ``frame``) or the frame itself: ``time``,
        ``score``, ``action`` (the bundle policy's action), ``label`` (NaN where not mature:
        those rows are left out) and the feature columns the cost expressions read.
    spec : LoadedSpec
        The project's spec (binary label, ``value.costs``).
    level, seed
        Interval coverage and bootstrap seed; the blocks are the reference period's days.
    roles : mapping of str to str, optional
        Action name -> cost role when the names are not approve/review/decline.

    Returns
    -------
    DataFrame
        A signals table, section ``kpi``, status ``reference`` (``insufficient`` where a
        denominator is 0), one row per metric of :data:`KPI_METRICS` (the cost metrics when
        the frame holds the columns the costs read); ``window`` is the period's first day
        (midnight UTC), ``n`` as in :func:`kpi_signals`.
    """
    from valuechain.monitor.outcomes import price_rows  # outcomes imports nothing from here

    frame = reference.frame if hasattr(reference, "frame") else reference
    missing = [c for c in ("time", "score", "action", "label") if c not in frame.columns]
    if missing:
        raise DataError(f"reference frame: columns {missing} are missing; expected the "
                        "reference of valuechain.monitor.inputs.load_reference (time, score, "
                        "action, label, features).")
    if spec.spec.label.kind != "binary":
        check_labelled(frame.assign(time_us=0, role="", mature=True), spec)  # raises
    rows = frame[frame["label"].notna()].reset_index(drop=True).copy()
    times = pd.to_datetime(rows["time"], utc=True)
    rows["time_us"] = times.to_numpy(dtype="datetime64[us]").astype(np.int64)
    rows["mature"] = True
    try:
        price_rows(rows, spec, roles)  # sets `role` before it prices
    except DataError as err:
        if "is neither a model feature column" not in str(err):
            raise
        rows["exposure"] = np.nan  # the costs read columns the frame does not hold: no KPI
    if not len(rows):
        return signals_frame([])
    t = rows["time_us"].to_numpy(dtype=np.int64)
    start = PERIOD_ANCHOR_US + int(capacity_period(int(t.min()), DAY_US)) * DAY_US
    y = rows["label"].to_numpy(dtype=np.float64)
    blocks = capacity_period(t, DAY_US)
    records: list[dict[str, object]] = []
    for form in forms(rows):
        num, den = form.per_row(y)
        iv = block_ratio_interval(num, den, blocks, alpha=1 - level, seed=seed)
        ok = bool(np.isfinite(iv.value))
        records.append({"window": start, "section": "kpi", "metric": form.name, "subject": "",
                        "value": iv.value if ok else np.nan, "lower": iv.low,
                        "upper": iv.high, "n": form.n,
                        "status": "reference" if ok else "insufficient"})
    return signals_frame(records)
