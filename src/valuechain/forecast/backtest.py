"""Rolling-origin backtests of aggregate forecasts, and the errors finance cares about.

A *series* is one count per period (churners of the customers active at each Monday,
repeat purchases per week), indexed by the period's time, with the time each value becomes
*known* (a Monday's 30-day churn count is known 30 days later; a week's purchases at the
week's end). At each *origin* a forecaster sees only the values known by then
(:func:`known_history`) and forecasts the next ``horizon`` periods from the first one at or
after the origin. Values not yet known at the time the data was extracted are *pending*:
forecast, never scored.

:func:`backtest_metrics` summarises the points per method and step ahead:

- ``mae`` (mean absolute error), ``mape`` (mean absolute percentage error, actuals of zero
  left out), ``mase`` (absolute error scaled by the mean absolute one-step change of the
  history known at the origin: below 1 beats the naive forecast's typical in-sample error);
- ``bias``: mean of forecast minus actual (positive: too high), also in % of the mean actual;
- ``coverage``: share of actuals inside the prediction interval (compare with its level);
- ``revision``: mean absolute change of the forecast of the *same* target period between
  consecutive origins (the forecast's stability: a number that jumps every week is hard to
  plan with), in % of the mean actual as ``revision_pct``.

>>> import pandas as pd, numpy as np
>>> times = pd.date_range("2025-01-06", periods=10, freq="7D")
>>> y = pd.Series(np.arange(10.0), index=times)
>>> known = known_history(y, y.index + pd.Timedelta(days=7), times[5])
>>> known.tolist()
[0.0, 1.0, 2.0, 3.0, 4.0]
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from valuechain.errors import DataError
from valuechain.forecast.series import forecast_series

__all__ = [
    "ForecastPoint",
    "Forecaster",
    "backtest_metrics",
    "known_history",
    "points_frame",
    "series_backtest",
    "series_forecaster",
]

F64 = npt.NDArray[np.float64]
#: ``forecaster(history, steps)`` -> (point, low, high), one value per step.
Forecaster = Callable[[pd.Series, Sequence[int]], tuple[F64, F64, F64]]


@dataclass(frozen=True)
class ForecastPoint:
    """One forecast of one target period from one origin.

    ``actual`` is NaN while the target's value is pending (not known when the data was
    extracted); ``scale`` is the MASE denominator computed from the history known at the
    origin.
    """

    method: str
    origin: datetime
    target: datetime
    step: int
    forecast: float
    low: float
    high: float
    actual: float
    scale: float = float("nan")

    @property
    def pending(self) -> bool:
        """True when the actual is not known yet."""
        return bool(np.isnan(self.actual))

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["origin"], out["target"] = self.origin.isoformat(), self.target.isoformat()
        for key in ("forecast", "low", "high", "actual", "scale"):
            value = out[key]
            out[key] = None if value is None or not np.isfinite(value) else float(value)
        return out


def known_history(series: pd.Series, known_at: pd.Index | pd.Series, origin: Any) -> pd.Series:
    """The values of ``series`` known at ``origin`` (``known_at <= origin``), oldest first.

    Raises :class:`DataError` when the known values are not one unbroken run from the
    start (a gap would shift every later step).
    """
    when = pd.DatetimeIndex(known_at)
    if len(when) != len(series):
        raise DataError(f"known_at has {len(when)} times for {len(series)} values")
    mask = np.asarray(when <= pd.Timestamp(origin))
    idx = np.flatnonzero(mask)
    if len(idx) and idx[-1] != len(idx) - 1:
        raise DataError("the values known at an origin are not the first ones of the series "
                        "(a later period became known before an earlier one); sort the "
                        "series by period and give each value the time it becomes known")
    return series.iloc[: len(idx)]


def _scale(history: pd.Series) -> float:
    values = history.to_numpy(dtype=np.float64)
    if len(values) < 2:
        return float("nan")
    scale = float(np.mean(np.abs(np.diff(values))))
    return scale if scale > 0 else float("nan")


def series_forecaster(method: str, *, season: int = 52, level: float = 0.9) -> Forecaster:
    """A :data:`Forecaster` running one baseline of :mod:`valuechain.forecast.series`."""
    def run(history: pd.Series, steps: Sequence[int]) -> tuple[F64, F64, F64]:
        f = forecast_series(method, history.to_numpy(dtype=np.float64), steps, season=season,
                            level=level)
        return f.point, f.low, f.high
    return run


def series_backtest(
    series: pd.Series,
    known_at: pd.Index | pd.Series,
    origins: Sequence[Any],
    horizon: int,
    forecasters: dict[str, Forecaster],
    *,
    as_of: Any = None,
) -> list[ForecastPoint]:
    """Forecast the ``horizon`` periods from each origin with every forecaster.

    Parameters
    ----------
    series : pandas.Series
        One value per period, indexed by the period's time (sorted, no gaps).
    known_at : Index or Series of datetime
        When each value becomes known (same length as ``series``).
    origins : sequence of datetime-like
        Forecast origins: the forecaster sees only values known by then.
    horizon : int
        Periods forecast from each origin: the first period at or after the origin and the
        ``horizon - 1`` after it (targets beyond the series' index are skipped).
    forecasters : dict of str to Forecaster
        ``name -> forecaster(history, steps)``; ``steps`` count periods after the last known.
    as_of : datetime-like, optional
        When the data was extracted: targets known after it are *pending* (actual NaN).
        Default: every value in ``series`` is known.

    Returns
    -------
    list of ForecastPoint
        By origin, then method, then step.

    Examples
    --------
    >>> import pandas as pd, numpy as np
    >>> t = pd.date_range("2025-01-06", periods=12, freq="7D")
    >>> y = pd.Series(np.arange(12.0), index=t)
    >>> pts = series_backtest(y, t + pd.Timedelta(days=7), [t[8]], 2,
    ...                       {"naive": series_forecaster("seasonal_naive", season=1)})
    >>> [(p.step, p.forecast, p.actual) for p in pts]
    [(1, 7.0, 8.0), (2, 7.0, 9.0)]
    """
    if horizon < 1:
        raise DataError(f"horizon must be at least 1 period (got {horizon})")
    when = pd.DatetimeIndex(known_at)
    index = pd.DatetimeIndex(series.index)
    extracted = None if as_of is None else pd.Timestamp(as_of)
    out: list[ForecastPoint] = []
    for origin in origins:
        at = pd.Timestamp(origin)
        history = known_history(series, when, at)
        if len(history) == 0:
            raise DataError(f"origin {at}: no value of the series is known yet; start the "
                            "backtest later")
        first = int(index.searchsorted(at, side="left"))
        targets = list(range(first, min(first + horizon, len(series))))
        if not targets:
            continue
        steps = [t - (len(history) - 1) for t in targets]
        scale = _scale(history)
        for name, forecaster in forecasters.items():
            point, low, high = forecaster(history, steps)
            for k, t in enumerate(targets):
                pending = extracted is not None and when[t] > extracted
                actual = float("nan") if pending else float(series.iloc[t])
                out.append(ForecastPoint(
                    method=name, origin=at.to_pydatetime(), target=index[t].to_pydatetime(),
                    step=k + 1, forecast=float(point[k]), low=float(low[k]),
                    high=float(high[k]), actual=actual, scale=scale))
    return out


def points_frame(points: Sequence[ForecastPoint]) -> pd.DataFrame:
    """The points as a table (one row each), columns as :class:`ForecastPoint`'s fields."""
    columns = ["method", "origin", "target", "step", "forecast", "low", "high", "actual",
               "scale"]
    return pd.DataFrame([asdict(p) for p in points], columns=columns)


def backtest_metrics(points: Sequence[ForecastPoint] | pd.DataFrame) -> pd.DataFrame:
    """Errors per method and step ahead over the scored (non-pending) points.

    Returns a table with ``method``, ``step``, ``n``, ``mae``, ``mape``, ``mase``, ``bias``,
    ``bias_pct``, ``coverage``, ``revision``, ``revision_pct``, ``mean_actual`` (see the
    module docstring); ``step`` 0 rows summarise every step of a method.

    Examples
    --------
    >>> from datetime import datetime as d
    >>> pts = [ForecastPoint("m", d(2025, 1, 6), d(2025, 1, 6), 1, 12.0, 10.0, 14.0, 10.0, 2.0),
    ...        ForecastPoint("m", d(2025, 1, 13), d(2025, 1, 13), 1, 9.0, 8.0, 10.0, 10.0, 2.0)]
    >>> row = backtest_metrics(pts).query("step == 1").iloc[0]
    >>> [round(float(row[k]), 4) for k in ("mae", "mape", "mase", "bias", "coverage")]
    [1.5, 0.15, 0.75, 0.5, 1.0]
    """
    frame = points if isinstance(points, pd.DataFrame) else points_frame(points)
    if frame.empty:
        return pd.DataFrame(columns=["method", "step", "n"])
    frame = frame.sort_values(["method", "target", "origin"]).copy()
    # revision: the same target's forecast from the previous origin (one step further out)
    frame["previous"] = frame.groupby(["method", "target"])["forecast"].shift(1)
    frame["revision"] = (frame["forecast"] - frame["previous"]).abs()
    scored = frame[frame["actual"].notna()].copy()
    err = scored["forecast"] - scored["actual"]
    scored["abs_err"] = err.abs()
    scored["err"] = err
    scored["ape"] = np.where(scored["actual"] > 0, err.abs() / scored["actual"].where(
        scored["actual"] > 0), np.nan)
    scored["ase"] = scored["abs_err"] / scored["scale"]
    scored["inside"] = ((scored["actual"] >= scored["low"])
                        & (scored["actual"] <= scored["high"])).astype(float)
    rows: list[dict[str, Any]] = []
    for (method, step), part in [*scored.groupby(["method", "step"]),
                                 *((k, g) for k, g in scored.assign(step=0)
                                   .groupby(["method", "step"]))]:
        mean_actual = float(part["actual"].mean())
        revision = float(part["revision"].mean()) if part["revision"].notna().any() else (
            float("nan"))
        rows.append({
            "method": method, "step": int(step), "n": len(part),
            "mae": float(part["abs_err"].mean()), "mape": float(part["ape"].mean()),
            "mase": float(part["ase"].mean()), "bias": float(part["err"].mean()),
            "bias_pct": float(part["err"].mean() / mean_actual) if mean_actual else float("nan"),
            "coverage": float(part["inside"].mean()), "revision": revision,
            "revision_pct": revision / mean_actual if mean_actual else float("nan"),
            "mean_actual": mean_actual,
        })
    return pd.DataFrame(rows).sort_values(["method", "step"]).reset_index(drop=True)
