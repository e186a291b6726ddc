"""Uplift metrics on a randomized history, with intervals that resample customers.

All metrics are oriented like the learners: the *benefit* of the action is the outcome it
prevents (control outcome rate minus treated outcome rate), so larger is better. Rows are
ranked by the uplift score, highest first (ties in the given row order). With ``k`` rows
taken, ``n_t(k)`` / ``n_c(k)`` treated / control rows and ``y_t(k)`` / ``y_c(k)`` outcomes
among them:

=========================  ================================================================
uplift at k                ``y_c(k) / n_c(k) - y_t(k) / n_t(k)``: what acting on the top k
                           changes per row (per period when ``periods`` are given: the top
                           k of each period, pooled)
gain (uplift) curve        ``G(k) = (n_t(k) + n_c(k)) * uplift(k)``: outcomes prevented by
                           acting on the top k (the "gain vs budget" curve)
Qini curve                 ``Q(k) = y_c(k) * n_t(k) / n_c(k) - y_t(k)``: outcomes prevented
                           among the treated of the top k (Radcliffe 2007)
Qini coefficient           area between the Qini curve and the random line (from 0 to
                           ``Q(n)``), both as fractions of rows ``k / n`` and outcomes per
                           row ``Q / n`` (trapezoid rule over every k): 0 for a random
                           ranking, positive when the ranking puts the persuadable first
AUUC                       the same area for the gain curve ``G(k) / n`` (above random)
=========================  ================================================================

Every metric accepts ``sample_weight`` (one weight per row), so
:func:`valuechain.evaluate.bootstrap.block_bootstrap` resamples whole *customers* (or
weeks): ``blocks`` = the customer key, and each row gets its customer's draw count as its
weight. Rows are never resampled one by one: a customer listed in several weeks moves as
one. :func:`curve_band` gives a curve with a pointwise interval from the same resamples.

>>> scores = [0.9, 0.8, 0.7, 0.6]
>>> treated = [1, 0, 1, 0]
>>> churned = [0, 1, 1, 0]
>>> uplift_at_k(scores, treated, churned, k=2)     # top 2: control 1/1 churn, treated 0/1
1.0
>>> [float(q) for q in qini_curve(scores, treated, churned)[1]]
[0.0, 0.0, 1.0, 1.0, 0.0]
>>> qini_coefficient(scores, treated, churned)
0.125
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from valuechain.errors import DataError
from valuechain.evaluate.bootstrap import Interval, block_bootstrap

__all__ = [
    "CurveBand",
    "auuc",
    "curve_band",
    "gain_curve",
    "qini_coefficient",
    "qini_curve",
    "uplift_at_k",
    "uplift_intervals",
]

F64 = npt.NDArray[np.float64]
NAN = float("nan")
Kind = Literal["qini", "gain"]


def _arrays(scores: npt.ArrayLike, treated: npt.ArrayLike, outcome: npt.ArrayLike,
            sample_weight: npt.ArrayLike | None) -> tuple[F64, F64, F64, F64]:
    s = np.asarray(scores, dtype=np.float64)
    t = np.asarray(treated, dtype=np.float64)
    y = np.asarray(outcome, dtype=np.float64)
    if not (s.ndim == 1 and s.shape == t.shape == y.shape):
        raise DataError(f"`scores` {s.shape}, `treated` {t.shape} and `outcome` {y.shape} "
                        "must be 1-D arrays of the same length.")
    if not np.all(np.isfinite(s)):
        raise DataError(f"{int(np.sum(~np.isfinite(s)))} uplift scores are NaN or infinite.")
    if not (np.isin(t, (0.0, 1.0)).all() and np.isin(y, (0.0, 1.0)).all()):
        raise DataError("`treated` and `outcome` must be 0/1.")
    w = np.ones_like(s) if sample_weight is None else np.asarray(sample_weight, np.float64)
    if w.shape != s.shape:
        raise DataError(f"`sample_weight` has shape {w.shape}, the scores {s.shape}.")
    return s, t, y, w


def _cumulative(s: F64, t: F64, y: F64, w: F64) -> tuple[F64, F64, F64, F64, F64]:
    """Cumulative n (weight), n_t, n_c, y_t, y_c down the ranking, starting at k = 0."""
    order = np.argsort(-s, kind="stable")
    w, t, y = w[order], t[order], y[order]

    def cum(v: F64) -> F64:
        return np.concatenate([[0.0], np.cumsum(v)])
    return cum(w), cum(w * t), cum(w * (1 - t)), cum(w * t * y), cum(w * (1 - t) * y)


def _ratio(a: F64, b: F64) -> F64:
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(b > 0, a / np.where(b > 0, b, 1.0), NAN)


def qini_curve(scores: npt.ArrayLike, treated: npt.ArrayLike, outcome: npt.ArrayLike,
               sample_weight: npt.ArrayLike | None = None) -> tuple[F64, F64]:
    """``(k, Q(k))`` for k = 0 .. n (weights add up as rows); Q(k) = 0 where ``n_c(k) = 0``.

    >>> k, q = qini_curve([3, 2, 1], [0, 1, 1], [1, 0, 1])
    >>> k.tolist(), q.tolist()
    ([0.0, 1.0, 2.0, 3.0], [0.0, 0.0, 1.0, 1.0])
    """
    n, n_t, n_c, y_t, y_c = _cumulative(*_arrays(scores, treated, outcome, sample_weight))
    q = np.nan_to_num(y_c * _ratio(n_t, n_c), nan=0.0) - y_t
    q[n_c <= 0] = 0.0
    return n, q


def gain_curve(scores: npt.ArrayLike, treated: npt.ArrayLike, outcome: npt.ArrayLike,
               sample_weight: npt.ArrayLike | None = None) -> tuple[F64, F64]:
    """``(k, G(k))`` for k = 0 .. n; G(k) = 0 until both groups are present.

    >>> k, g = gain_curve([3, 2, 1], [0, 1, 1], [1, 0, 1])
    >>> g.tolist()
    [0.0, 0.0, 2.0, 1.5]
    """
    n, n_t, n_c, y_t, y_c = _cumulative(*_arrays(scores, treated, outcome, sample_weight))
    g = n * (_ratio(y_c, n_c) - _ratio(y_t, n_t))
    return n, np.nan_to_num(g, nan=0.0)


def _area_above_random(k: F64, v: F64) -> float:
    total = k[-1]
    if total <= 0:
        return NAN
    x, yv = k / total, v / total
    area = float(np.sum((x[1:] - x[:-1]) * (yv[1:] + yv[:-1]) / 2.0))
    return area - float(yv[-1]) / 2.0


def qini_coefficient(scores: npt.ArrayLike, treated: npt.ArrayLike, outcome: npt.ArrayLike,
                     sample_weight: npt.ArrayLike | None = None) -> float:
    """Area between the Qini curve and the random line, in (fraction of rows) x (per row).

    >>> round(qini_coefficient([3, 2, 1], [0, 1, 1], [1, 0, 1]), 4)
    0.0
    """
    return _area_above_random(*qini_curve(scores, treated, outcome, sample_weight))


def auuc(scores: npt.ArrayLike, treated: npt.ArrayLike, outcome: npt.ArrayLike,
         sample_weight: npt.ArrayLike | None = None) -> float:
    """Area under the gain curve above the random line, per row (0 for a random ranking).

    >>> round(auuc([3, 2, 1], [0, 1, 1], [1, 0, 1]), 4)
    0.0556
    """
    return _area_above_random(*gain_curve(scores, treated, outcome, sample_weight))


def uplift_at_k(scores: npt.ArrayLike, treated: npt.ArrayLike, outcome: npt.ArrayLike,
                *, k: int | float, periods: npt.ArrayLike | None = None,
                sample_weight: npt.ArrayLike | None = None) -> float:
    """Control minus treated outcome rate among the top ``k`` rows (of each period).

    ``k`` >= 1 is a count of rows (per period); ``0 < k < 1`` a fraction of the rows (of each
    period). ``NaN`` when the top rows hold no treated or no control row.

    >>> uplift_at_k([0.9, 0.8, 0.7, 0.6], [1, 0, 1, 0], [0, 1, 1, 0], k=0.5)
    1.0
    >>> uplift_at_k([9, 8, 1, 2], [1, 0, 1, 0], [0, 1, 1, 1], k=1, periods=[1, 1, 2, 2])
    1.0
    """
    s, t, y, w = _arrays(scores, treated, outcome, sample_weight)
    if k <= 0:
        raise DataError(f"`k` must be a count >= 1 or a fraction in (0, 1), got {k}.")
    groups = np.zeros(len(s), dtype=np.int64) if periods is None else pd.factorize(
        np.asarray(periods))[0]
    totals = np.zeros(4)
    for g in np.unique(groups):
        rows = np.flatnonzero(groups == g)
        take = round(k * len(rows)) if k < 1 else int(k)
        top = rows[np.argsort(-s[rows], kind="stable")[:take]]
        tw, yw = w[top] * t[top], w[top] * y[top]
        totals += [tw.sum(), (w[top] - tw).sum(), (tw * y[top]).sum(), (yw - tw * y[top]).sum()]
    n_t, n_c, y_t, y_c = totals
    if n_t <= 0 or n_c <= 0:
        return NAN
    return float(y_c / n_c - y_t / n_t)


@dataclass(frozen=True)
class CurveBand:
    """A curve on a grid of fractions of rows, with a pointwise bootstrap interval.

    ``fraction`` (0 .. 1), ``value`` (outcomes prevented per row of the population, i.e.
    ``Q(k) / n`` or ``G(k) / n``), ``low`` / ``high`` (percentile interval of each point over
    the same customer resamples).
    """

    kind: Kind
    fraction: tuple[float, ...]
    value: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "fraction": list(self.fraction), "value": list(self.value),
                "low": list(self.low), "high": list(self.high)}


def _at_fraction(kind: Kind, fraction: float) -> Any:
    curve = qini_curve if kind == "qini" else gain_curve

    def metric(scores: F64, treated: F64, outcome: F64,
               sample_weight: F64 | None = None) -> float:
        k, v = curve(scores, treated, outcome, sample_weight)
        if k[-1] <= 0:
            return NAN
        return float(np.interp(fraction * k[-1], k, v) / k[-1])
    return metric


def curve_band(kind: Kind, scores: npt.ArrayLike, treated: npt.ArrayLike,
               outcome: npt.ArrayLike, blocks: npt.ArrayLike, *, points: int = 20,
               n_boot: int = 200, alpha: float = 0.05, seed: int = 0) -> CurveBand:
    """The Qini or gain curve at ``points`` fractions, each with a block-bootstrap interval.

    Every point uses the same resamples of ``blocks`` (the draws depend only on the seed,
    the number of blocks and ``n_boot``), so the band is one set of resampled curves.
    """
    s, t, y, _ = _arrays(scores, treated, outcome, None)
    grid = np.linspace(0.0, 1.0, points + 1)
    values, lows, highs = [], [], []
    for fraction in grid:
        if fraction == 0:
            values.append(0.0)
            lows.append(0.0)
            highs.append(0.0)
            continue
        iv = block_bootstrap(_at_fraction(kind, float(fraction)), blocks, s, t, y,
                             n_boot=n_boot, alpha=alpha, seed=seed)
        values.append(iv.value)
        lows.append(iv.low)
        highs.append(iv.high)
    return CurveBand(kind, tuple(float(g) for g in grid), tuple(values), tuple(lows),
                     tuple(highs))


def uplift_intervals(scores: npt.ArrayLike, treated: npt.ArrayLike, outcome: npt.ArrayLike,
                     blocks: npt.ArrayLike, *, k: int | float,
                     periods: npt.ArrayLike | None = None, n_boot: int = 200,
                     alpha: float = 0.05, seed: int = 0) -> dict[str, Interval]:
    """Qini coefficient, AUUC and uplift at ``k``, each with a block-bootstrap interval."""
    s, t, y, _ = _arrays(scores, treated, outcome, None)
    per = None if periods is None else np.asarray(periods)

    def at_k(scores: F64, treated: F64, outcome: F64,
             sample_weight: F64 | None = None) -> float:
        return uplift_at_k(scores, treated, outcome, k=k, periods=per,
                           sample_weight=sample_weight)

    def everyone(scores: F64, treated: F64, outcome: F64,
                 sample_weight: F64 | None = None) -> float:
        return uplift_at_k(scores, treated, outcome, k=len(scores), periods=None,
                           sample_weight=sample_weight)

    out = {}
    for name, fn in (("qini", qini_coefficient), ("auuc", auuc), ("uplift_at_k", at_k),
                     ("uplift_all", everyone)):
        out[name] = block_bootstrap(fn, blocks, s, t, y, n_boot=n_boot, alpha=alpha,
                                    seed=seed)
    return out
