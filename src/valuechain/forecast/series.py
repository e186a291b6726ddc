"""Time-series baselines on an aggregate history: seasonal naive, ETS and ARIMA.

Each baseline takes the history known at the forecast origin (a float array, oldest first,
one value per period, no gaps) and the steps ahead to forecast (``1`` = the period right
after the last known one), and returns a :class:`SeriesForecast`: the point forecast and a
``level`` prediction interval per step, never below zero (counts).

- ``seasonal_naive``: the value one season earlier (``season`` periods); the plain naive
  forecast (last value) while the history is shorter than two seasons. Its interval is the
  normal one from the in-sample seasonal differences, widening with the number of seasons
  ahead (Hyndman & Athanasopoulos, *Forecasting: Principles and Practice*, 5.5).
- ``ets``: statsmodels' ``ETSModel``, additive errors and a damped additive trend (simple
  exponential smoothing when the history is short), prediction interval from the model.
- ``arima``: statsmodels' ``ARIMA``; the order with the lowest AIC among a few small ones
  (``(0,1,1)``, ``(1,1,1)``, ``(1,0,0)`` with a constant),
  prediction interval from the model.

statsmodels is imported only when ETS or ARIMA runs. A fit that fails (too little history,
a singular series) falls back to the naive forecast and says so in ``note``.

>>> import numpy as np
>>> f = forecast_series("seasonal_naive", np.array([1.0, 2, 3, 4, 1, 2, 3, 4]), [1, 2],
...                     season=4)
>>> f.point.tolist()
[1.0, 2.0]
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from scipy.stats import norm

from valuechain.errors import DataError, ModelError

__all__ = ["SERIES_METHODS", "SeriesForecast", "forecast_series"]

F64 = npt.NDArray[np.float64]
SERIES_METHODS = ("seasonal_naive", "ets", "arima")
ARIMA_ORDERS: tuple[tuple[int, int, int], ...] = ((0, 1, 1), (1, 1, 1), (1, 0, 0))
#: Fewest known periods ETS and ARIMA are fitted on (fewer: the naive forecast).
MIN_HISTORY = 8


@dataclass(frozen=True)
class SeriesForecast:
    """Point forecasts and prediction intervals for the requested steps ahead.

    Attributes
    ----------
    steps : tuple of int
        Steps ahead (1 = the period after the last known one).
    point, low, high : ndarray
        Forecast and ``level`` interval per step (clipped at zero).
    method : str
        The baseline that produced it; ``note`` says what was fitted (or why it fell back).
    """

    steps: tuple[int, ...]
    point: F64
    low: F64
    high: F64
    method: str
    note: str = ""


def _naive(y: F64, steps: Sequence[int], season: int, level: float, method: str,
           note: str = "") -> SeriesForecast:
    m = season if len(y) >= 2 * season and season > 1 else 1
    h = np.asarray(steps, dtype=np.int64)
    base = len(y) - m + (h - 1) % m
    point = y[base].astype(np.float64)
    diffs = y[m:] - y[:-m]
    sigma = float(np.sqrt(np.mean(diffs**2))) if len(diffs) else 0.0
    k = (h - 1) // m + 1
    z = float(norm.ppf(0.5 + level / 2))
    half = z * sigma * np.sqrt(k)
    why = note or (f"value {m} period(s) earlier" if m > 1 else "last value")
    return SeriesForecast(tuple(int(v) for v in h), point, np.maximum(point - half, 0.0),
                          np.maximum(point + half, 0.0), method, why)


def _statsmodels() -> Any:
    try:
        import statsmodels.api  # noqa: F401  (imports the submodules used below)
        from statsmodels.tsa.arima.model import ARIMA
        from statsmodels.tsa.exponential_smoothing.ets import ETSModel
    except ImportError as exc:  # pragma: no cover - statsmodels is a dependency
        raise DataError(
            "ETS and ARIMA baselines need statsmodels (pip install statsmodels==0.15.0); "
            "or ask only for seasonal_naive") from exc
    return ETSModel, ARIMA


def _ets(y: F64, steps: Sequence[int], level: float) -> SeriesForecast:
    ets_model, _ = _statsmodels()
    trend = "add" if len(y) >= 2 * MIN_HISTORY else None
    model = ets_model(pd.Series(y), error="add", trend=trend, damped_trend=trend is not None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = model.fit(disp=False)
        frame = fit.get_prediction(start=len(y), end=len(y) + max(steps) - 1).summary_frame(
            alpha=1 - level)
    idx = np.asarray(steps) - 1
    point = frame["mean"].to_numpy(dtype=np.float64)[idx]
    low = frame["pi_lower"].to_numpy(dtype=np.float64)[idx]
    high = frame["pi_upper"].to_numpy(dtype=np.float64)[idx]
    what = "ETS(A,Ad,N)" if trend else "ETS(A,N,N)"
    return SeriesForecast(tuple(int(s) for s in steps), np.maximum(point, 0.0),
                          np.maximum(low, 0.0), np.maximum(high, 0.0), "ets", what)


def _arima(y: F64, steps: Sequence[int], level: float) -> SeriesForecast:
    _, arima = _statsmodels()
    best: Any = None
    best_order = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for order in ARIMA_ORDERS:
            trend = "c" if order[1] == 0 else "n"
            try:
                fit = arima(y, order=order, trend=trend).fit()
            except (ValueError, np.linalg.LinAlgError):
                continue
            if math.isfinite(fit.aic) and (best is None or fit.aic < best.aic):
                best, best_order = fit, order
        if best is None:
            raise ModelError("ARIMA: no order could be fitted to this series (too short or "
                             "constant); forecast with `seasonal_naive` or `ets` instead.")
        pred = best.get_forecast(max(steps))
        mean = np.asarray(pred.predicted_mean, dtype=np.float64)
        conf = np.asarray(pred.conf_int(alpha=1 - level), dtype=np.float64)
    idx = np.asarray(steps) - 1
    return SeriesForecast(tuple(int(s) for s in steps), np.maximum(mean[idx], 0.0),
                          np.maximum(conf[idx, 0], 0.0), np.maximum(conf[idx, 1], 0.0),
                          "arima", f"ARIMA{best_order} (lowest AIC)")


def forecast_series(method: str, history: npt.ArrayLike, steps: Sequence[int], *,
                    season: int = 52, level: float = 0.9) -> SeriesForecast:
    """Forecast ``steps`` periods ahead of ``history`` with one baseline.

    Parameters
    ----------
    method : {"seasonal_naive", "ets", "arima"}
        The baseline.
    history : array-like of float
        The known values, oldest first, one per period (no gaps, no missing values).
    steps : sequence of int
        Steps ahead, each at least 1.
    season : int, default 52
        Periods per season (52 for weekly data with a yearly cycle).
    level : float, default 0.9
        Coverage of the prediction intervals.

    Returns
    -------
    SeriesForecast

    Raises
    ------
    DataError
        Unknown method, empty or non-finite history, steps below 1.

    Examples
    --------
    >>> import numpy as np
    >>> f = forecast_series("ets", np.full(20, 5.0) + np.arange(20) % 2, [1, 3])
    >>> f.method, len(f.point), bool((f.low <= f.point).all() and (f.point <= f.high).all())
    ('ets', 2, True)
    """
    if method not in SERIES_METHODS:
        raise DataError(f"unknown time-series method {method!r}; expected one of "
                        f"{', '.join(SERIES_METHODS)}")
    y = np.asarray(history, dtype=np.float64).ravel()
    if len(y) == 0 or not np.isfinite(y).all():
        raise DataError(f"{method}: the history must be non-empty and finite (got {len(y)} "
                        "values); forecast from a later origin")
    if not steps or min(steps) < 1:
        raise DataError(f"steps must be at least 1 (got {list(steps)})")
    if not 0 < level < 1:
        raise DataError(f"level={level!r}: expected a coverage between 0 and 1")
    if method == "seasonal_naive":
        return _naive(y, steps, season, level, method)
    if len(y) < MIN_HISTORY or np.ptp(y) == 0:
        return _naive(y, steps, 1, level, method,
                      f"naive: {len(y)} known period(s), constant or fewer than "
                      f"{MIN_HISTORY}")
    try:
        return _ets(y, steps, level) if method == "ets" else _arima(y, steps, level)
    except (ValueError, ModelError, np.linalg.LinAlgError) as exc:
        return _naive(y, steps, 1, level, method, f"naive: the {method} fit failed ({exc})")
