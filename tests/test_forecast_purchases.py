"""Repeat purchases per week and the BG/NBD forecaster (CDNOW anchor, no look-ahead)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from valuechain.forecast.backtest import backtest_metrics, series_backtest, series_forecaster
from valuechain.forecast.bgnbd import fit_bgnbd, rfm_summary
from valuechain.forecast.purchases import bgnbd_forecaster, repeat_purchase_series

ROOT = Path(__file__).resolve().parents[1]
_CANDIDATES = [ROOT.parent / "shared" / "data" / "cdnow", Path("/work/shared/data/cdnow")]
CDNOW = next((p for p in _CANDIDATES if (p / "CDNOW_sample.txt").is_file()), None)
needs_cdnow = pytest.mark.skipif(CDNOW is None, reason="CDNOW sample absent")


@pytest.fixture(scope="module")
def raw() -> pd.DataFrame:
    assert CDNOW is not None
    return pd.read_csv(CDNOW / "CDNOW_sample.txt", sep=r"\s+", header=None,
                       names=["orig_id", "id", "date", "cds", "dollars"])


def test_repeat_series_by_hand() -> None:
    buys = pd.DataFrame({"c": ["a", "a", "a", "a", "b", "b"],
                         "t": ["2024-01-01", "2024-01-01", "2024-01-07", "2024-01-08",
                               "2024-01-03", "2024-01-15"]})
    s = repeat_purchase_series(buys, customer="c", time="t", start="2024-01-01",
                               end="2024-01-21")
    # a: first on 1 Jan (the same-day second purchase is not another one), repeats 7 and 8 Jan
    assert s["repeats"].tolist() == [1.0, 1.0, 1.0]
    assert (s["known_at"] - s["time"] == pd.Timedelta(days=7)).all()


@needs_cdnow
def test_bgnbd_forecaster_reads_no_purchase_after_the_origin(raw: pd.DataFrame) -> None:
    s = repeat_purchase_series(raw, customer="id", time="date", start="1997-01-01",
                               end="1998-06-30")
    values = pd.Series(s["repeats"].to_numpy(), index=pd.DatetimeIndex(s["time"]))
    known = pd.DatetimeIndex(s["known_at"])
    origin = pd.Timestamp("1997-11-26")
    first = series_backtest(values, known, [origin], 3,
                            {"bgnbd": bgnbd_forecaster(raw, customer="id", time="date")})
    # every purchase on or after the origin moved and new ones added: same forecasts
    days = pd.to_datetime(raw["date"].astype(str), format="%Y%m%d")
    moved = raw.assign(date=days.where(days < origin, days + pd.Timedelta(days=9)))
    extra = moved[days >= origin].assign(date=origin + pd.Timedelta(days=1))
    moved = pd.concat([moved, extra])
    noisy = values.where(known <= origin, values * 3)
    again = series_backtest(noisy, known, [origin], 3,
                            {"bgnbd": bgnbd_forecaster(moved, customer="id", time="date")})
    assert [p.forecast for p in again] == [p.forecast for p in first]
    assert all(np.isfinite(p.forecast) and p.forecast > 0 for p in first)


@needs_cdnow
def test_cdnow_weekly_series_and_the_39_week_holdout(raw: pd.DataFrame) -> None:
    s = repeat_purchase_series(raw, customer="id", time="date", start="1997-01-01",
                               end="1998-06-30")
    assert len(s) == 78 and s["repeats"].iloc[:39].sum() == 2457
    assert s["repeats"].iloc[39:].sum() == 1882
    values = pd.Series(s["repeats"].to_numpy(), index=pd.DatetimeIndex(s["time"]))
    known = pd.DatetimeIndex(s["known_at"])
    pts = series_backtest(values, known, [pd.Timestamp("1997-10-01")], 39, {
        "bgnbd": bgnbd_forecaster(raw, customer="id", time="date"),
        "seasonal_naive": series_forecaster("seasonal_naive", season=52)})
    total = pd.DataFrame([p.__dict__ for p in pts]).groupby("method")["forecast"].sum()
    # the weekly BG/NBD forecasts add up to the summed conditional expectations (1653.4)
    summary = rfm_summary(raw, customer="id", time="date", calibration_end=19970930)
    model = fit_bgnbd(summary)
    direct = model.conditional_expected(39.0, summary.frequency, summary.recency,
                                        summary["T"]).sum()
    assert total["bgnbd"] == pytest.approx(direct, rel=1e-9)
    assert total["bgnbd"] == pytest.approx(1653.4, abs=0.1)
    m = backtest_metrics(pts).set_index(["method", "step"])
    assert m.loc[("bgnbd", 0), "n"] == 39


@needs_cdnow
def test_purchase_forecast_origins_and_pending(raw: pd.DataFrame) -> None:
    from valuechain.forecast.purchases import purchase_forecast

    got = purchase_forecast(raw, customer="id", time="date", as_of="1998-06-20", origins=2,
                            horizon=3, methods=("bgnbd", "seasonal_naive"))
    # periods start on the first purchase day (1997-01-01); the one holding 20 June is open
    assert got.latest_origin == pd.Timestamp("1998-06-17")
    assert [o.date().isoformat() for o in got.origins] == ["1998-05-20", "1998-05-27"]
    latest = got.points[got.points["origin"] == got.latest_origin]
    assert latest["actual"].isna().all() and len(latest) == 6
    scored = got.points[got.points["origin"] != got.latest_origin]
    assert scored["actual"].notna().all()
    assert got.metrics.set_index(["method", "step"]).loc[("bgnbd", 0), "n"] == 6
