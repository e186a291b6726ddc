"""Metrics for scores against 0/1 labels: ranking, probability quality and the decision.

Ranking (:func:`roc_auc`, :func:`average_precision`), probabilities (:func:`brier`,
:func:`log_loss`, :func:`ece`, :func:`reliability_table`) and the decision itself
(:func:`precision_recall_at_capacity`, :func:`card_precision_at_k`, :func:`expected_cost`).
They are plain numpy, agree with scikit-learn where it has the metric, accept sample weights
where it makes sense (the block bootstrap uses them), and return ``NaN`` instead of raising
when a metric is undefined (one class only, nothing taken).

>>> scores = [0.1, 0.4, 0.35, 0.8]
>>> labels = [0, 0, 1, 1]
>>> roc_auc(scores, labels)
0.75
>>> round(brier(scores, labels), 4)
0.1581
>>> sorted(all_metrics(scores, labels))
['average_precision', 'brier', 'ece', 'log_loss', 'roc_auc']
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Literal, cast

import numpy as np
import numpy.typing as npt
import pandas as pd

from valuechain.errors import DataError
from valuechain.spec.durations import to_micros

__all__ = [
    "GREATER_IS_BETTER",
    "CapacityResult",
    "CardPrecision",
    "all_metrics",
    "average_precision",
    "brier",
    "card_precision_at_k",
    "ece",
    "expected_cost",
    "k_per_period",
    "log_loss",
    "precision_recall_at_capacity",
    "reliability_table",
    "roc_auc",
]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
NAN = float("nan")

#: Direction of each metric returned by :func:`all_metrics` (for verdicts and reports).
GREATER_IS_BETTER: dict[str, bool] = {
    "roc_auc": True,
    "average_precision": True,
    "brier": False,
    "log_loss": False,
    "ece": False,
    "precision_at_capacity": True,
    "recall_at_capacity": True,
    "expected_cost": False,
    "card_precision_at_k": True,
}


def _inputs(
    scores: npt.ArrayLike, labels: npt.ArrayLike, sample_weight: npt.ArrayLike | None = None
) -> tuple[F64, F64, F64 | None]:
    s = np.asarray(scores, dtype=np.float64)
    y = np.asarray(labels, dtype=np.float64)
    if s.ndim != 1 or s.shape != y.shape:
        raise DataError(
            f"`scores` has shape {s.shape} and `labels` {y.shape}; expected two 1-D arrays of "
            "the same length."
        )
    bad = int(np.count_nonzero(~np.isfinite(s)))
    if bad:
        raise DataError(f"{bad} of {len(s)} scores are NaN or infinite; a model must score "
                        "every row. Check missing-value handling before scoring.")
    if np.any((y != 0) & (y != 1)):
        raise DataError("labels must be 0 or 1 (missing or immature labels are not allowed "
                        "in metrics); drop immature rows first.")
    w = None
    if sample_weight is not None:
        w = np.asarray(sample_weight, dtype=np.float64)
        if w.shape != s.shape:
            raise DataError(f"`sample_weight` has shape {w.shape}, `scores` {s.shape}; give "
                            "one weight per row.")
    return s, y, w


def _tie_groups(scores: F64) -> tuple[I64, int]:
    """Index of each score among the distinct scores (ascending), and how many there are."""
    uniq, inverse = np.unique(scores, return_inverse=True)
    return inverse.astype(np.int64).ravel(), len(uniq)


def _class_weights(gid: I64, groups: int, y: F64, w: F64 | None) -> tuple[F64, F64]:
    """Positive and negative weight in each tie group."""
    wy = y if w is None else w * y
    wn = (1.0 - y) if w is None else w * (1.0 - y)
    return (_wcount(gid, wy, groups), _wcount(gid, wn, groups))


def _wcount(index: I64, weights: F64, size: int) -> F64:
    """Sum of ``weights`` per value of ``index`` (``np.bincount``, typed as float)."""
    return cast(F64, np.bincount(index, weights=weights, minlength=size))


def _auc_from_groups(pos: F64, neg: F64) -> float:
    """ROC AUC from positive/negative weight per tie group, groups in ascending score."""
    n_pos, n_neg = float(pos.sum()), float(neg.sum())
    if n_pos <= 0 or n_neg <= 0:
        return NAN
    below = np.cumsum(neg) - neg
    return float(np.dot(pos, below + 0.5 * neg) / (n_pos * n_neg))


def _ap_from_groups(pos: F64, neg: F64) -> float:
    """Average precision from weights per tie group, groups in ascending score."""
    n_pos = float(pos.sum())
    if n_pos <= 0:
        return NAN
    pos_d, neg_d = pos[::-1], neg[::-1]
    tp = np.cumsum(pos_d)
    taken = tp + np.cumsum(neg_d)
    hit = pos_d > 0
    return float(np.sum(pos_d[hit] * tp[hit] / taken[hit]) / n_pos)


def roc_auc(
    scores: npt.ArrayLike, labels: npt.ArrayLike, sample_weight: npt.ArrayLike | None = None
) -> float:
    """Area under the ROC curve (ties count one half); ``NaN`` with one class only.

    Examples
    --------
    >>> roc_auc([0.2, 0.2, 0.9], [0, 1, 1])
    0.75
    """
    s, y, w = _inputs(scores, labels, sample_weight)
    gid, groups = _tie_groups(s)
    return _auc_from_groups(*_class_weights(gid, groups, y, w))


def average_precision(
    scores: npt.ArrayLike, labels: npt.ArrayLike, sample_weight: npt.ArrayLike | None = None
) -> float:
    """Average precision, ``sum_n (R_n - R_{n-1}) P_n`` over thresholds; ``NaN`` without positives.

    The same step-wise definition as scikit-learn's ``average_precision_score``.

    Examples
    --------
    >>> round(average_precision([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]), 4)
    0.8333
    """
    s, y, w = _inputs(scores, labels, sample_weight)
    gid, groups = _tie_groups(s)
    return _ap_from_groups(*_class_weights(gid, groups, y, w))


def brier(
    scores: npt.ArrayLike, labels: npt.ArrayLike, sample_weight: npt.ArrayLike | None = None
) -> float:
    """Mean squared difference between score and label.

    Examples
    --------
    >>> brier([0.0, 0.5], [0, 1])
    0.125
    """
    s, y, w = _inputs(scores, labels, sample_weight)
    if len(s) == 0:
        return NAN
    return float(np.average((s - y) ** 2, weights=w))


def log_loss(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    sample_weight: npt.ArrayLike | None = None,
    eps: float = 1e-15,
) -> float:
    """Mean negative log-likelihood, scores clipped to ``[eps, 1 - eps]``.

    Examples
    --------
    >>> round(log_loss([0.5, 0.5], [0, 1]), 4)
    0.6931
    """
    s, y, w = _inputs(scores, labels, sample_weight)
    if len(s) == 0:
        return NAN
    p = np.clip(s, eps, 1.0 - eps)
    return float(np.average(-(y * np.log(p) + (1.0 - y) * np.log1p(-p)), weights=w))


def _bins(scores: F64, n_bins: int) -> I64:
    """Equal-width bin of each score over [0, 1]; 1.0 falls in the last bin."""
    if n_bins < 1:
        raise DataError(f"`n_bins` must be at least 1, got {n_bins}.")
    idx = np.floor(np.clip(scores, 0.0, 1.0) * n_bins).astype(np.int64)
    return np.minimum(idx, n_bins - 1)


def ece(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    n_bins: int = 15,
    sample_weight: npt.ArrayLike | None = None,
) -> float:
    """Expected calibration error over equal-width bins.

    ``sum_b (n_b / n) * |mean score_b - positive rate_b|``; scores are clipped to [0, 1].

    Examples
    --------
    >>> ece([0.2, 0.2, 0.8, 0.8], [0, 1, 1, 1], n_bins=5)
    0.25
    """
    s, y, w = _inputs(scores, labels, sample_weight)
    weights = np.ones_like(s) if w is None else w
    total = float(weights.sum())
    if total <= 0:
        return NAN
    b = _bins(s, n_bins)
    gap = np.bincount(b, weights=weights * (s - y), minlength=n_bins)
    return float(np.abs(gap).sum() / total)


def reliability_table(scores: npt.ArrayLike, labels: npt.ArrayLike, n_bins: int = 15
                      ) -> pd.DataFrame:
    """Count, mean score and positive rate in each equal-width score bin.

    Every bin is listed; empty bins have ``count`` 0 and ``NaN`` means.

    Examples
    --------
    >>> reliability_table([0.1, 0.2, 0.9], [0, 1, 1], n_bins=2)
       bin  lower  upper  count  mean_score  positive_rate
    0    0    0.0    0.5      2        0.15            0.5
    1    1    0.5    1.0      1        0.90            1.0
    """
    s, y, _ = _inputs(scores, labels)
    b = _bins(s, n_bins)
    count = np.bincount(b, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_score = np.bincount(b, weights=s, minlength=n_bins) / count
        rate = np.bincount(b, weights=y, minlength=n_bins) / count
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    return pd.DataFrame({
        "bin": np.arange(n_bins), "lower": edges[:-1], "upper": edges[1:], "count": count,
        "mean_score": mean_score, "positive_rate": rate,
    })


def k_per_period(capacity_limit: int, per: timedelta, period_length: timedelta) -> int:
    """Cases that can be actioned in ``period_length`` given ``capacity_limit`` per ``per``.

    Rounded down: a fraction of a review cannot be done.

    Examples
    --------
    >>> k_per_period(150, timedelta(days=1), timedelta(weeks=1))
    1050
    >>> k_per_period(150, timedelta(days=1), timedelta(hours=1))
    6
    """
    if per <= timedelta(0):
        raise DataError(f"`per` (the capacity period) must be positive, got {per}.")
    return int(capacity_limit * to_micros(period_length) // to_micros(per))


@dataclass(frozen=True, eq=False)
class CapacityResult:
    """Precision and recall when only the top ``k`` scores of each period are actioned.

    ``precision`` and ``recall`` are micro-averaged over periods; the arrays are per period
    (``periods`` holds the sorted period keys).
    """

    precision: float
    recall: float
    k: int
    periods: npt.NDArray[np.generic]
    taken: I64
    positives_taken: I64
    positives: I64

    @property
    def precision_per_period(self) -> F64:
        """Positives taken / taken in each period (``NaN`` where nothing was taken)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.positives_taken / self.taken

    @property
    def recall_per_period(self) -> F64:
        """Positives taken / positives in each period (``NaN`` without positives)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return self.positives_taken / self.positives


def _ratio(num: float, den: float) -> float:
    return num / den if den > 0 else NAN


def precision_recall_at_capacity(
    scores: npt.ArrayLike, labels: npt.ArrayLike, periods: npt.ArrayLike | pd.Series, k: int
) -> CapacityResult:
    """Precision and recall of actioning the ``k`` highest scores within each period.

    Parameters
    ----------
    scores, labels : array-like
        Score and 0/1 label of each row.
    periods : array-like
        Period key of each row (e.g. the decision day); any sortable values.
    k : int
        Capacity per period (see :func:`k_per_period`). Ties at the cut are taken in row
        order.

    Returns
    -------
    CapacityResult
        ``precision = positives taken / taken`` and ``recall = positives taken / positives``,
        summed over all periods, plus the per-period counts.

    Examples
    --------
    >>> r = precision_recall_at_capacity([0.9, 0.8, 0.1, 0.7, 0.6], [1, 0, 1, 0, 0],
    ...                                  ["d1", "d1", "d1", "d2", "d2"], k=1)
    >>> r.precision, r.recall, r.taken.tolist()
    (0.5, 0.5, [1, 1])
    """
    s, y, _ = _inputs(scores, labels)
    if k < 0:
        raise DataError(f"`k` must be at least 0, got {k}.")
    codes, keys = pd.factorize(np.asarray(periods), sort=True)
    if len(codes) != len(s):
        raise DataError(f"`periods` has {len(codes)} rows, `scores` {len(s)}; give one "
                        "period per row.")
    if np.any(codes < 0):
        raise DataError(f"{int(np.sum(codes < 0))} rows have no period key (missing value).")
    n_periods = len(keys)
    order = np.lexsort((-s, codes))
    sizes = np.bincount(codes, minlength=n_periods)
    first = np.cumsum(sizes) - sizes
    rank = np.arange(len(s)) - first[codes[order]]
    chosen = order[rank < k]
    taken = np.bincount(codes[chosen], minlength=n_periods).astype(np.int64)
    tp = np.bincount(codes[chosen], weights=y[chosen], minlength=n_periods).astype(np.int64)
    pos = np.bincount(codes, weights=y, minlength=n_periods).astype(np.int64)
    return CapacityResult(
        precision=_ratio(float(tp.sum()), float(taken.sum())),
        recall=_ratio(float(tp.sum()), float(pos.sum())),
        k=k, periods=np.asarray(keys), taken=taken, positives_taken=tp, positives=pos,
    )


@dataclass(frozen=True, eq=False)
class CardPrecision:
    """Card precision top-k: the mean over days of the share of compromised cards in the top k.

    ``per_day[i]`` is the value on ``days[i]``; ``compromised[i]`` counts the compromised
    entities still in play that day (after removals); ``detected[i]`` those found in the top k.
    """

    value: float
    k: int
    days: npt.NDArray[np.generic]
    per_day: F64
    compromised: I64
    detected: I64


def card_precision_at_k(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    days: npt.ArrayLike | pd.Series,
    entity: npt.ArrayLike | pd.Series,
    k: int = 100,
    known_compromised_removed: bool = True,
    removed: Literal["detected", "compromised"] = "detected",
) -> CardPrecision:
    """Card precision top-k (CP@k) as defined by the fraud-detection handbook.

    For each day in increasing order: take each entity's (card's) maximum score and maximum
    label over its rows that day, rank the entities by that score, and count the compromised
    ones (maximum label 1) among the top ``k``; the day's value is that count divided by
    ``k`` (also when fewer than ``k`` entities are active). Entities already found on an
    earlier day are removed from later days: by default those *detected* (in an earlier top
    ``k`` with label 1, the handbook's code); with ``removed="compromised"``, every entity
    with a positive label on an earlier day. The result is the mean over days.

    Parameters
    ----------
    scores, labels : array-like
        Score and 0/1 label of each row (transaction).
    days : array-like
        Day key of each row (sortable, e.g. ``TX_TIME_DAYS`` or a date).
    entity : array-like
        Entity key of each row (e.g. ``CUSTOMER_ID``).
    k : int, default 100
        Entities reviewed per day. ``k=0`` (a capacity of zero: nobody is reviewed) gives a
        ``NaN`` precision on every day.
    known_compromised_removed : bool, default True
        Remove entities found on earlier days.
    removed : {"detected", "compromised"}, default "detected"
        Which entities count as found.

    Returns
    -------
    CardPrecision
        ``value`` is ``NaN`` when there are no rows.

    Examples
    --------
    Card 7 is compromised and detected on day 1, so it is left out on day 2:

    >>> cp = card_precision_at_k(scores=[0.9, 0.2, 0.8, 0.95, 0.6, 0.5],
    ...                          labels=[1, 0, 0, 0, 1, 0],
    ...                          days=[1, 1, 1, 2, 2, 2], entity=[7, 8, 9, 7, 8, 9], k=1)
    >>> cp.per_day.tolist(), cp.value
    ([1.0, 1.0], 1.0)
    >>> card_precision_at_k([0.9, 0.2, 0.8, 0.95, 0.6, 0.5], [1, 0, 0, 0, 1, 0],
    ...                     [1, 1, 1, 2, 2, 2], [7, 8, 9, 7, 8, 9], k=1,
    ...                     known_compromised_removed=False).per_day.tolist()
    [1.0, 0.0]
    """
    s, y, _ = _inputs(scores, labels)
    if k < 0:
        raise DataError(f"`k` must be at least 0, got {k}.")
    day_codes, day_keys = pd.factorize(np.asarray(days), sort=True)
    ent_codes, ent_keys = pd.factorize(np.asarray(entity))
    if not len(day_codes) == len(ent_codes) == len(s):
        raise DataError(f"`scores`, `days` and `entity` have {len(s)}, {len(day_codes)} and "
                        f"{len(ent_codes)} rows; expected the same.")
    if np.any(day_codes < 0) or np.any(ent_codes < 0):
        raise DataError("some rows have a missing day or entity key.")
    per_entity = (
        pd.DataFrame({"d": day_codes, "e": ent_codes, "s": s, "y": y})
        .groupby(["d", "e"], sort=True).max()
    )
    d = per_entity.index.get_level_values("d").to_numpy()
    e = per_entity.index.get_level_values("e").to_numpy()
    smax, ymax = per_entity["s"].to_numpy(), per_entity["y"].to_numpy()
    bounds = np.searchsorted(d, np.arange(len(day_keys) + 1))
    gone = np.zeros(len(ent_keys), dtype=np.bool_)
    per_day = np.zeros(len(day_keys))
    compromised = np.zeros(len(day_keys), dtype=np.int64)
    detected = np.zeros(len(day_keys), dtype=np.int64)
    for i in range(len(day_keys)):
        lo, hi = bounds[i], bounds[i + 1]
        keep = ~gone[e[lo:hi]]
        ents, sc, lab = e[lo:hi][keep], smax[lo:hi][keep], ymax[lo:hi][keep]
        top = np.argsort(-sc, kind="stable")[:k]
        found = ents[top][lab[top] == 1]
        per_day[i] = len(found) / k if k else NAN  # nobody reviewed: precision undefined
        compromised[i] = int(np.count_nonzero(lab == 1))
        detected[i] = len(found)
        if known_compromised_removed:
            gone[found if removed == "detected" else ents[lab == 1]] = True
    value = float(per_day.mean()) if len(per_day) else NAN
    return CardPrecision(value=value, k=k, days=np.asarray(day_keys), per_day=per_day,
                         compromised=compromised, detected=detected)


def expected_cost(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    cost_fp: float | npt.ArrayLike,
    cost_fn: float | npt.ArrayLike,
    threshold: float = 0.5,
    sample_weight: npt.ArrayLike | None = None,
) -> float:
    """Mean cost per decision of flagging rows with ``score >= threshold``.

    A flagged negative costs ``cost_fp`` and an unflagged positive ``cost_fn``; both may be
    one number or one per row (e.g. the transaction amount).

    Examples
    --------
    >>> expected_cost([0.9, 0.6, 0.1, 0.2], [1, 0, 1, 0], cost_fp=5.0,
    ...               cost_fn=[100.0, 100.0, 40.0, 100.0])
    11.25
    """
    s, y, w = _inputs(scores, labels, sample_weight)
    if len(s) == 0:
        return NAN
    flagged = s >= threshold
    fp = np.broadcast_to(np.asarray(cost_fp, dtype=np.float64), s.shape)
    fn = np.broadcast_to(np.asarray(cost_fn, dtype=np.float64), s.shape)
    cost = np.where(flagged, (1.0 - y) * fp, y * fn)
    return float(np.average(cost, weights=w))


def all_metrics(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    *,
    periods: npt.ArrayLike | pd.Series | None = None,
    k: int | None = None,
    entity: npt.ArrayLike | pd.Series | None = None,
    days: npt.ArrayLike | pd.Series | None = None,
    cost_fp: float | npt.ArrayLike | None = None,
    cost_fn: float | npt.ArrayLike | None = None,
    threshold: float = 0.5,
    n_bins: int = 15,
) -> dict[str, float]:
    """Every metric whose inputs are given, by name (see :data:`GREATER_IS_BETTER`).

    Always ``roc_auc``, ``average_precision``, ``brier``, ``log_loss`` and ``ece``;
    ``precision_at_capacity`` / ``recall_at_capacity`` with ``periods`` and ``k``;
    ``expected_cost`` with ``cost_fp`` and ``cost_fn``; ``card_precision_at_k`` with
    ``entity`` and ``days`` (k from ``k``, default 100).

    Examples
    --------
    >>> out = all_metrics([0.9, 0.2, 0.7, 0.1], [1, 0, 1, 0], periods=[1, 1, 2, 2], k=1,
    ...                   cost_fp=1.0, cost_fn=10.0)
    >>> out["roc_auc"], out["precision_at_capacity"], out["expected_cost"]
    (1.0, 1.0, 0.0)
    """
    s, y, _ = _inputs(scores, labels)
    out = {
        "roc_auc": roc_auc(s, y),
        "average_precision": average_precision(s, y),
        "brier": brier(s, y),
        "log_loss": log_loss(s, y),
        "ece": ece(s, y, n_bins=n_bins),
    }
    if periods is not None and k is not None:
        cap = precision_recall_at_capacity(s, y, periods, k)
        out["precision_at_capacity"] = cap.precision
        out["recall_at_capacity"] = cap.recall
    if cost_fp is not None and cost_fn is not None:
        out["expected_cost"] = expected_cost(s, y, cost_fp, cost_fn, threshold)
    if entity is not None and days is not None:
        out["card_precision_at_k"] = card_precision_at_k(s, y, days, entity,
                                                         k=100 if k is None else k).value
    return out
