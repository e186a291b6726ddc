"""``valuechain monitor``: one pass over the decision log, every signal, the alerts, the advice.

:func:`monitor` reads the decision log of the production bundle (or ``version``), cuts it into
windows (capacity periods of ``window``, default ``monitoring.cadence``: days from midnight
UTC, weeks from Monday), and computes

1. drift against the bundle's reference period (:mod:`valuechain.monitor.drift`),
2. operations: action mix, review queue vs capacity, latency, volume
   (:mod:`valuechain.monitor.ops`),
3. realised KPIs of the cohorts whose labels have matured, ``pending`` otherwise
   (:mod:`valuechain.monitor.kpis`),
4. estimates before labels, with intervals, and how well past estimates did
   (:mod:`valuechain.monitor.estimate`),

then runs the spec's alert rules (:mod:`valuechain.monitor.alerts`) over the signals and
derives the retrain recommendation. The result is a frozen :class:`MonitorResult` whose
:meth:`~MonitorResult.to_json` has a stable, documented schema (docs/monitoring.md) for
alerting systems, and :meth:`~MonitorResult.save` writes it (``monitor.json`` +
``signals.parquet``) where the report's Monitoring section reads it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from valuechain.errors import DataError, SpecError
from valuechain.io import write_json, write_parquet
from valuechain.monitor.alerts import (
    Alert,
    RetrainAdvice,
    check_signals,
    empty_signals,
    evaluate_alerts,
    retrain_advice,
    rule_notes,
)
from valuechain.policy.capacity import PERIOD_ANCHOR_US, capacity_period
from valuechain.spec.durations import format_duration, to_micros
from valuechain.spec.loader import LoadedSpec, load_spec
from valuechain.spec.models import Monitoring

__all__ = ["EXIT_CRITICAL", "JSON_SCHEMA", "MonitorResult", "monitor", "monitor_folder",
           "window_start"]

#: ``schema`` of :meth:`MonitorResult.to_json` (bumped when a key changes meaning or goes).
JSON_SCHEMA = "valuechain.monitor/1"
#: Exit status of ``valuechain monitor`` when an active critical alert fires (2 stays the
#: status of user mistakes, 3 of internal errors).
EXIT_CRITICAL = 1

Progress = Callable[[str, float], None]


def window_start(period: int | np.ndarray, window_us: int) -> pd.Series | pd.Timestamp:
    """The UTC start of window ``period`` (a capacity-period index of ``window_us``).

    >>> str(window_start(capacity_period(1_754_300_000_000_000, 86_400_000_000),
    ...                  86_400_000_000))
    '2025-08-04 00:00:00+00:00'
    """
    starts = PERIOD_ANCHOR_US + np.asarray(period, dtype=np.int64) * window_us
    if np.ndim(starts) == 0:
        return pd.Timestamp(int(starts), unit="us", tz="UTC")
    return pd.Series(pd.to_datetime(starts, unit="us", utc=True)).astype("datetime64[us, UTC]")


def monitor_folder(loaded: LoadedSpec) -> Path:
    """Where :meth:`MonitorResult.save` writes by default: ``<workspace>/monitor``."""
    return loaded.workspace / "monitor"


@dataclass(frozen=True)
class MonitorResult:
    """Everything one monitoring pass found.

    Attributes
    ----------
    as_of : datetime
        Labels known at this time count; windows end at it.
    window_us : int
        Window length in microseconds (a day: 86 400 000 000).
    bundle_version : str
        The bundle whose decisions were monitored.
    signals : DataFrame
        Every signal (drift, ops, kpi, estimate), in the signals format.
    alerts : tuple of Alert
        Every firing streak, active ones first.
    drift_ranking : DataFrame
        Features ranked by drift weighted by importance (DRIFT's ``drift_ranking``).
    coverage : DataFrame
        Per estimated metric: matured windows, share covered, mean absolute error.
    retrain : RetrainAdvice
        Whether to retrain, and why.
    """

    as_of: datetime
    window_us: int
    bundle_version: str
    signals: pd.DataFrame = field(repr=False)
    alerts: tuple[Alert, ...]
    drift_ranking: pd.DataFrame = field(repr=False)
    coverage: pd.DataFrame = field(repr=False)
    retrain: RetrainAdvice
    project: str = ""
    spec_hash: str = ""
    log: str = ""
    decisions: int = 0
    other_versions: int = 0
    importance: Mapping[str, float] = field(default_factory=dict, repr=False)
    capacity: tuple[str, int, int, str] | None = None
    reference_period: str = ""
    dispersion: Mapping[str, float] = field(default_factory=dict, repr=False)
    notes: tuple[str, ...] = ()
    seconds: float = 0.0

    @property
    def active_alerts(self) -> tuple[Alert, ...]:
        """Alerts whose streak is still running at the last evaluated window."""
        return tuple(a for a in self.alerts if a.active)

    @property
    def critical(self) -> int:
        """Number of active critical alerts."""
        return sum(a.severity == "critical" for a in self.active_alerts)

    @property
    def exit_code(self) -> int:
        """``1`` (:data:`EXIT_CRITICAL`) when an active critical alert fires, else ``0``."""
        return EXIT_CRITICAL if self.critical else 0

    @property
    def windows(self) -> list[pd.Timestamp]:
        """Window starts present in the signals, in order."""
        rows = self.signals[self.signals["status"] != "reference"]
        return sorted(pd.Timestamp(w) for w in rows["window"].dropna().unique())

    def latest(self) -> pd.DataFrame:
        """The latest non-reference signal per section × metric × subject."""
        rows = self.signals[self.signals["status"] != "reference"]
        if rows.empty:
            return rows
        rows = rows.sort_values("window", kind="stable")
        return rows.groupby(["section", "metric", "subject"], sort=True).tail(1) \
            .sort_values(["section", "metric", "subject"], kind="stable")

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready mapping with a stable schema (:data:`JSON_SCHEMA`, docs/monitoring.md).

        Times are ISO-8601 UTC strings, undefined numbers ``null``. Signals themselves are
        summarised (``latest``); the full table is ``signals.parquet`` (:meth:`save`).
        """
        windows = self.windows
        return {
            "schema": JSON_SCHEMA,
            "project": self.project,
            "spec_hash": self.spec_hash,
            "bundle_version": self.bundle_version,
            "log": self.log,
            "as_of": pd.Timestamp(self.as_of).isoformat(),
            "window": format_duration(timedelta(microseconds=self.window_us)),
            "window_us": self.window_us,
            "first_window": windows[0].isoformat() if windows else None,
            "last_window": windows[-1].isoformat() if windows else None,
            "windows": len(windows),
            "decisions": self.decisions,
            "other_versions": self.other_versions,
            "reference_period": self.reference_period,
            "status": "critical" if self.critical else (
                "alert" if self.active_alerts else "ok"),
            "exit_code": self.exit_code,
            "active_alerts": len(self.active_alerts),
            "critical_alerts": self.critical,
            "alerts": [a.to_json() for a in self.alerts],
            "retrain": self.retrain.to_json(),
            "drift_ranking": _records(self.drift_ranking),
            "coverage": _records(self.coverage),
            "latest": _records(self.latest()),
            "reference": _records(self.signals.loc[
                self.signals["status"] == "reference",
                ["section", "metric", "subject", "value", "lower", "upper", "n"]]),
            "capacity": None if self.capacity is None else {
                "action": self.capacity[0], "limit": self.capacity[1],
                "per": format_duration(timedelta(microseconds=self.capacity[2])),
                "overflow": self.capacity[3]},
            "importance": {k: _clean(v) for k, v in self.importance.items()},
            "dispersion": {k: _clean(v) for k, v in self.dispersion.items()},
            "notes": list(self.notes),
            "seconds": round(self.seconds, 3),
        }

    def save(self, folder: Path) -> Path:
        """Write ``monitor.json`` and ``signals.parquet`` into ``folder`` (atomically).

        Returns the path of ``monitor.json``.
        """
        folder.mkdir(parents=True, exist_ok=True)
        signals = self.signals.copy()
        for column in signals.columns:
            if signals[column].dtype == object:
                signals[column] = signals[column].astype("string")
        write_parquet(folder / "signals.parquet",
                      pa.Table.from_pandas(signals, preserve_index=False))
        path = folder / "monitor.json"
        write_json(path, self.to_json())
        return path


def _clean(value: Any) -> Any:
    if value is None or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp | datetime):
        return pd.Timestamp(value).isoformat()
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _records(frame: pd.DataFrame | None) -> list[dict[str, Any]]:
    if frame is None or frame.empty:
        return []
    return [{str(k): _clean(v) for k, v in row.items()}
            for row in frame.to_dict(orient="records")]


def _as_utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _importance(bundle: Any, reference: Any) -> dict[str, float]:
    """The model's normalised feature importance: DRIFT's, else mean |contribution|.

    Mean absolute contribution to the log-odds over (up to 5,000 rows of) the reference
    period, normalised to sum to 1; empty when the model has no native explanation.
    """
    from valuechain.monitor import drift

    named = getattr(drift, "feature_importance", None)
    if callable(named):
        return dict(named(bundle, reference))
    frame = reference.frame
    names = list(bundle.feature_names)
    if frame is None or frame.empty or not set(names) <= set(frame.columns):
        return {}
    sample = frame[names].head(5000)
    values = np.abs(bundle.contributions(sample)).mean(axis=0)
    total = float(values.sum())
    if not total > 0:
        return {}
    return {name: float(v / total) for name, v in zip(names, values, strict=True)}


def _reference_dispersion(reference: Any, loaded: LoadedSpec, window_us: int
                          ) -> dict[str, float]:
    """Per metric, how much more outcomes vary than the scores say, on the reference period.

    The reference period's decisions are all mature: their estimates per window are scored
    against the realised values (:func:`~valuechain.monitor.estimate.fit_dispersion`), and
    the monitored windows' intervals are widened by that much (fitted on *other* cohorts
    than the ones they are judged on). Empty when the reference has no labels or its frame
    lacks the columns the costs read.
    """
    from valuechain.monitor.estimate import estimate_signals, fit_dispersion
    from valuechain.monitor.outcomes import price_rows

    frame = getattr(reference, "frame", None)
    if frame is None or "label" not in frame.columns or "time" not in frame.columns:
        return {}
    rows = frame[frame["label"].notna()].reset_index(drop=True).copy()
    if rows.empty:
        return {}
    rows["time_us"] = pd.to_datetime(rows["time"], utc=True).to_numpy(
        dtype="datetime64[us]").astype(np.int64)
    rows["mature"] = True
    try:
        price_rows(rows, loaded)
    except DataError:
        return {}
    return fit_dispersion(estimate_signals(rows, loaded, window_us=window_us))


def _cache_path(log: Path, loaded: LoadedSpec) -> Path | None:
    """``<workspace>/monitor/decisions.cache.parquet`` for a SQLite log (the flattened log is
    kept and only new rows are parsed each day); None for a Parquet log."""
    if log.suffix.lower() in (".parquet", ".pq"):
        return None
    folder = monitor_folder(loaded)
    folder.mkdir(parents=True, exist_ok=True)
    return folder / "decisions.cache.parquet"


def _concat(frames: list[pd.DataFrame]) -> pd.DataFrame:
    kept = [f for f in frames if f is not None and not f.empty]
    for f in kept:
        check_signals(f)
    if not kept:
        return empty_signals()
    out = pd.concat(kept, ignore_index=True, sort=False)
    out["window"] = pd.to_datetime(out["window"], utc=True).astype("datetime64[us, UTC]")
    return out


def _complete_windows(decisions: pd.DataFrame, as_of: datetime, window_us: int
                      ) -> tuple[pd.DataFrame, tuple[int, int] | None]:
    """Decisions of the windows that have ended by ``as_of``, and the partial window cut.

    The partial window is returned as ``(period, decisions left out)``. When no window has
    ended (the log is younger than one window), every decision is kept.
    """
    as_of_us = int(pd.Timestamp(as_of).value // 1000)
    period = capacity_period(decisions["time_us"].to_numpy(dtype=np.int64), window_us)
    last_complete = capacity_period(as_of_us, window_us) - 1
    late = period > last_complete
    if not late.any() or late.all():
        return decisions, None
    return (decisions[~late].reset_index(drop=True),
            (int(period[late].min()), int(late.sum())))


def monitor(
    spec: Path | str | LoadedSpec,
    *,
    log: Path | None = None,
    version: str | None = None,
    as_of: datetime | None = None,
    window: timedelta | None = None,
    progress: Progress | None = None,
    since: datetime | None = None,
) -> MonitorResult:
    """Monitor the decisions of a bundle: drift, operations, matured KPIs, estimates, alerts.

    Parameters
    ----------
    spec : path or LoadedSpec
        The project (its ``valuechain.yaml``, or the folder holding it).
    log : path, optional
        The decision log (SQLite, or a decisions Parquet file from ``valuechain score``);
        default ``<workspace>/serve/decisions.sqlite``.
    version : str, optional
        Bundle whose decisions are monitored; default the registry's production version.
        Decisions of other versions in the log are left out (and counted).
    as_of : datetime, optional
        What is known: decisions up to it, labels matured by it. Default the time of the
        latest logged decision (not the clock: a log replayed from the past is judged as of
        its own end, and outcomes not yet extracted are never read as negatives). Only
        windows that have ended by ``as_of`` are monitored: the decisions of a window still
        running are left out (and counted in the notes), since a partial day's hours look
        like drift.
    window : timedelta, optional
        Window length; default ``monitoring.cadence`` (1 day). Days start at midnight UTC,
        weeks on Monday (the capacity periods of :mod:`valuechain.policy.capacity`).
    progress : callable, optional
        Called with ``(stage, fraction)`` as the work proceeds.
    since : datetime, optional
        Read decisions from this time on (default the whole log): a long-running service's
        daily pass can look back a fixed span, e.g. 120 days (two label horizons).

    Returns
    -------
    MonitorResult

    Raises
    ------
    SpecError
        A bad ``window`` or ``as_of``.
    ArtifactError
        No production bundle, a missing or damaged log.
    DataError
        The log holds no decision of the bundle before ``as_of``.
    """
    started = time.perf_counter()
    report = progress or (lambda stage, fraction: None)
    loaded = spec if isinstance(spec, LoadedSpec) else load_spec(spec)
    monitoring = loaded.spec.monitoring or Monitoring.model_validate({})
    length = window if window is not None else monitoring.cadence
    if length <= timedelta(0):
        raise SpecError(f"`window` must be longer than zero, got {length}; e.g. 1d or 1w.")
    window_us = to_micros(length)

    from valuechain.registry import Registry, default_registry

    report("bundle", 0.02)
    registry = Registry(default_registry(loaded))
    bundle = registry.load(version)

    from valuechain.monitor.drift import drift_ranking, drift_signals
    from valuechain.monitor.estimate import estimate_coverage, estimate_signals
    from valuechain.monitor.inputs import load_reference, read_decisions
    from valuechain.monitor.kpis import kpi_signals, reference_kpis
    from valuechain.monitor.ops import ops_signals
    from valuechain.monitor.outcomes import label_decisions
    log_path = log if log is not None else loaded.workspace / "serve" / "decisions.sqlite"
    until = _as_utc(as_of) if as_of is not None else None
    report("read log", 0.05)
    start = _as_utc(since) if since is not None else None
    if start is not None and until is not None and start >= until:
        raise SpecError(f"`since` ({start.isoformat()}) must be before `as_of` "
                        f"({until.isoformat()}).")
    decisions = read_decisions(log_path, since=start, until=until,
                               cache=_cache_path(log_path, loaded))
    versions = sorted(set(decisions["bundle_version"].astype(str)))
    mine = decisions["bundle_version"] == bundle.version
    others = int((~mine).sum())
    decisions = decisions[mine].reset_index(drop=True)
    if decisions.empty:
        raise DataError(
            f"{log_path}: no decision of bundle {bundle.version}"
            + (f" from {start.isoformat()}" if start else "")
            + (f" before {until.isoformat()}" if until else "")
            + f" (versions in the log: {', '.join(versions) or 'none'}). Pass `version` to "
            "monitor another bundle, `log` to read another log, or a later `as_of`.")
    if until is None:
        until = pd.Timestamp(int(decisions["time_us"].max()), unit="us", tz="UTC") \
            .to_pydatetime()
    notes: list[str] = []
    if others:
        notes.append(f"{others:,} decisions of other bundle versions left out.")
    decisions, partial = _complete_windows(decisions, until, window_us)
    if partial:
        notes.append(f"the window starting {window_start(partial[0], window_us):%Y-%m-%d %H:%M} "
                     f"is not complete at as_of; its {partial[1]:,} decisions are left out "
                     "(a partial day looks like drift); pass a later `as_of` to include it.")

    report("reference", 0.15)
    reference = load_reference(bundle, loaded.root)
    importance = _importance(bundle, reference)
    report("drift", 0.25)
    drift = drift_signals(decisions, reference, window_us=window_us, importance=importance)
    report("operations", 0.45)
    ops = ops_signals(decisions, window_us=window_us, capacity=bundle.capacity)
    report("outcomes", 0.55)
    labelled = label_decisions(decisions, loaded, as_of=until)
    report("kpis", 0.7)
    kpi = kpi_signals(labelled, loaded, window_us=window_us, as_of=until)
    report("estimates", 0.8)
    dispersion = _reference_dispersion(reference, loaded, window_us)
    estimate = estimate_signals(labelled, loaded, window_us=window_us, dispersion=dispersion)
    coverage = estimate_coverage(estimate)
    ranking = drift_ranking(drift, importance)
    baseline = reference_kpis(reference, loaded)
    baseline = baseline[baseline["status"] == "reference"]  # undefined ones are not windows
    signals = _concat([drift, ops, kpi, estimate, baseline])

    report("alerts", 0.95)
    rules = monitoring.rules
    alerts = evaluate_alerts(signals, rules, owners=loaded.spec.owners,
                             default_owner=loaded.spec.decision.owner,
                             channel=monitoring.alert_channel)
    notes.extend(rule_notes(signals, rules))
    advice = retrain_advice(alerts, signals, importance=importance)
    report("done", 1.0)
    return MonitorResult(
        as_of=until, window_us=window_us, bundle_version=bundle.version, signals=signals,
        alerts=tuple(alerts), drift_ranking=ranking, coverage=coverage, retrain=advice,
        project=loaded.spec.project.name, spec_hash=loaded.hash, log=str(log_path),
        decisions=len(decisions), other_versions=others, importance=importance,
        capacity=bundle.capacity, reference_period=str(getattr(reference, "period", "")),
        dispersion=dispersion,
        notes=tuple(notes), seconds=time.perf_counter() - started)
