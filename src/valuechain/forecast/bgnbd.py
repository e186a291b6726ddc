"""The BG/NBD model of repeat purchasing (Fader, Hardie & Lee 2005), in NumPy/SciPy.

While alive, a customer buys as a Poisson process of rate ``λ``; after each repeat purchase
they drop out for good with probability ``p``. Across customers ``λ ~ Gamma(r, α)`` (shape
``r``, rate ``α``) and ``p ~ Beta(a, b)``. The model is fitted by maximum likelihood on one
row per customer (:func:`rfm_summary`): ``frequency`` (repeat purchases in the calibration
period), ``recency`` (time of the last purchase since the first one) and ``T`` (time from the
first purchase to the end of calibration).

The RFM rule (``docs/forecast.md``): timestamps are reduced to their calendar day; several
purchases on one day count as one transaction (as Fader & Hardie do on CDNOW); the time of a
day is its day count from the customer's first purchase, in ``period`` units (weeks by
default: days / 7); purchases on the calibration end's own day belong to calibration, and
``T = (calibration_end - first day) / period``.

References
----------
P. S. Fader, B. G. S. Hardie and K. L. Lee (2005), "Counting Your Customers" the Easy Way: An
Alternative to the Pareto/NBD Model, Marketing Science 24(2), 275-284; and Fader & Hardie's
note "Implementing the BG/NBD Model for Customer Base Analysis in Excel" (2005), whose
CDNOW sample anchor is r = 0.243, α = 4.414, a = 0.793, b = 2.426, LL = -9582.4.

Examples
--------
>>> import pandas as pd
>>> buys = pd.DataFrame({"customer": ["a", "a", "a", "b"],
...                      "date": ["2024-01-01", "2024-01-15", "2024-01-15", "2024-01-08"]})
>>> rfm_summary(buys, customer="customer", time="date", calibration_end="2024-01-29")
          frequency  recency    T
customer
a               1.0      2.0  4.0
b               0.0      0.0  3.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy import optimize
from scipy.special import betaln, gammaln, hyp2f1

from valuechain.errors import DataError, ModelError

__all__ = [
    "BGNBD",
    "bgnbd_log_likelihood",
    "cumulative_tracking",
    "fit_bgnbd",
    "period_days",
    "rfm_summary",
]

FloatArray = npt.NDArray[np.float64]
ArrayLike = float | Sequence[float] | npt.NDArray[Any] | pd.Series


def period_days(period: str) -> float:
    """Length of a time unit in days: ``"D"`` -> 1, ``"W"`` -> 7, ``"14D"`` -> 14.

    Examples
    --------
    >>> period_days("W"), period_days("D"), period_days("2W")
    (7.0, 1.0, 14.0)
    """
    text = period.strip()
    try:
        delta = pd.Timedelta(text if text[:1].isdigit() else "1" + text)
    except (ValueError, TypeError) as exc:
        raise DataError(
            f"period={period!r}: expected a fixed length of time such as 'D', 'W' or '14D' "
            "(months and years have no fixed length); pass one of those"
        ) from exc
    days = delta / pd.Timedelta(days=1)
    if not days > 0 or days != math.floor(days):
        raise DataError(f"period={period!r}: expected a whole, positive number of days")
    return float(days)


def _days(values: pd.Series | Any, what: str) -> pd.Series:
    """Calendar days (midnight timestamps) of dates given as text, datetimes or 19970101."""
    series = values if isinstance(values, pd.Series) else pd.Series([values])
    try:
        if pd.api.types.is_integer_dtype(series):
            parsed = pd.to_datetime(series.astype("int64").astype(str), format="%Y%m%d")
        elif pd.api.types.is_datetime64_any_dtype(series):
            parsed = series
        else:
            try:
                parsed = pd.to_datetime(series)
            except ValueError:  # pandas infers one format from the first value; ISO mixes
                parsed = pd.to_datetime(series, format="ISO8601")
    except (ValueError, TypeError, OverflowError) as exc:
        raise DataError(
            f"{what}: cannot read the values as dates ({exc}); expected dates, datetimes or "
            "integers like 19970101"
        ) from exc
    if parsed.isna().any():
        raise DataError(f"{what}: {int(parsed.isna().sum())} missing date(s); drop or fill them")
    if getattr(parsed.dt, "tz", None) is not None:
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed.dt.normalize()


def rfm_summary(
    purchases: pd.DataFrame,
    *,
    customer: str,
    time: str,
    calibration_end: Any,
    period: str = "W",
    holdout_end: Any = None,
    origin: Any = None,
) -> pd.DataFrame:
    """One row per customer: repeat ``frequency``, ``recency`` and age ``T`` at calibration end.

    Parameters
    ----------
    purchases : DataFrame
        One row per purchase (extra columns are ignored).
    customer, time : str
        The customer id column and the purchase time column (dates, datetimes, or integers
        like ``19970101``; only the calendar day is used).
    calibration_end : date-like
        Last day of the calibration period (its purchases are included).
    period : str
        Time unit of ``recency`` and ``T``: ``"W"`` (weeks, the default), ``"D"``, ``"14D"``.
    holdout_end : date-like, optional
        Last day of a holdout period; adds ``frequency_holdout`` (purchase days in
        ``(calibration_end, holdout_end]``) and ``duration_holdout`` (its length in periods).
    origin : date-like, optional
        Adds ``first``: the first purchase's time in periods since ``origin`` (for
        :func:`cumulative_tracking`).

    Returns
    -------
    DataFrame
        Indexed by customer (sorted), float columns ``frequency`` (purchase days after the
        first one), ``recency`` (last purchase day minus the first, in periods; 0 without a
        repeat purchase) and ``T`` (calibration end minus the first day), plus the optional
        columns. Customers whose first purchase is after ``calibration_end`` are left out.

    Raises
    ------
    DataError
        A column is missing, dates cannot be read, or no customer bought by calibration end.

    Examples
    --------
    Two purchases on 15 January count once; the holdout purchase is counted apart:

    >>> import pandas as pd
    >>> buys = pd.DataFrame({"id": [1, 1, 1, 1], "day": [20240101, 20240115, 20240115,
    ...                                                  20240205]})
    >>> rfm_summary(buys, customer="id", time="day", calibration_end=20240129, period="D",
    ...             holdout_end="2024-02-26", origin="2024-01-01")
        frequency  recency     T  frequency_holdout  duration_holdout  first
    id
    1         1.0     14.0  28.0                1.0              28.0    0.0
    """
    for column in (customer, time):
        if column not in purchases.columns:
            raise DataError(
                f"purchases: no column {column!r} (columns: {list(purchases.columns)}); "
                "pass the names of the customer id and purchase time columns"
            )
    unit = period_days(period)
    end = _days(pd.Series([calibration_end]), "calibration_end").iloc[0]
    days = pd.DataFrame(
        {"customer": purchases[customer].to_numpy(), "day": _days(purchases[time], time)}
    ).drop_duplicates()
    first = days.groupby("customer")["day"].min()
    first = first[first <= end]
    if first.empty:
        raise DataError(
            f"purchases: no purchase on or before calibration_end {end.date()} "
            f"(column {time!r} spans {days['day'].min().date()}..{days['day'].max().date()})"
        )
    days = days[days["customer"].isin(first.index)]
    cal = days[days["day"] <= end]
    grouped = cal.groupby("customer")["day"]
    count = grouped.size().reindex(first.index)
    last = grouped.max().reindex(first.index)
    out = pd.DataFrame(index=first.index)
    out.index.name = customer
    out["frequency"] = (count - 1).astype(float)
    out["recency"] = (last - first).dt.days.astype(float) / unit
    out["T"] = (end - first).dt.days.astype(float) / unit
    if holdout_end is not None:
        hend = _days(pd.Series([holdout_end]), "holdout_end").iloc[0]
        if hend <= end:
            raise DataError(
                f"holdout_end {hend.date()} is not after calibration_end {end.date()}; "
                "pass a later holdout_end"
            )
        hold = days[(days["day"] > end) & (days["day"] <= hend)]
        out["frequency_holdout"] = (
            hold.groupby("customer").size().reindex(first.index, fill_value=0).astype(float)
        )
        out["duration_holdout"] = float((hend - end).days) / unit
    if origin is not None:
        start = _days(pd.Series([origin]), "origin").iloc[0]
        out["first"] = (first - start).dt.days.astype(float) / unit
    return out.sort_index()


def _columns(summary: pd.DataFrame) -> tuple[FloatArray, FloatArray, FloatArray]:
    missing = [c for c in ("frequency", "recency", "T") if c not in summary.columns]
    if missing:
        raise DataError(
            f"summary: missing column(s) {missing}; expected frequency, recency, T "
            "(make it with valuechain.forecast.bgnbd.rfm_summary)"
        )
    x, tx, big_t = (summary[c].to_numpy(dtype=float) for c in ("frequency", "recency", "T"))
    bad = (
        ~np.isfinite(x) | ~np.isfinite(tx) | ~np.isfinite(big_t)
        | (x < 0) | (tx < 0) | (tx > big_t + 1e-9) | ((x == 0) & (tx != 0)) | ((x > 0) & (tx <= 0))
    )
    if bad.any():
        raise DataError(
            f"summary: {int(bad.sum())} row(s) with impossible values (need frequency >= 0, "
            "0 < recency <= T when frequency > 0, recency = 0 when frequency = 0); "
            f"first bad row: {summary.index[np.flatnonzero(bad)[0]]!r}"
        )
    return x, tx, big_t


def bgnbd_log_likelihood(
    r: float, alpha: float, a: float, b: float,
    frequency: ArrayLike, recency: ArrayLike, T: ArrayLike,
) -> FloatArray:
    """Per-customer BG/NBD log-likelihood (Fader, Hardie & Lee 2005, equation 6).

    ``ln L = ln Γ(r+x) - ln Γ(r) + r ln α + ln(A1 + A2)`` with
    ``A1 = B(a, b+x)/B(a, b) · (α+T)^-(r+x)`` and, for ``x > 0``,
    ``A2 = B(a+1, b+x-1)/B(a, b) · (α+t_x)^-(r+x)``; the sum is taken in logs
    (``logaddexp``) so large ``x`` does not underflow.

    Examples
    --------
    A customer with no repeat purchase: ``L = (α / (α+T))^r``.

    >>> float(bgnbd_log_likelihood(1.0, 2.0, 1.0, 1.0, [0], [0], [2])[0])  # ln(2/4)
    -0.693...
    """
    x = np.asarray(frequency, dtype=float)
    tx = np.asarray(recency, dtype=float)
    big_t = np.asarray(T, dtype=float)
    common = gammaln(r + x) - gammaln(r) + r * np.log(alpha) - betaln(a, b)
    term1 = betaln(a, b + x) - (r + x) * np.log(alpha + big_t)
    repeat = x > 0
    term2 = np.full_like(term1, -np.inf)
    xr = x[repeat]
    term2[repeat] = betaln(a + 1.0, b + xr - 1.0) - (r + xr) * np.log(alpha + tx[repeat])
    return np.asarray(common + np.logaddexp(term1, term2), dtype=float)


@dataclass(frozen=True)
class BGNBD:
    """A fitted BG/NBD model: ``λ ~ Gamma(r, α)``, ``p ~ Beta(a, b)``.

    Times are in the summary's period (weeks by default).

    Attributes
    ----------
    r, alpha, a, b : float
        The maximum-likelihood parameters.
    log_likelihood : float
        The total log-likelihood at the optimum.
    n : int
        Number of customers fitted on.

    Examples
    --------
    >>> m = BGNBD(r=0.243, alpha=4.414, a=0.793, b=2.426, log_likelihood=float("nan"), n=0)
    >>> round(float(m.expected_transactions(39)), 4), float(m.expected_transactions(0))
    (1.1967, 0.0)
    >>> float(m.probability_alive(0, 0, 30))
    1.0
    """

    r: float
    alpha: float
    a: float
    b: float
    log_likelihood: float
    n: int

    def expected_transactions(self, t: ArrayLike) -> FloatArray:
        """``E[X(t)]``: expected repeat purchases in ``(0, t]`` after a first purchase at 0.

        ``(a+b-1)/(a-1) · [1 - (α/(α+t))^r · 2F1(r, b; a+b-1; t/(α+t))]`` (equation 9).

        Examples
        --------
        >>> m = BGNBD(r=1.0, alpha=1.0, a=2.0, b=3.0, log_likelihood=0.0, n=0)
        >>> [round(float(v), 4) for v in m.expected_transactions([0, 1, 10])]
        [0.0, 0.7..., ...]
        """
        t_arr = np.maximum(np.asarray(t, dtype=float), 0.0)
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        z = t_arr / (alpha + t_arr)
        value = (a + b - 1.0) / (a - 1.0) * (
            1.0 - (alpha / (alpha + t_arr)) ** r * hyp2f1(r, b, a + b - 1.0, z)
        )
        return np.asarray(np.where(t_arr > 0, value, 0.0), dtype=float)

    def probability_alive(
        self, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """``P(alive | x, t_x, T)`` (equation 11); exactly 1 when ``x = 0``.

        ``1 / (1 + δ(x>0) · a/(b+x-1) · ((α+T)/(α+t_x))^(r+x))``.

        Examples
        --------
        >>> m = BGNBD(r=1.0, alpha=1.0, a=1.0, b=2.0, log_likelihood=0.0, n=0)
        >>> # odds of being gone: a/(b+x-1) * ((α+T)/(α+t_x))^(r+x) = 1/2 * (4/2)^2 = 2
        >>> [round(float(v), 4) for v in m.probability_alive([0, 1], [0, 1], [3, 3])]
        [1.0, 0.3333]
        """
        x = np.asarray(frequency, dtype=float)
        tx = np.asarray(recency, dtype=float)
        big_t = np.asarray(T, dtype=float)
        return np.asarray(1.0 / (1.0 + self._odds_dead(x, tx, big_t)), dtype=float)

    def _odds_dead(self, x: FloatArray, tx: FloatArray, big_t: FloatArray) -> FloatArray:
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        safe_b = np.where(x > 0, b + x - 1.0, 1.0)
        log_odds = (
            np.log(a) - np.log(safe_b)
            + (r + x) * (np.log(alpha + big_t) - np.log(alpha + tx))
        )
        return np.asarray(np.where(x > 0, np.exp(log_odds), 0.0), dtype=float)

    def conditional_expected(
        self, t: ArrayLike, frequency: ArrayLike, recency: ArrayLike, T: ArrayLike
    ) -> FloatArray:
        """``E[Y(t) | x, t_x, T]``: expected purchases in ``(T, T+t]`` given the history.

        ``(a+b+x-1)/(a-1) · [1 - ((α+T)/(α+T+t))^(r+x) · 2F1(r+x, b+x; a+b+x-1;
        t/(α+T+t))] / (1 + δ(x>0) · a/(b+x-1) · ((α+T)/(α+t_x))^(r+x))`` (equation 10).

        Examples
        --------
        With no history (``x = t_x = T = 0``) it is ``E[X(t)]``:

        >>> m = BGNBD(r=0.243, alpha=4.414, a=0.793, b=2.426, log_likelihood=0.0, n=0)
        >>> bool(abs(m.conditional_expected(39, 0, 0, 0) - m.expected_transactions(39)) < 1e-9)
        True
        """
        t_arr = np.maximum(np.asarray(t, dtype=float), 0.0)
        x = np.asarray(frequency, dtype=float)
        tx = np.asarray(recency, dtype=float)
        big_t = np.asarray(T, dtype=float)
        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        z = t_arr / (alpha + big_t + t_arr)
        part = 1.0 - ((alpha + big_t) / (alpha + big_t + t_arr)) ** (r + x) * hyp2f1(
            r + x, b + x, a + b + x - 1.0, z
        )
        value = (a + b + x - 1.0) / (a - 1.0) * part / (1.0 + self._odds_dead(x, tx, big_t))
        return np.asarray(np.where(t_arr > 0, value, 0.0), dtype=float)


def fit_bgnbd(summary: pd.DataFrame) -> BGNBD:
    """Maximum-likelihood BG/NBD parameters for an RFM summary.

    The log-likelihood (:func:`bgnbd_log_likelihood`) is summed over the distinct
    ``(frequency, recency, T)`` rows, weighted by their counts, and maximised over the
    log-parameters (L-BFGS-B, then Nelder-Mead to polish).

    Parameters
    ----------
    summary : DataFrame
        Columns ``frequency``, ``recency``, ``T`` (from :func:`rfm_summary`).

    Raises
    ------
    DataError
        Missing columns or impossible rows (``recency > T``, ...), or no repeat purchase at
        all (the dropout process cannot be estimated).
    ModelError
        The optimiser did not converge to finite parameters.

    Examples
    --------
    >>> import pandas as pd
    >>> s = pd.DataFrame({"frequency": [0, 1, 2, 0, 3, 1], "recency": [0, 5, 8, 0, 9, 2],
    ...                   "T": [10, 10, 10, 9, 10, 8]})
    >>> m = fit_bgnbd(s)
    >>> m.n
    6
    >>> m.log_likelihood >= float(bgnbd_log_likelihood(1, 1, 1, 1, s.frequency,
    ...                                                  s.recency, s["T"]).sum())
    True
    """
    x, tx, big_t = _columns(summary)
    if len(x) == 0:
        raise DataError("summary: no customers; fit_bgnbd needs at least one row")
    if not (x > 0).any():
        raise DataError(
            "summary: no customer made a repeat purchase (every frequency is 0); the BG/NBD "
            "purchase and dropout rates cannot be estimated — use a longer calibration period"
        )
    rows, counts = np.unique(np.column_stack([x, tx, big_t]), axis=0, return_counts=True)
    ux, utx, ut = rows[:, 0], rows[:, 1], rows[:, 2]
    weights = counts.astype(float)

    def negative(theta: FloatArray) -> float:
        r, alpha, a, b = np.exp(np.clip(theta, -30.0, 30.0))
        ll = bgnbd_log_likelihood(r, alpha, a, b, ux, utx, ut)
        value = -float(np.dot(weights, ll))
        return value if math.isfinite(value) else 1e300

    start = np.array([0.0, math.log(max(float(np.mean(big_t)), 1e-6)) - 1.0, 0.0, 0.0])
    first = optimize.minimize(negative, start, method="L-BFGS-B", bounds=[(-20.0, 20.0)] * 4)
    best = optimize.minimize(
        negative, first.x, method="Nelder-Mead",
        options={"xatol": 1e-9, "fatol": 1e-11, "maxiter": 20_000, "maxfev": 40_000},
    )
    params = np.exp(best.x)
    value = -float(best.fun)
    if not (np.all(np.isfinite(params)) and math.isfinite(value)) or value <= -1e299:
        raise ModelError(
            f"BG/NBD fit did not converge ({best.message}); check the summary's time unit "
            "(recency and T in weeks work well) and that customers have repeat purchases"
        )
    r, alpha, a, b = (float(v) for v in params)
    return BGNBD(r=r, alpha=alpha, a=a, b=b, log_likelihood=value, n=len(x))


def cumulative_tracking(model: BGNBD, first: ArrayLike, times: ArrayLike) -> FloatArray:
    """Expected cumulative repeat purchases of a cohort at each time in ``times``.

    Customer ``i`` (first purchase at ``first[i]``, in periods since a common origin)
    contributes ``E[X(max(0, t - first[i]))]``; the result sums over customers for each ``t``
    (in the same periods since the origin). Each distinct first time is evaluated once.

    Examples
    --------
    >>> m = BGNBD(r=1.0, alpha=1.0, a=2.0, b=3.0, log_likelihood=0.0, n=2)
    >>> got = cumulative_tracking(m, [0.0, 2.0], [0.0, 2.0, 5.0])
    >>> want = [0.0, m.expected_transactions(2.0)[()],
    ...         (m.expected_transactions(5.0) + m.expected_transactions(3.0))[()]]
    >>> bool(np.allclose(got, want))
    True
    """
    starts, counts = np.unique(np.asarray(first, dtype=float).ravel(), return_counts=True)
    when = np.atleast_1d(np.asarray(times, dtype=float))
    ages = when[:, None] - starts[None, :]
    expected = model.expected_transactions(np.maximum(ages, 0.0))
    return np.asarray(expected @ counts.astype(float), dtype=float)
