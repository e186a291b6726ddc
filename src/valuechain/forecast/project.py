"""``valuechain forecast``: how many will churn per future period, three ways, backtested.

The aggregate series is read off the point-in-time frame of ``valuechain build``: at each
decision time ``t`` of the schedule, the customers active at ``t`` and how many of them
churned within the label horizon (known ``horizon`` after ``t``). At each rolling origin
(the latest decision times whose labels have matured) the methods forecast it:

- ``individual``: the sum of calibrated probabilities of the customers active at the origin,
  with the exact Poisson-binomial interval (:mod:`valuechain.forecast.individual`); the
  uncalibrated sum is kept beside it as ``individual_raw``;
- ``seasonal_naive``, ``ets``, ``arima``: time-series baselines on the counts known at the
  origin (:mod:`valuechain.forecast.series`), for the origin's period and the following
  ones up to the horizon.

The latest decision times of the schedule, whose labels are not mature yet at the
extraction time, are *pending*; the time-series methods forecast them and the ``horizon``
periods after the latest origin (the last scheduled time at or before the extraction). Pending
and future periods are drawn, never scored.

Artifacts (atomic): ``<workspace>/forecast/forecast.json`` (settings, series, metrics,
individual results) and ``forecast/points.parquet`` (every forecast point).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from valuechain.artifacts import fix_command, open_artifact
from valuechain.data.build import build_frame, select_engine
from valuechain.data.plan import make_plan
from valuechain.data.sources import Catalog
from valuechain.errors import DataError, SpecError
from valuechain.forecast.backtest import (
    Forecaster,
    ForecastPoint,
    backtest_metrics,
    known_history,
    points_frame,
    series_backtest,
    series_forecaster,
)
from valuechain.forecast.individual import IndividualForecast, individual_forecast
from valuechain.forecast.purchases import PurchaseForecast, purchase_forecast
from valuechain.forecast.series import SERIES_METHODS
from valuechain.io import write_json, write_parquet
from valuechain.spec.durations import format_duration
from valuechain.spec.loader import LoadedSpec
from valuechain.spec.models import Forecast, SchedulePoints

__all__ = ["FORECAST_DIR", "ForecastResult", "churn_series", "forecast_project", "live_rows",
           "read_forecast"]

FORECAST_DIR = "forecast"
Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class ForecastResult:
    """What ``valuechain forecast`` found: series, forecast points, errors per method.

    Attributes
    ----------
    settings : dict
        Horizon (periods and duration), period, origins, methods, level, candidate.
    series : DataFrame
        ``time``, ``customers``, ``churners`` (NaN when pending), ``known_at``.
    points : DataFrame
        Every forecast (see :class:`~valuechain.forecast.backtest.ForecastPoint`).
    metrics : DataFrame
        :func:`~valuechain.forecast.backtest.backtest_metrics` of the scored points.
    individual : tuple of IndividualForecast
        Per origin: calibrated and raw sums, intervals, AUC.
    as_of : datetime
        When the data was extracted (labels after it are pending).
    seconds : float
        Wall time.
    path : Path or None
        The folder the artifacts were written to.
    """

    settings: dict[str, Any]
    series: pd.DataFrame
    points: pd.DataFrame
    metrics: pd.DataFrame
    individual: tuple[IndividualForecast, ...]
    as_of: datetime
    seconds: float
    path: Path | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)
    purchases: PurchaseForecast | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (what ``forecast.json`` holds, points excepted)."""
        def clean(frame: pd.DataFrame) -> list[dict[str, Any]]:
            out: list[dict[str, Any]] = []
            for row in frame.to_dict(orient="records"):
                out.append({str(k): (None if isinstance(v, float) and not math.isfinite(v) else
                                v.isoformat() if isinstance(v, (pd.Timestamp, datetime)) else v)
                            for k, v in row.items()})
            return out

        latest = self.points[self.points["origin"] == self.points["origin"].max()]
        extra: dict[str, Any] = {}
        if self.purchases is not None:
            p = self.purchases
            extra["purchases"] = {
                "origins": [o.isoformat() for o in p.origins],
                "latest_origin": p.latest_origin.isoformat(),
                "series": clean(p.series), "metrics": clean(p.metrics),
                "latest": clean(p.points[p.points["origin"] == p.latest_origin])}
        return {**extra,
            "settings": self.settings, "as_of": self.as_of.isoformat(),
            "series": clean(self.series), "metrics": clean(self.metrics),
            "individual": [i.to_json() for i in self.individual],
            "latest": clean(latest), "seconds": round(self.seconds, 2),
            "notes": list(self.notes),
        }


def churn_series(frame: pd.DataFrame, *, time_column: str, label: str, horizon: timedelta,
                 delay: timedelta = timedelta(0), every: timedelta | None = None,
                 until: Any = None) -> pd.DataFrame:
    """The aggregate series of a scheduled frame: customers and churners per decision time.

    ``known_at = time + horizon + delay``. With ``every`` and ``until``, the schedule's later
    decision times (not in the frame: their labels had not matured) are appended as pending
    rows (``churners`` and ``customers`` NaN: not in the frame).

    Examples
    --------
    >>> f = pd.DataFrame({"t": pd.to_datetime(["2025-01-06"] * 3 + ["2025-01-13"] * 2),
    ...                   "y": [1, 0, 1, 0, 0]})
    >>> s = churn_series(f, time_column="t", label="y", horizon=timedelta(days=30),
    ...                  every=timedelta(days=7), until="2025-01-27")
    >>> s[["customers", "churners"]].values.tolist()
    [[3.0, 2.0], [2.0, 0.0], [nan, nan], [nan, nan]]
    """
    times = pd.to_datetime(frame[time_column])
    y = pd.to_numeric(frame[label], errors="coerce")
    grouped = pd.DataFrame({"time": times, "y": (y > 0).astype(float)}).groupby("time")["y"]
    out = pd.DataFrame({"customers": grouped.size().astype(float), "churners": grouped.sum()})
    if every is not None and until is not None and len(out):
        step = pd.Timedelta(every)
        extra = []
        t = out.index.max() + step
        while t <= pd.Timestamp(until):
            extra.append(t)
            t += step
        if extra:
            out = pd.concat([out, pd.DataFrame({"customers": np.nan, "churners": np.nan},
                                               index=pd.DatetimeIndex(extra))])
    out.index.name = "time"
    out = out.reset_index()
    out["known_at"] = out["time"] + pd.Timedelta(horizon) + pd.Timedelta(delay)
    return out


def _settings(loaded: LoadedSpec, horizon: timedelta | None, origins: int | None,
              methods: Sequence[str] | None, level: float | None, balanced: bool | None,
              ) -> tuple[Forecast, timedelta, int]:
    spec = loaded.spec
    if not isinstance(spec.decision_points, SchedulePoints):
        raise SpecError(
            f"{loaded.where('decision_points')}: `valuechain forecast` counts churners per "
            "scheduled decision time; the spec's decision points are events. Declare "
            "`decision_points.schedule` (e.g. every active customer every Monday)")
    config = spec.forecast or Forecast.model_validate({})
    update: dict[str, Any] = {}
    if horizon is not None:
        update["horizon"] = horizon
    if origins is not None:
        update["origins"] = origins
    if methods is not None:
        unknown = [m for m in methods if m not in ("individual", *SERIES_METHODS)]
        if unknown or not methods:
            raise SpecError(f"--methods: unknown method(s) {unknown}; choose among "
                            f"individual, {', '.join(SERIES_METHODS)}")
        update["methods"] = list(methods)
    if level is not None:
        if not 0 < level < 1:
            raise SpecError(f"--level {level}: expected a coverage between 0 and 1, e.g. 0.9")
        update["level"] = level
    if balanced is not None:
        update["balanced"] = balanced
    config = config.model_copy(update=update)
    every = spec.decision_points.schedule.every
    span = config.horizon or spec.label.horizon
    periods = max(1, round(span / every))
    return config, every, periods


def forecast_project(
    loaded: LoadedSpec,
    *,
    horizon: timedelta | None = None,
    origins: int | None = None,
    methods: Sequence[str] | None = None,
    level: float | None = None,
    balanced: bool | None = None,
    seed: int = 0,
    progress: Progress | None = None,
    write: bool = True,
    live: bool = True,
) -> ForecastResult:
    """Backtest and forecast the churners per period; write ``<workspace>/forecast/``.

    Parameters
    ----------
    loaded : LoadedSpec
        The project's spec (``valuechain.spec.load_spec``); its ``forecast:`` block gives the
        defaults, the keyword arguments override them.
    horizon : timedelta, optional
        How far ahead each origin forecasts (rounded to whole periods of the schedule).
    origins : int, optional
        Rolling origins of the backtest.
    methods : sequence of str, optional
        Among ``individual``, ``seasonal_naive``, ``ets``, ``arima``.
    level : float, optional
        Coverage of the intervals.
    balanced : bool, optional
        Train the individual model on balanced classes.
    seed : int, default 0
        Seed of the individual models.
    progress : callable, optional
        Called as ``progress(step, fraction)``.
    write : bool, default True
        Write the artifacts.
    live : bool, default True
        Also score the customers active at the latest scheduled time (their features are
        computed by the engine for that one time: :func:`live_rows`), so the sum of
        probabilities forecasts the pending period too.

    Returns
    -------
    ForecastResult

    Raises
    ------
    SpecError
        Event decision points, unknown methods, a bad level.
    DataError
        Too little mature history for the origins asked for.

    Examples
    --------
    >>> from valuechain.spec import load_spec  # doctest: +SKIP
    >>> result = forecast_project(load_spec("examples/churn"), origins=4)  # doctest: +SKIP
    >>> result.metrics.query("step == 1")[["method", "mape", "coverage"]]  # doctest: +SKIP
    """
    started = time.perf_counter()
    config, every, periods = _settings(loaded, horizon, origins, methods, level, balanced)
    spec = loaded.spec
    if progress:
        progress("checking the frame is current", 0.0)
    built = build_frame(loaded)
    frame = open_artifact(built.frame, "parquet", what="the built frame",
                          rebuild=fix_command(loaded.root, "build", "--force"))
    time_col = built.manifest["frame"]["time_column"]
    as_of = pd.Timestamp(built.manifest["as_of"]).tz_localize(None)
    delay = timedelta(seconds=float(built.manifest.get("label_delay", {}).get("seconds", 0.0)))
    label_horizon = spec.label.horizon
    # the schedule's times up to the extraction (pending) and one horizon after it (future)
    series = churn_series(frame, time_column=time_col, label=spec.label.name,
                          horizon=label_horizon, delay=delay, every=every,
                          until=as_of + pd.Timedelta(every) * periods)
    mature = series[series["churners"].notna()]
    if len(mature) < config.origins + 4:
        raise DataError(
            f"{built.frame}: {len(mature)} decision times with mature labels; a backtest "
            f"with {config.origins} origins needs at least {config.origins + 4}. Use fewer "
            "origins (--origins) or more history")
    backtest_origins = list(mature["time"].iloc[-config.origins:])
    latest_origin = series["time"][series["time"] <= as_of].iloc[-1]
    season = max(1, round(config.season / every))
    values = pd.Series(series["churners"].to_numpy(dtype=float),
                       index=pd.DatetimeIndex(series["time"]))
    known = pd.DatetimeIndex(series["known_at"])
    series_methods: list[str] = [m for m in config.methods if m in SERIES_METHODS]
    forecasters: dict[str, Forecaster] = {
        m: series_forecaster(m, season=season, level=config.level) for m in series_methods}
    all_origins = [*backtest_origins, *([latest_origin] if latest_origin not in
                                         backtest_origins else [])]
    points: list[ForecastPoint] = []
    total = len(all_origins) * (len(series_methods) + (2 if "individual" in config.methods
                                                        else 0)) + 2
    done = 0
    for origin in all_origins:
        if progress:
            progress(f"origin {origin:%Y-%m-%d}: time-series baselines", done / max(total, 1))
        points += series_backtest(values, known, [origin], periods, forecasters, as_of=as_of)
        done += len(series_methods)
    individual: list[IndividualForecast] = []
    if "individual" in config.methods:
        features = [f.name for f in spec.features]
        for origin in backtest_origins:
            if progress:
                progress(f"origin {origin:%Y-%m-%d}: individual probabilities",
                         done / max(total, 1))
            one = individual_forecast(
                frame, time_column=time_col, label=spec.label.name, features=features,
                horizon=label_horizon + delay, origin=origin, candidate=config.candidate,
                train_window=config.train_window, level=config.level,
                balanced=config.balanced, seed=seed)
            individual.append(one)
            scale = _scale_at(values, known, origin)
            for name, (point, low, high) in (
                    ("individual", (one.expected, one.low, one.high)),
                    ("individual_raw", (one.raw_expected, one.raw_low, one.raw_high))):
                points.append(ForecastPoint(
                    method=name, origin=one.origin, target=one.origin, step=1,
                    forecast=point, low=low, high=high, actual=one.actual, scale=scale))
            done += 2
        if live and latest_origin not in backtest_origins:
            if progress:
                progress(f"origin {latest_origin:%Y-%m-%d}: the customers active now",
                         done / max(total, 1))
            rows = live_rows(loaded, latest_origin.to_pydatetime(), as_of.to_pydatetime())
            if len(rows):
                now = individual_forecast(
                    frame, time_column=time_col, label=spec.label.name, features=features,
                    horizon=label_horizon + delay, origin=latest_origin,
                    candidate=config.candidate, train_window=config.train_window,
                    level=config.level, balanced=config.balanced, seed=seed, score=rows)
                individual.append(now)
                for name, (point, low, high) in (
                        ("individual", (now.expected, now.low, now.high)),
                        ("individual_raw", (now.raw_expected, now.raw_low, now.raw_high))):
                    points.append(ForecastPoint(
                        method=name, origin=now.origin, target=now.origin, step=1,
                        forecast=point, low=low, high=high, actual=float("nan"),
                        scale=_scale_at(values, known, latest_origin)))
    table = points_frame(points)
    metrics = backtest_metrics(table)
    bought = None
    if config.purchases is not None:
        if progress:
            progress("repeat purchases: BG/NBD and the time-series methods", 0.95)
        bought = _purchases(loaded, config, as_of, every, periods, season, series_methods)
    notes = []
    if "individual" in config.methods:
        notes.append("individual: the sum of probabilities forecasts the customers active at "
                     "each origin (step 1) only; later periods are the time-series methods'")
    settings = {
        "period": format_duration(every), "horizon": format_duration(periods * every),
        "horizon_periods": periods, "label_horizon": format_duration(label_horizon),
        "origins": [o.isoformat() for o in backtest_origins],
        "latest_origin": latest_origin.isoformat(), "methods": list(config.methods),
        "season_periods": season, "level": config.level, "candidate": config.candidate,
        "train_window": (format_duration(config.train_window) if config.train_window
                         else None), "balanced": config.balanced, "seed": seed,
        "spec_hash": loaded.hash,
    }
    result = ForecastResult(settings=settings, series=series, points=table, metrics=metrics,
                            individual=tuple(individual), as_of=as_of.to_pydatetime(),
                            seconds=time.perf_counter() - started, notes=tuple(notes),
                            purchases=bought)
    if write:
        folder = loaded.workspace / FORECAST_DIR
        folder.mkdir(parents=True, exist_ok=True)
        write_parquet(folder / "points.parquet", pa.Table.from_pandas(table, preserve_index=False))
        if bought is not None:
            write_parquet(folder / "purchase_points.parquet",
                          pa.Table.from_pandas(bought.points, preserve_index=False))
        write_json(folder / "forecast.json", result.to_json())
        result = ForecastResult(**{**result.__dict__, "path": folder})
    if progress:
        progress("done", 1.0)
    return result


def _purchases(loaded: LoadedSpec, config: Forecast, as_of: pd.Timestamp, every: timedelta,
               periods: int, season: int, series_methods: Sequence[str]) -> PurchaseForecast:
    """Repeat purchases per period of ``forecast.purchases`` (BG/NBD beside the baselines)."""
    block = config.purchases
    assert block is not None
    where = loaded.where("forecast", "purchases")
    if block.source not in loaded.spec.sources:
        raise SpecError(f"{where}: source {block.source!r} is not in `sources` "
                        f"({', '.join(loaded.spec.sources)}); name the purchase log's source")
    if every.total_seconds() % 86400:
        raise SpecError(f"{where}: repeat purchases are counted per whole days; the "
                        f"schedule's every is {format_duration(every)}")
    catalog = Catalog(loaded, open_all=False)
    try:
        catalog.open(block.source)
        columns = catalog.con.execute(f"select * from src_{block.source} limit 0").df().columns
        missing = [c for c in (block.customer, block.time) if c not in columns]
        if missing:
            raise SpecError(f"{where}: source {block.source!r} has no column(s) {missing} "
                            f"(columns: {list(columns)}); name its customer and time columns")
        log = catalog.con.execute(
            f'select "{block.customer}" as customer, "{block.time}" as time '
            f"from src_{block.source}").df()
    finally:
        catalog.con.close()
    return purchase_forecast(log, customer="customer", time="time", as_of=as_of,
                             period=f"{int(every.total_seconds() // 86400)}D",
                             origins=config.origins, horizon=periods,
                             methods=["bgnbd", *series_methods], season=season,
                             level=config.level)


def live_rows(loaded: LoadedSpec, at: datetime, as_of: datetime) -> pd.DataFrame:
    """The features of the customers active at ``at``, as the frame builder computes them.

    The built frame keeps only mature rows, so the latest decision times (whose labels end
    after ``as_of``) are not in it. This runs the spec's engine on a copy of the spec whose
    schedule starts and ends at ``at``, with the build's ``as_of``: the same point-in-time
    rules, for one decision time. Returns the id columns, the time column and the features.
    """
    spec = loaded.spec
    points = spec.decision_points
    if not isinstance(points, SchedulePoints):
        raise SpecError(f"{loaded.where('decision_points')}: live rows need a schedule")
    one = points.schedule.model_copy(update={"start": at, "end": at})
    copy = replace(loaded, spec=spec.model_copy(
        update={"decision_points": SchedulePoints(schedule=one)}))
    plan = make_plan(copy, as_of)
    out = select_engine(copy).execute(plan, None)
    frame: pd.DataFrame = out.frame.drop_columns(
        [c for c in out.frame.column_names if c.startswith("__")]).to_pandas()
    keep = (pd.to_datetime(frame[plan.time_column]) == pd.Timestamp(at)).to_numpy()
    return frame.loc[keep].reset_index(drop=True)


def _scale_at(values: pd.Series, known: pd.DatetimeIndex, origin: Any) -> float:
    history = known_history(values, known, origin).to_numpy(dtype=float)
    if len(history) < 2:
        return float("nan")
    scale = float(np.mean(np.abs(np.diff(history))))
    return scale if scale > 0 else float("nan")


def read_forecast(workspace: Path) -> tuple[dict[str, Any], pd.DataFrame] | None:
    """``forecast.json`` and the points of the last ``valuechain forecast`` (None if absent)."""
    folder = workspace / FORECAST_DIR
    if not (folder / "forecast.json").exists():
        return None
    data = open_artifact(folder / "forecast.json", "json", expect=dict,
                         rebuild="valuechain forecast --spec DIR", what="the forecast")
    points = open_artifact(folder / "points.parquet", "parquet",
                           rebuild="valuechain forecast --spec DIR", what="the forecast points")
    return data, points
