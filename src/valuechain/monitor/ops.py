"""Operations per window: action mix, review queue vs capacity, overflow, latency, volume.

Every figure comes from the decisions table (:func:`~valuechain.monitor.inputs.read_decisions`)
and is returned in the signals format (section ``ops``), one row per window and metric:

==========================  ========  =======================================================
metric                      subject   value
==========================  ========  =======================================================
``<action>_rate``           action    share of the window's decisions with that action
                                      (``approve_rate``, ``review_rate``, ...), with a 95 %
                                      Wilson interval in ``lower``/``upper``
``queue_count``             action    decisions with the capacity-limited action
``queue_limit``             action    the capacity over the window (limit x periods in it)
``queue_fill``              action    ``queue_count / queue_limit``
``days_at_limit``           action    capacity periods of the window whose queue reached the
                                      limit (the queue was full that day)
``overflow_share``          ""        share of decisions where the overflow rule applied
                                      (Wilson interval)
``latency_p50_ms`` ...      ""        p50 / p95 / p99 of ``latency_ms`` over online decisions
                                      (batch rows have no latency: ``n`` counts the others)
``volume``                  ""        decisions in the window (windows without any are 0)
``volume_z``                ""        robust z-score of the volume against the trailing
                                      windows: ``(v - median) / max(1.4826 * MAD,
                                      sqrt(median), 1)``
==========================  ========  =======================================================

The MAD is scaled by 1.4826 so that it estimates the standard deviation of normal data; its
floor ``sqrt(median)`` (the Poisson standard deviation of a count) keeps a perfectly steady
history (MAD 0) from turning any small change into an infinite z. ``volume_z`` is
``insufficient`` until ``min_history`` trailing windows exist; rates and latencies are
``insufficient`` below ``min_samples`` decisions.

>>> import pandas as pd
>>> day = 86_400_000_000
>>> table = pd.DataFrame({"time_us": [0, 1, day], "action": ["approve", "review", "review"],
...                       "overflow": [False, False, True], "latency_ms": [1.0, 2.0, 3.0]})
>>> s = ops_signals(table, window_us=day, capacity=("review", 1, day, "approve"),
...                 min_samples=1)
>>> s[s.metric == "review_rate"]["value"].tolist()
[0.5, 1.0]
"""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from valuechain.monitor.inputs import times_us, window_index, window_signals
from valuechain.policy.capacity import PERIOD_ANCHOR_US, capacity_period

__all__ = ["MIN_HISTORY", "MIN_SAMPLES", "ops_signals", "robust_z", "wilson"]

#: Fewer decisions than this in a window: its rates and latencies are ``insufficient``.
MIN_SAMPLES: Final = 100
#: Trailing windows the volume z-score needs (and, by default, uses at most 4x as many).
MIN_HISTORY: Final = 7
_Z95: Final = 1.959963984540054


def wilson(successes: npt.ArrayLike, n: npt.ArrayLike, z: float = _Z95
           ) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """Wilson score interval of a proportion (NaN where ``n`` is 0).

    >>> lo, hi = wilson([5], [10])
    >>> round(float(lo[0]), 4), round(float(hi[0]), 4)
    (0.2366, 0.7634)
    """
    k = np.asarray(successes, dtype=np.float64)
    m = np.asarray(n, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = k / m
        denom = 1 + z * z / m
        centre = (p + z * z / (2 * m)) / denom
        half = z * np.sqrt(p * (1 - p) / m + z * z / (4 * m * m)) / denom
    lo = np.where(m > 0, np.clip(centre - half, 0.0, 1.0), np.nan)
    hi = np.where(m > 0, np.clip(centre + half, 0.0, 1.0), np.nan)
    return lo, hi


def robust_z(values: npt.ArrayLike, *, trailing: int = 4 * MIN_HISTORY,
             min_history: int = MIN_HISTORY) -> npt.NDArray[np.float64]:
    """Robust z-score of each value against up to ``trailing`` values before it.

    ``(v - median) / max(1.4826 * MAD, sqrt(median), 1)``; NaN with fewer than
    ``min_history`` values before it.

    >>> robust_z([100, 102, 98, 101, 99, 100, 100, 160], min_history=7).round(2).tolist()[-1]
    6.0
    """
    v = np.asarray(values, dtype=np.float64)
    out = np.full(len(v), np.nan)
    for i in range(len(v)):
        history = v[max(0, i - trailing):i]
        if len(history) < min_history:
            continue
        median = float(np.median(history))
        mad = 1.4826 * float(np.median(np.abs(history - median)))
        scale = max(mad, float(np.sqrt(max(median, 0.0))), 1.0)
        out[i] = (v[i] - median) / scale
    return out


def ops_signals(decisions: pd.DataFrame, *, window_us: int,
                capacity: tuple[str, int, int, str] | None,
                min_samples: int = MIN_SAMPLES, min_history: int = MIN_HISTORY
                ) -> pd.DataFrame:
    """Operational signals per window (metrics: module docstring).

    Parameters
    ----------
    decisions : DataFrame
        At least ``time_us`` (or ``time``) and ``action``; ``overflow`` and ``latency_ms``
        when present.
    window_us : int
        Window length in µs; windows are capacity periods (anchor Monday 1970-01-05 UTC),
        every window between the first and the last decision included (volume 0 when empty).
    capacity : tuple or None
        ``(action, limit, per_us, overflow)`` as :attr:`Bundle.capacity
        <valuechain.registry.bundle.Bundle.capacity>`; None: no queue metrics.
    min_samples, min_history : int
        See the module docstring.
    """
    t_us = times_us(decisions)
    if len(t_us) == 0:
        return window_signals([])
    index = window_index(decisions, window_us)
    first, last = int(index.min()), int(index.max())
    windows = np.arange(first, last + 1, dtype=np.int64)
    codes = (index - first).astype(np.int64)
    n_win = len(windows)
    counts = np.bincount(codes, minlength=n_win)
    rows: list[dict[str, Any]] = []

    def add(metric: str, subject: str, values: npt.ArrayLike, n: npt.ArrayLike,
            lower: npt.ArrayLike | None = None, upper: npt.ArrayLike | None = None,
            status: list[str] | None = None) -> None:
        vals, ns = np.asarray(values, dtype=np.float64), np.asarray(n, dtype=np.int64)
        lo = np.full(n_win, np.nan) if lower is None else np.asarray(lower, dtype=np.float64)
        hi = np.full(n_win, np.nan) if upper is None else np.asarray(upper, dtype=np.float64)
        for w in range(n_win):
            rows.append({"window": int(windows[w]), "window_us": window_us, "section": "ops",
                         "metric": metric, "subject": subject, "value": float(vals[w]),
                         "lower": float(lo[w]), "upper": float(hi[w]), "n": int(ns[w]),
                         "status": status[w] if status is not None else (
                             "ok" if ns[w] >= min_samples else "insufficient")})

    with np.errstate(divide="ignore", invalid="ignore"):
        actions = decisions["action"].astype(str).to_numpy(dtype=object)
        for name in sorted(set(actions)):
            hits = np.bincount(codes, weights=(actions == name).astype(np.float64),
                               minlength=n_win)
            lo, hi = wilson(hits, counts)
            add(f"{name}_rate", name, np.where(counts > 0, hits / counts, np.nan), counts,
                lo, hi)
        if capacity is not None:
            action, limit, per_us, _ = capacity
            limited = actions == action
            queue = np.bincount(codes, weights=limited.astype(np.float64), minlength=n_win)
            periods_in = max(1.0, window_us / per_us)
            cap = np.full(n_win, float(limit) * periods_in)
            add("queue_count", action, queue, counts)
            add("queue_limit", action, cap, counts)
            add("queue_fill", action, np.where(cap > 0, queue / cap, np.nan), counts)
            # capacity periods at the limit, counted in the window that holds their start
            period = capacity_period(t_us[limited], int(per_us))
            full = np.zeros(n_win)
            if len(period):
                uniq, per_count = np.unique(period, return_counts=True)
                at_limit = uniq[per_count >= limit]
                starts = capacity_period(PERIOD_ANCHOR_US + at_limit * int(per_us), window_us)
                np.add.at(full, (starts - first)[(starts >= first) & (starts <= last)], 1)
            add("days_at_limit", action, full, counts, status=["ok"] * n_win)
        if "overflow" in decisions.columns:
            over = np.bincount(codes, weights=decisions["overflow"].to_numpy(
                dtype=np.float64), minlength=n_win)
            lo, hi = wilson(over, counts)
            add("overflow_share", "", np.where(counts > 0, over / counts, np.nan), counts,
                lo, hi)
        if "latency_ms" in decisions.columns:
            latency = decisions["latency_ms"].to_numpy(dtype=np.float64, na_value=np.nan)
            has = ~np.isnan(latency)
            n_lat = np.bincount(codes[has], minlength=n_win)
            order = np.lexsort((latency[has], codes[has]))
            sorted_lat = latency[has][order]
            bounds = np.concatenate([[0], np.cumsum(n_lat)])
            for q in (50, 95, 99):
                values = np.array([np.percentile(sorted_lat[bounds[w]:bounds[w + 1]], q)
                                   if n_lat[w] else np.nan for w in range(n_win)])
                add(f"latency_p{q}_ms", "", values, n_lat)
    add("volume", "", counts, counts, status=["ok"] * n_win)
    z = robust_z(counts, min_history=min_history)
    add("volume_z", "", z, counts,
        status=["insufficient" if np.isnan(v) else "ok" for v in z])
    return window_signals(rows)
