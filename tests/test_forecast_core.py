"""Forecast building blocks: the exact Poisson-binomial interval, baselines, backtest errors."""

from __future__ import annotations

import itertools
import math
from datetime import datetime

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from valuechain.errors import DataError
from valuechain.forecast.backtest import (
    ForecastPoint,
    backtest_metrics,
    series_backtest,
    series_forecaster,
)
from valuechain.forecast.poisson_binomial import (
    poisson_binomial_cdf,
    poisson_binomial_interval,
    poisson_binomial_pmf,
)
from valuechain.forecast.series import forecast_series


def brute_force_pmf(p: list[float]) -> np.ndarray:
    """P(S = k) by enumerating all 2^n outcomes."""
    out = np.zeros(len(p) + 1)
    for outcome in itertools.product((0, 1), repeat=len(p)):
        prob = math.prod(q if x else 1 - q for q, x in zip(p, outcome, strict=True))
        out[sum(outcome)] += prob
    return out


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=0, max_size=10))
def test_pmf_equals_brute_force_enumeration(p: list[float]) -> None:
    np.testing.assert_allclose(poisson_binomial_pmf(p), brute_force_pmf(p), atol=1e-12)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0.0, 1.0), min_size=1, max_size=9), st.floats(0.5, 0.99))
def test_interval_is_the_exact_equal_tailed_quantiles(p: list[float], level: float) -> None:
    pmf = brute_force_pmf(p)
    cdf = np.cumsum(pmf)
    tail = (1 - level) / 2
    low, high = poisson_binomial_interval(p, level)
    # brute-force quantiles: the smallest k with F(k) > tail, and with F(k) >= 1 - tail
    want_low = next(k for k in range(len(cdf)) if cdf[k] > tail + 1e-12)
    want_high = next(k for k in range(len(cdf)) if cdf[k] >= 1 - tail - 1e-12)
    assert (low, high) == (want_low, want_high)
    assert pmf[:low].sum() <= tail + 1e-9 and pmf[high + 1:].sum() <= tail + 1e-9


def test_large_population_matches_mean_and_variance_and_binomial() -> None:
    rng = np.random.default_rng(3)
    p = rng.uniform(0, 0.2, 5000)  # the FFT branch of the product tree
    pmf = poisson_binomial_pmf(p)
    k = np.arange(len(pmf))
    assert pmf.sum() == pytest.approx(1.0, abs=1e-12)
    assert (pmf * k).sum() == pytest.approx(p.sum(), rel=1e-10)
    assert (pmf * k**2).sum() - p.sum() ** 2 == pytest.approx((p * (1 - p)).sum(), rel=1e-8)
    from scipy.stats import binom

    np.testing.assert_allclose(poisson_binomial_pmf([0.03] * 2000), binom.pmf(
        np.arange(2001), 2000, 0.03), atol=1e-13)
    assert poisson_binomial_interval([0.03] * 2000, 0.9) == tuple(
        int(v) for v in binom.ppf([0.05, 0.95], 2000, 0.03))


def test_certain_and_impossible_events_and_bad_input() -> None:
    np.testing.assert_allclose(poisson_binomial_pmf([1.0, 0.0, 1.0]), [0, 0, 1, 0])
    assert poisson_binomial_cdf([])[-1] == 1.0
    with pytest.raises(DataError, match="outside"):
        poisson_binomial_pmf([0.2, 1.5])
    with pytest.raises(DataError, match="level"):
        poisson_binomial_interval([0.2], level=1.0)


def test_seasonal_naive_by_hand() -> None:
    y = np.array([1.0, 2, 3, 4, 2, 3, 4, 5])
    f = forecast_series("seasonal_naive", y, [1, 2, 5], season=4, level=0.9)
    assert f.point.tolist() == [2.0, 3.0, 2.0]
    # sigma from the seasonal differences (all 1): 1.645 * 1 * sqrt(k), k = 1, 1, 2
    assert f.high.tolist() == pytest.approx([2 + 1.644854, 3 + 1.644854, 2 + 1.644854 * 2**0.5],
                                            rel=1e-5)
    short = forecast_series("seasonal_naive", y[:5], [1, 2], season=4)
    assert short.point.tolist() == [2.0, 2.0] and short.note == "last value"


def test_ets_and_arima_track_a_level_with_intervals() -> None:
    rng = np.random.default_rng(0)
    y = 50 + rng.normal(0, 2, 40)
    for method in ("ets", "arima"):
        f = forecast_series(method, y, [1, 4], level=0.9)
        assert np.all(np.abs(f.point - 50) < 4), (method, f)
        assert np.all(f.low < f.point) and np.all(f.point < f.high)
    with pytest.raises(DataError, match="unknown"):
        forecast_series("prophet", y, [1])


def test_metrics_by_hand() -> None:
    d = datetime
    pts = [
        ForecastPoint("m", d(2025, 1, 6), d(2025, 1, 6), 1, 12.0, 10.0, 14.0, 10.0, 2.0),
        ForecastPoint("m", d(2025, 1, 6), d(2025, 1, 13), 2, 11.0, 9.0, 13.0, 20.0, 2.0),
        ForecastPoint("m", d(2025, 1, 13), d(2025, 1, 13), 1, 16.0, 15.0, 17.0, 20.0, 4.0),
        ForecastPoint("m", d(2025, 1, 13), d(2025, 1, 20), 2, 16.0, 15.0, 17.0, float("nan"),
                      4.0),
    ]
    m = backtest_metrics(pts).set_index("step")
    assert m.loc[1, "n"] == 2 and m.loc[1, "mae"] == 3.0  # |12-10|, |16-20|
    assert m.loc[1, "mape"] == pytest.approx((0.2 + 0.2) / 2)
    assert m.loc[1, "mase"] == pytest.approx((2 / 2 + 4 / 4) / 2)
    assert m.loc[1, "bias"] == -1.0 and m.loc[1, "coverage"] == 0.5
    # the 13 January target: 11 from the 6th, 16 from the 13th -> revision 5
    assert m.loc[1, "revision"] == 5.0
    assert m.loc[0, "n"] == 3  # the pending point is not scored
    assert m.loc[2, "coverage"] == 0.0


# --- the backtest never reads data after its origin (property) ------------------------------


@settings(max_examples=25, deadline=None)
@given(
    st.lists(st.integers(0, 50), min_size=14, max_size=30),
    st.integers(0, 6),
    st.integers(1, 4),
    st.integers(1, 3),
    st.integers(0, 10**6),
)
def test_backtest_never_reads_values_known_after_the_origin(
    values: list[int], origin_offset: int, horizon: int, delay_periods: int, seed: int,
) -> None:
    times = pd.date_range("2025-01-06", periods=len(values), freq="7D")
    series = pd.Series(np.asarray(values, dtype=float), index=times)
    known_at = times + pd.Timedelta(days=7 * delay_periods)
    origin = times[len(values) // 2 + origin_offset - 3]
    seen: list[pd.Timestamp] = []

    def spy(history: pd.Series, steps: list[int]) -> tuple[np.ndarray, ...]:
        # what the forecaster was given: every value must be known at the origin
        seen.extend(known_at[: len(history)])
        point = np.full(len(steps), history.iloc[-1] + history.sum() * 1e-3)
        return point, point - 1, point + 1

    base = series_backtest(series, known_at, [origin], horizon, {"spy": spy})
    assert seen and max(seen) <= origin
    # changing every value not known at the origin changes no forecast
    later = known_at > origin
    noisy = series.copy()
    noisy[later] = np.random.default_rng(seed).integers(0, 1000, int(later.sum()))
    again = series_backtest(noisy, known_at, [origin], horizon,
                            {"spy": spy, "naive": series_forecaster("seasonal_naive", season=2)})
    first = series_backtest(series, known_at, [origin], horizon,
                            {"spy": spy, "naive": series_forecaster("seasonal_naive", season=2)})
    assert [p.forecast for p in again] == [p.forecast for p in first]
    assert [p.forecast for p in base] == [p.forecast for p in first if p.method == "spy"]
