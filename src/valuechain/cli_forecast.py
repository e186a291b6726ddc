"""``valuechain forecast``: thin over :func:`valuechain.forecast.project.forecast_project`.

Exit status: 0 on success, 2 for a user mistake (bad flag, spec, missing data), 3 for an
internal error. See docs/forecast.md.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from valuechain.cli import JsonOpt, SpecOpt, _emit, _load, _progress, app, console, user_errors
from valuechain.errors import SpecError
from valuechain.spec.durations import parse_duration

__all__ = ["forecast_command", "parse_horizon"]

#: Days in the month of ``--horizon 1m`` (months vary; a month here is 30 days).
MONTH_DAYS = 30


def parse_horizon(text: str) -> timedelta:
    """A horizon: a duration (``28d``, ``4w``) or months of 30 days (``1m``, ``3m``).

    >>> parse_horizon("1m"), parse_horizon("2w")
    (datetime.timedelta(days=30), datetime.timedelta(days=14))
    """
    match = re.fullmatch(r"\s*(\d+)\s*(m|mo|month|months)\s*", text)
    if match:
        months = int(match.group(1))
        if months < 1:
            raise SpecError(f"--horizon {text!r}: expected at least one month")
        return timedelta(days=MONTH_DAYS * months)
    try:
        return parse_duration(text)
    except SpecError as exc:
        raise SpecError(f"--horizon {text!r}: expected a duration such as '28d' or '4w', or "
                        "months such as '1m' (30 days each)") from exc


def _fmt(value: Any, digits: int = 1, pct: bool = False) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if pct:
        return f"{100 * value:+.1f} %" if digits < 0 else f"{100 * value:.1f} %"
    return f"{value:,.{digits}f}"


@app.command("forecast")
@user_errors
def forecast_command(
    spec: SpecOpt = Path("."),
    horizon: Annotated[str | None, typer.Option(
        help="How far ahead each origin forecasts: '28d', '4w', or months '1m' (30 days). "
        "Default: the spec's forecast.horizon, else the label horizon.")] = None,
    origins: Annotated[int | None, typer.Option(
        help="Rolling origins of the backtest (default: forecast.origins, 8).", min=1)] = None,
    methods: Annotated[str | None, typer.Option(
        help="Comma-separated methods: individual, seasonal_naive, ets, arima.")] = None,
    level: Annotated[float | None, typer.Option(
        help="Coverage of the intervals (default 0.9).")] = None,
    live: Annotated[bool, typer.Option(
        help="Also score the customers active at the latest scheduled time (one extra "
        "engine pass).")] = True,
    seed: Annotated[int, typer.Option(help="Seed of the individual models.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """How many will churn per future period: three ways, side by side, backtested."""
    from valuechain.forecast.project import forecast_project

    span = parse_horizon(horizon) if horizon is not None else None
    chosen = [m.strip() for m in methods.split(",") if m.strip()] if methods else None
    loaded = _load(spec)
    with _progress(not as_json, "forecast") as progress:
        result = forecast_project(loaded, horizon=span, origins=origins, methods=chosen,
                                  level=level, seed=seed, progress=progress, live=live)
    if as_json:
        _emit({**result.to_json(), "path": str(result.path) if result.path else None})
        return
    s = result.settings
    console.print(f"Forecast of churners per {s['period']} period, horizon {s['horizon']} "
                  f"({s['horizon_periods']} periods), {len(s['origins'])} origins "
                  f"{s['origins'][0][:10]} .. {s['origins'][-1][:10]}, data as of "
                  f"{result.as_of:%Y-%m-%d}, {s['level']:.0%} intervals.", highlight=False)
    table = Table(title="Backtest (all steps ahead)")
    for column in ("method", "n", "MAE", "MAPE", "MASE", "bias", "coverage", "revision"):
        table.add_column(column, justify="left" if column == "method" else "right")
    summary = result.metrics[result.metrics["step"] == 0]
    for row in summary.itertuples():
        table.add_row(str(row.method), str(row.n), _fmt(row.mae), _fmt(row.mape, pct=True),
                      _fmt(row.mase, 2), _fmt(row.bias_pct, -1, pct=True),
                      _fmt(row.coverage, pct=True), _fmt(row.revision_pct, pct=True))
    console.print(table)
    if result.individual:
        ind = Table(title="Sum of individual probabilities per origin")
        for column in ("origin", "customers", "calibrated [interval]", "raw [interval]",
                       "actual", "AUC"):
            ind.add_column(column, justify="right")
        for one in result.individual:
            ind.add_row(f"{one.origin:%Y-%m-%d}", f"{one.customers:,}",
                        f"{one.expected:,.1f} [{one.low:,.0f}, {one.high:,.0f}]",
                        f"{one.raw_expected:,.1f} [{one.raw_low:,.0f}, {one.raw_high:,.0f}]",
                        _fmt(one.actual, 0), _fmt(one.auc, 3))
        console.print(ind)
    latest = result.points[result.points["origin"] == result.points["origin"].max()]
    ahead = Table(title=f"From the latest origin {s['latest_origin'][:10]} (pending: labels "
                        "not mature yet)")
    for column in ("target", "method", "forecast [interval]", "actual"):
        ahead.add_column(column, justify="right")
    for row in latest.sort_values(["target", "method"]).itertuples():
        ahead.add_row(f"{row.target:%Y-%m-%d}", str(row.method),
                      f"{row.forecast:,.1f} [{row.low:,.0f}, {row.high:,.0f}]",
                      "pending" if not math.isfinite(row.actual) else f"{row.actual:,.0f}")
    console.print(ahead)
    if result.purchases is not None:
        bought = Table(title="Repeat purchases per period (BG/NBD and baselines, all steps)")
        for column in ("method", "n", "MAE", "MAPE", "MASE", "bias", "coverage", "revision"):
            bought.add_column(column, justify="left" if column == "method" else "right")
        rows = result.purchases.metrics
        for row in rows[rows["step"] == 0].itertuples():
            bought.add_row(str(row.method), str(row.n), _fmt(row.mae),
                           _fmt(row.mape, pct=True), _fmt(row.mase, 2),
                           _fmt(row.bias_pct, -1, pct=True), _fmt(row.coverage, pct=True),
                           _fmt(row.revision_pct, pct=True))
        console.print(bought)
    for note in result.notes:
        console.print(f"[dim]{note}[/]")
    if result.path is not None:
        console.print(f"Written to {result.path} in {result.seconds:.1f} s.", highlight=False)
