"""Repeat purchases per period on non-contractual data: the series and the BG/NBD forecast.

On purchase data without subscriptions (CDNOW) "churn" is never observed; the aggregate a
planner needs is the number of repeat purchases per week. :func:`repeat_purchase_series`
counts them (one per customer-day, as :func:`~valuechain.forecast.bgnbd.rfm_summary` does;
the first purchase of each customer is not a repeat one); :func:`bgnbd_forecaster` is a
:data:`~valuechain.forecast.backtest.Forecaster` that, at each origin, fits BG/NBD on the
purchases made before it and forecasts each later period as the difference of the summed
conditional expectations ``Σ_i E[Y_i(s) | x_i, t_xi, T_i]`` at the period's end and start.
It sees only purchases before the origin, like every other forecaster of the backtest.

BG/NBD forecasts the customers already acquired at the origin: on a closed cohort (CDNOW's
customers all made their first purchase in 1997 Q1) that is everyone; with customers still
arriving it undercounts by their repeat purchases.

>>> import pandas as pd
>>> buys = pd.DataFrame({"id": [1, 1, 1, 2, 2],
...                      "day": ["2024-01-01", "2024-01-01", "2024-01-09", "2024-01-02",
...                              "2024-01-20"]})
>>> s = repeat_purchase_series(buys, customer="id", time="day", start="2024-01-01",
...                            end="2024-01-28")
>>> s["repeats"].tolist()
[0.0, 1.0, 1.0, 0.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from valuechain.errors import DataError
from valuechain.forecast.backtest import (
    Forecaster,
    backtest_metrics,
    points_frame,
    series_backtest,
    series_forecaster,
)
from valuechain.forecast.bgnbd import _days, fit_bgnbd, period_days, rfm_summary

__all__ = ["PurchaseForecast", "bgnbd_forecaster", "purchase_forecast",
           "repeat_purchase_series"]

F64 = npt.NDArray[np.float64]


def _purchase_days(purchases: pd.DataFrame, customer: str, time: str) -> pd.DataFrame:
    for column in (customer, time):
        if column not in purchases.columns:
            raise DataError(f"purchases: no column {column!r} (columns: "
                            f"{list(purchases.columns)}); pass the customer and time columns")
    return pd.DataFrame({"customer": purchases[customer].to_numpy(),
                         "day": _days(purchases[time], time)}).drop_duplicates()


def repeat_purchase_series(purchases: pd.DataFrame, *, customer: str, time: str, start: Any,
                           end: Any, period: str = "W") -> pd.DataFrame:
    """Repeat purchases (customer-days after each customer's first) per period.

    Periods are ``[start + k·period, start + (k+1)·period)`` up to ``end`` (inclusive day);
    each value is known at its period's end. Returns columns ``time`` (period start),
    ``repeats`` and ``known_at``.
    """
    days = _purchase_days(purchases, customer, time)
    unit = pd.Timedelta(days=period_days(period))
    begin = _days(pd.Series([start]), "start").iloc[0]
    stop = _days(pd.Series([end]), "end").iloc[0] + pd.Timedelta(days=1)
    if stop <= begin:
        raise DataError(f"end {end!r} is before start {start!r}; pass a later end")
    days = days.sort_values(["customer", "day"])
    repeats = days[days.duplicated("customer")]["day"]
    count = int(np.ceil((stop - begin) / unit))
    starts = begin + unit * np.arange(count)
    which = ((repeats - begin) // unit).to_numpy()
    which = which[(which >= 0) & (which < count) & (repeats < stop).to_numpy()]
    values = np.bincount(which.astype(np.int64), minlength=count).astype(float)
    return pd.DataFrame({"time": starts, "repeats": values, "known_at": starts + unit})


def bgnbd_forecaster(purchases: pd.DataFrame, *, customer: str, time: str,
                     period: str = "W") -> Forecaster:
    """A forecaster fitting BG/NBD on the purchases before each origin.

    The origin is the end of the last known period of the history it is given
    (``history.index[-1] + period``); calibration ends the day before. Step ``s`` is the
    period ``(s-1, s]`` periods after the origin; its forecast is
    ``Σ_i E[Y_i(s)] - Σ_i E[Y_i(s-1)]``. The interval is the forecast ± 1.645 √forecast (a
    Poisson approximation: BG/NBD gives a mean, not a distribution of the total).
    """
    days = _purchase_days(purchases, customer, time)
    unit = pd.Timedelta(days=period_days(period))

    def run(history: pd.Series, steps: Sequence[int]) -> tuple[F64, F64, F64]:
        origin = pd.Timestamp(history.index[-1]) + unit
        before = days[days["day"] < origin]
        summary = rfm_summary(before, customer="customer", time="day",
                              calibration_end=origin - pd.Timedelta(days=1), period=period)
        model = fit_bgnbd(summary)
        s = np.asarray(steps, dtype=float)
        x, tx, big_t = summary["frequency"], summary["recency"], summary["T"]
        # day d is at time (d - first) / period: the days of period s after the origin are
        # the times (T + s - 1, T + s]
        cumulative = {v: float(model.conditional_expected(v, x, tx, big_t).sum())
                      for v in {*s, *(s - 1)}}
        point = np.array([cumulative[v] - cumulative[v - 1] for v in s])
        half = 1.6448536 * np.sqrt(np.maximum(point, 0.0))
        return point, np.maximum(point - half, 0.0), point + half

    return run


@dataclass(frozen=True)
class PurchaseForecast:
    """Repeat purchases per period: the series, every forecast point, the backtest errors.

    ``origins`` are the backtest origins (every target known) and ``latest_origin`` the
    start of the first period not complete at ``as_of`` (its forecasts are pending).
    """

    series: pd.DataFrame
    points: pd.DataFrame
    metrics: pd.DataFrame
    origins: tuple[pd.Timestamp, ...]
    latest_origin: pd.Timestamp


def purchase_forecast(purchases: pd.DataFrame, *, customer: str, time: str, as_of: Any,
                      period: str = "7D", origins: int = 8, horizon: int = 4,
                      methods: Sequence[str] = ("bgnbd", "seasonal_naive", "ets", "arima"),
                      season: int = 52, level: float = 0.9) -> PurchaseForecast:
    """Backtest and forecast repeat purchases per period from a purchase log.

    Periods start on the first purchase day and are ``period`` long; a period is known at
    its end. The backtest origins are the latest ``origins`` period starts whose ``horizon``
    following periods are all complete by ``as_of``; the latest origin (the first period
    not complete) forecasts the ``horizon`` periods from it (pending, never scored).

    Raises
    ------
    DataError
        Too few complete periods for the origins and horizon asked for.
    """
    days = _purchase_days(purchases, customer, time)
    start = days["day"].min()
    end = _days(pd.Series([as_of]), "as_of").iloc[0]
    series = repeat_purchase_series(purchases, customer=customer, time=time, start=start,
                                    end=end, period=period)
    unit = pd.Timedelta(days=period_days(period))
    extracted = pd.Timestamp(as_of)
    complete = int((series["known_at"] <= extracted).sum())
    first = complete - horizon - origins + 1
    if first < 2:
        raise DataError(
            f"purchases: {complete} complete periods of {period} from {start.date()} to "
            f"{end.date()}; {origins} origins {horizon} periods ahead need at least "
            f"{origins + horizon + 1}. Use fewer origins or a shorter horizon")
    extra = pd.DataFrame({"time": series["time"].iloc[-1] + unit * np.arange(1, horizon + 1)})
    extra["repeats"] = np.nan
    extra["known_at"] = extra["time"] + unit
    series = pd.concat([series, extra], ignore_index=True)
    series.loc[series["known_at"] > extracted, "repeats"] = np.nan
    values = pd.Series(series["repeats"].to_numpy(dtype=float),
                       index=pd.DatetimeIndex(series["time"]))
    known = pd.DatetimeIndex(series["known_at"])
    forecasters: dict[str, Forecaster] = {}
    for method in methods:
        if method == "bgnbd":
            forecasters[method] = bgnbd_forecaster(purchases, customer=customer, time=time,
                                                   period=period)
        else:
            forecasters[method] = series_forecaster(method, season=season, level=level)
    backtest = tuple(pd.Timestamp(t) for t in series["time"].iloc[first:first + origins])
    latest = pd.Timestamp(series["time"].iloc[complete])
    points = points_frame(series_backtest(values, known, [*backtest, latest], horizon,
                                          forecasters, as_of=extracted))
    return PurchaseForecast(series=series, points=points, metrics=backtest_metrics(points),
                            origins=backtest, latest_origin=latest)
