"""Metrics with block-bootstrap intervals by day, per-period metrics and curves."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from valuechain.evaluate import (
    all_metrics,
    average_precision,
    block_bootstrap,
    block_ratio_interval,
    precision_recall_at_capacity,
)
from valuechain.evaluate import roc_auc as auc_of
from valuechain.train.context import EvaluationContext

__all__ = ["curves", "per_period", "scored"]

F64 = npt.NDArray[np.float64]
FAST = ("roc_auc", "average_precision", "brier", "log_loss", "ece")
#: How many intervals :func:`scored` computes at most (one ``tick`` call before each).
INTERVALS = len(FAST) + 3


def _ratio_interval(num: F64, den: F64, days: npt.NDArray[np.int64], seed: int
                    ) -> tuple[float, float]:
    """Day-block interval of ``sum(num) / sum(den)`` (low, high)."""
    interval = block_ratio_interval(num, den, days, seed=seed)
    return interval.low, interval.high


def scored(scores: F64, labels: F64, ctx: EvaluationContext, seed: int = 0,
           tick: Callable[[str], None] | None = None) -> dict[str, float]:
    """Every metric the context allows, with ``<metric>_low``/``_high`` 95 % intervals.

    ``tick(metric)`` is called before each bootstrap interval (for progress bars).
    """
    def step(name: str) -> None:
        if tick is not None:
            tick(name)

    out = all_metrics(scores, labels, periods=ctx.capacity_period, k=ctx.capacity_k,
                      entity=ctx.entity, days=ctx.days if ctx.entity is not None else None,
                      cost_fp=ctx.cost_fp, cost_fn=ctx.cost_fn)
    for name in FAST:
        step(name)
        interval = block_bootstrap(name, ctx.days, scores, labels, seed=seed)
        out[f"{name}_low"], out[f"{name}_high"] = interval.low, interval.high
    if ctx.capacity_period is not None and ctx.capacity_k is not None:
        step("precision_at_capacity")
        taken = _taken(scores, ctx.capacity_period, ctx.capacity_k)
        out["precision_at_capacity_low"], out["precision_at_capacity_high"] = _ratio_interval(
            taken * labels, taken.astype(np.float64), ctx.days, seed)
        step("recall_at_capacity")
        out["recall_at_capacity_low"], out["recall_at_capacity_high"] = _ratio_interval(
            taken * labels, labels, ctx.days, seed)
    if ctx.cost_fp is not None and ctx.cost_fn is not None:
        step("expected_cost")
        flagged = scores >= 0.5
        cost = np.where(flagged, (1 - labels) * ctx.cost_fp, labels * ctx.cost_fn)
        out["expected_cost_low"], out["expected_cost_high"] = _ratio_interval(
            cost, np.ones_like(cost), ctx.days, seed)
    return out


def _taken(scores: F64, periods: npt.NDArray[np.int64], k: int) -> F64:
    """1.0 for rows within the top ``k`` scores of their period."""
    order = np.lexsort((-scores, periods))
    sorted_periods = periods[order]
    starts = np.searchsorted(sorted_periods, sorted_periods, side="left")
    rank = np.arange(len(order)) - starts
    taken = np.zeros(len(scores))
    taken[order] = (rank < k).astype(np.float64)
    return taken


def per_period(scores: F64, labels: F64, when: pd.Series, ctx: EvaluationContext,
               freq: str) -> list[dict[str, Any]]:
    """Metrics per calendar period (``D`` or ``W``) of the decision time."""
    keys = pd.to_datetime(when).dt.to_period(freq).dt.start_time.to_numpy()
    rows = []
    for key in np.unique(keys):
        mask = keys == key
        y = labels[mask]
        entry: dict[str, Any] = {
            "period": pd.Timestamp(key).date().isoformat(), "rows": int(mask.sum()),
            "positives": int(y.sum()), "roc_auc": auc_of(scores[mask], y),
            "average_precision": float("nan"),
        }
        if y.sum() > 0:
            entry["average_precision"] = average_precision(scores[mask], y)
        if ctx.capacity_period is not None and ctx.capacity_k is not None:
            cap = precision_recall_at_capacity(scores[mask], y, ctx.capacity_period[mask],
                                               ctx.capacity_k)
            entry["precision_at_capacity"] = cap.precision
        rows.append(entry)
    return rows


def curves(scores: F64, labels: F64, points: int = 200) -> dict[str, dict[str, list[float]]]:
    """ROC and precision-recall curves, one point per distinct score, thinned to ``points``.

    Rows with the same score are one threshold: the curve steps over the whole tie group at
    once (as scikit-learn's ``roc_curve(drop_intermediate=False)`` and
    ``precision_recall_curve`` do), so a constant score (the ``prior`` baseline) is the
    chance diagonal, not a walk through the rows in file order. With more than ``points``
    thresholds, evenly spaced ones are kept, always the last (recall 1).

    Examples
    --------
    >>> out = curves(np.array([0.1, 0.1, 0.1, 0.1]), np.array([1.0, 0.0, 1.0, 0.0]))
    >>> out["roc"], out["pr"]
    ({'fpr': [0.0, 1.0], 'tpr': [0.0, 1.0]}, {'recall': [1.0], 'precision': [0.5]})
    """
    if not len(scores):
        return {"roc": {"fpr": [0.0], "tpr": [0.0]}, "pr": {"recall": [], "precision": []}}
    order = np.argsort(-scores, kind="stable")
    s, y = scores[order], labels[order]
    tp = np.cumsum(y)
    fp = np.cumsum(1 - y)
    # last row of each tie group: where the next score differs, and the final row
    ends = np.r_[np.flatnonzero(np.diff(s)), len(s) - 1]
    if len(ends) > points:
        ends = ends[np.unique(np.linspace(0, len(ends) - 1, points).round().astype(int))]
    pos, neg = max(tp[-1], 1.0), max(fp[-1], 1.0)
    tpr, fpr = tp[ends] / pos, fp[ends] / neg
    precision = tp[ends] / (ends + 1)
    return {
        "roc": {"fpr": [0.0, *np.round(fpr, 5).tolist()], "tpr": [0.0, *np.round(tpr, 5).tolist()]},
        "pr": {"recall": np.round(tpr, 5).tolist(), "precision": np.round(precision, 5).tolist()},
    }
