"""``valuechain monitor``: thin over :func:`valuechain.monitor.run.monitor`.

Exit status: 0 when no critical alert is active, 1 (:data:`~valuechain.monitor.run.
EXIT_CRITICAL`) when at least one is (after printing everything), 2 for a user mistake (bad
flag, spec or log), 3 for an internal error. See docs/monitoring.md.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import pandas as pd
import typer
from rich.table import Table

from valuechain.cli import (
    JsonOpt,
    SpecOpt,
    _emit,
    _load,
    _progress,
    app,
    console,
    parse_moment,
    user_errors,
)

__all__ = ["monitor_command"]

#: Windows shown per table in the terminal (the JSON and the report have them all).
SHOWN_WINDOWS = 14
#: Operations and KPI metrics shown in the terminal, in this order (all are in the JSON).
OPS_SHOWN = ("volume", "volume_z", "review_rate", "decline_rate", "queue_fill",
             "overflow_share", "latency_p99_ms")
KPI_SHOWN = ("mature_share", "loss_per_1000", "precision", "recall", "cost",
             "positive_rate", "false_decline_rate")


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}g}" if abs(value) < 1e6 else f"{value:,.0f}"
    return str(value)


def _cell(row: pd.Series, interval: bool) -> str:
    status = str(row["status"])
    if status == "pending":
        return "[dim]pending[/]"
    text = _fmt(float(row["value"]))
    if interval and math.isfinite(float(row["lower"])) and math.isfinite(float(row["upper"])):
        text += f" [{_fmt(float(row['lower']), 3)}, {_fmt(float(row['upper']), 3)}]"
    if status == "insufficient":
        text = f"[dim]{text} (n={int(row['n']):,})[/]"
    return text


def _pivot(signals: pd.DataFrame, section: str, title: str, *, interval: bool = False,
           metrics: tuple[str, ...] | None = None, max_columns: int = 7) -> Table | None:
    rows = signals[(signals["section"] == section) & (signals["status"] != "reference")]
    if metrics is not None:
        rows = rows[rows["metric"].isin(metrics)]
    if rows.empty:
        return None
    rows = rows.assign(column=[m if not s or s in m else f"{m} {s}" for m, s in
                               zip(rows["metric"], rows["subject"], strict=True)])
    shown = rows.groupby("column")["value"].apply(lambda v: bool(v.notna().any()))
    pending = rows.groupby("column")["status"].apply(lambda v: bool((v == "pending").any()))
    rows = rows[rows["column"].map(shown | pending)]  # drop columns with no value at all
    if rows.empty:
        return None
    order = {m: i for i, m in enumerate(metrics or ())}
    pairs = sorted(set(zip(rows["metric"], rows["subject"], rows["column"], strict=True)),
                   key=lambda p: (order.get(p[0], len(order)), p[0], p[1]))
    columns = list(dict.fromkeys(column for _, _, column in pairs))
    columns = columns[:max_columns]
    windows = sorted(rows["window"].unique())[-SHOWN_WINDOWS:]
    table = Table(title=title, caption=f"last {len(windows)} windows" if len(
        windows) == SHOWN_WINDOWS else None)
    table.add_column("window")
    for column in columns:
        table.add_column(column, justify="right", overflow="fold")
    cells = {(pd.Timestamp(r["window"]), r["column"]): _cell(r, interval)
             for _, r in rows.iterrows()}
    for window in windows:
        stamp = pd.Timestamp(window)
        table.add_row(f"{stamp:%Y-%m-%d}", *[cells.get((stamp, c), "-") for c in columns])
    return table


def _ranking(ranking: pd.DataFrame, top: int = 10) -> Table | None:
    if ranking is None or ranking.empty:
        return None
    table = Table(title=f"Drift ranking (top {min(top, len(ranking))} features, weighted by "
                  "model importance)")
    columns = list(ranking.columns)[:7]
    for column in columns:
        table.add_column(str(column), justify="left" if ranking[column].dtype == object
                         else "right")
    for _, row in ranking.head(top).iterrows():
        table.add_row(*[_fmt(row[c]) if not isinstance(row[c], pd.Timestamp)
                        else f"{row[c]:%Y-%m-%d}" for c in columns])
    return table


@contextmanager
def _quiet_stdout(enabled: bool) -> Iterator[None]:
    """Point file descriptor 1 at stderr while the work runs (``--json``: stdout holds the
    JSON object only, whatever a native library underneath prints there)."""
    if not enabled:
        yield
        return
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def _estimated(signals: pd.DataFrame) -> tuple[str, ...]:
    """The estimated metrics (not their error and coverage rows)."""
    names = [str(m) for m in signals.loc[signals["section"] == "estimate", "metric"].unique()
             if m not in ("covered", "estimate_error")]
    order = {m: i for i, m in enumerate(KPI_SHOWN)}
    return tuple(sorted(names, key=lambda m: (order.get(m, len(order)), m)))


def _coverage(coverage: pd.DataFrame) -> Table | None:
    if coverage is None or coverage.empty:
        return None
    table = Table(title="Estimates against matured cohorts")
    for column in ("metric", "matured windows", "interval covered", "mean abs error"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for _, row in coverage.iterrows():
        share = row.get("covered")
        table.add_row(str(row.get("metric", "")), _fmt(row.get("windows")),
                      "-" if share is None or share != share else f"{float(share):.0%}",
                      _fmt(row.get("mean_abs_error")))
    return table


def _alerts(result: Any) -> Table:
    table = Table(title=f"Alerts ({len(result.active_alerts)} active, "
                  f"{len(result.alerts) - len(result.active_alerts)} ended)")
    for column in ("severity", "rule", "subject", "since", "windows", "latest vs threshold",
                   "owner", "state"):
        table.add_column(column, overflow="fold", no_wrap=column in (
            "severity", "since", "windows"))
    colours = {"critical": "bold red", "warning": "yellow", "info": "dim"}
    for a in result.alerts:
        sign = ">" if a.direction == "above" else "<"
        table.add_row(f"[{colours.get(a.severity, '')}]{a.severity}[/]", a.rule,
                      a.subject or "-", f"{a.first_window:%Y-%m-%d}", str(a.windows),
                      f"{_fmt(a.value)} {sign} {_fmt(a.threshold)}", a.owner,
                      "active" if a.active else f"ended {a.last_window:%Y-%m-%d}")
    if result.alerts:
        table.caption = "windows: evaluated windows in the streak; state active: still firing"
    return table


def render(result: Any) -> None:
    """Print a :class:`~valuechain.monitor.run.MonitorResult` as Rich tables."""
    windows = result.windows
    span = f"{windows[0]:%Y-%m-%d} .. {windows[-1]:%Y-%m-%d}" if windows else "no windows"
    console.print(f"[bold]{result.project}[/]: bundle {result.bundle_version}, "
                  f"{result.decisions:,} decisions, {len(windows)} windows of "
                  f"{result.to_json()['window']} ({span}), as of "
                  f"{pd.Timestamp(result.as_of):%Y-%m-%d %H:%M} UTC", highlight=False)
    for table in (
        _ranking(result.drift_ranking),
        _pivot(result.signals, "drift", "Drift per window", metrics=("score_psi", "weighted_psi")),
        _pivot(result.signals, "ops", "Operations per window", metrics=OPS_SHOWN),
        _pivot(result.signals, "kpi", "Realised KPIs per cohort (pending: labels not mature)",
               metrics=KPI_SHOWN),
        _pivot(result.signals, "estimate", "Estimates before labels (value \\[interval])",
               interval=True, max_columns=4, metrics=_estimated(result.signals)),
        _coverage(result.coverage),
    ):
        if table is not None:
            console.print(table)
    if result.alerts:
        console.print(_alerts(result))
    else:
        console.print("[green]no alert[/]")
    advice = result.retrain
    if advice.recommend:
        console.print("[bold yellow]retraining recommended[/]: `valuechain retrain`",
                      highlight=False)
        for reason in advice.reasons:
            console.print(f"  - {reason}", highlight=False)
    else:
        console.print("retraining not needed: no sustained drift on important features, no "
                      "matured KPI out of bounds, estimates within their intervals.")
    for note in result.notes:
        console.print(f"[dim]note: {note}[/]", highlight=False)


@app.command("monitor")
@user_errors
def monitor_command(
    spec: SpecOpt = Path("."),
    log: Annotated[Path | None, typer.Option(
        "--log", help="Decision log (SQLite) or decisions Parquet file; default "
        "<workspace>/serve/decisions.sqlite.")] = None,
    version: Annotated[str | None, typer.Option(
        help="Bundle whose decisions are monitored; default the production version.")
    ] = None,
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="What is known (ISO 8601, UTC unless an offset is given): decisions "
        "up to it, labels matured by it; default the latest logged decision.")] = None,
    since: Annotated[str | None, typer.Option(
        "--since", help="Read decisions from this time on (ISO 8601); default the whole log.")
    ] = None,
    window: Annotated[str | None, typer.Option(
        help="Window length: 1d or 1w (any duration); default monitoring.cadence.")
    ] = None,
    report: Annotated[bool, typer.Option(
        "--report", help="Also write the HTML report with its Monitoring section.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Monitor the deployed decision: drift, operations, matured KPIs, estimates, alerts.

    Writes <workspace>/monitor/monitor.json and signals.parquet (read by the report).
    Exits with 1 when a critical alert is active.
    """
    from valuechain.errors import SpecError
    from valuechain.monitor.run import monitor, monitor_folder
    from valuechain.spec.durations import parse_duration

    length = None
    if window is not None:
        try:
            length = parse_duration(window)
        except SpecError as err:
            raise SpecError(f"`window`: {err}; e.g. 1d or 1w.") from None
    moment = parse_moment(as_of, "--as-of")
    start = parse_moment(since, "--since")
    loaded = _load(spec)
    with _progress(not as_json, "monitor") as progress, _quiet_stdout(as_json):
        result = monitor(loaded, log=log, version=version, as_of=moment, window=length,
                         progress=progress, since=start)
    saved = result.save(monitor_folder(loaded))
    reported = None
    if report:
        from valuechain import api

        reported = api.report(loaded)
    if as_json:
        payload = result.to_json()
        payload["saved"] = str(saved)
        if reported is not None:
            payload["report"] = str(reported.path)
        _emit(payload)
    else:
        render(result)
        console.print(f"monitor: {saved}", highlight=False)
        if reported is not None:
            console.print(f"report: {reported.path}", highlight=False)
    if result.exit_code:
        raise typer.Exit(result.exit_code)
