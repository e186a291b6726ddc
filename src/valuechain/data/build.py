"""``valuechain build``: the point-in-time training frame and its lineage manifest.

The spec becomes an engine-neutral :class:`~valuechain.data.plan.Plan`
(:func:`~valuechain.data.plan.make_plan`), an engine chosen by name executes it from the
source files (:mod:`valuechain.data.engines`), and this module finishes the frame the same
way for every engine: the decision identity ``decision_id`` first, then ids, time, features
and the label; immature rows (``t + horizon + d > as_of``, ``d`` the outcome delay of
:func:`valuechain.data.pit.label_delay`) dropped and counted. The frame is
written as ``<workspace>/build/frame.parquet`` beside ``manifest.json``, which records the
frame's fingerprint. Re-running on unchanged spec, inputs and engine settings reuses the
frame.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from valuechain import __version__
from valuechain.data.engines import Engine, EngineConfig, EngineOutput, get_engine
from valuechain.data.pit import LABEL
from valuechain.data.plan import ID_COLUMN, EventPointsPlan, Plan, make_plan
from valuechain.data.sources import Catalog, SourceInfo, fingerprint, us_to_datetime
from valuechain.errors import DataError, EngineError
from valuechain.io import write_json, write_parquet
from valuechain.spec.loader import LoadedSpec
from valuechain.sql import quote_ident

__all__ = ["BuildResult", "RowCounts", "build_frame", "decision_ids", "finish_frame",
           "select_engine"]

Progress = Callable[[str, float], None]
EngineChoice = str | Mapping[str, Any] | EngineConfig | None


@dataclass(frozen=True)
class RowCounts:
    total: int
    mature: int
    immature: int
    positive: int
    dropped_no_time: int = 0
    immature_delay: int = 0  # immature only because of the outcome delay (see pit.is_mature)


@dataclass(frozen=True)
class BuildResult:
    """What ``build`` made: the frame, its manifest, row counts, and whether it was reused.

    ``fingerprint`` is the blake2b-16 hex digest of the frame file's bytes (also in the
    manifest as ``frame.fingerprint``): later stages compare it to refuse a stale frame.
    """

    frame: Path
    manifest_path: Path
    rows: RowCounts
    cached: bool
    seconds: float
    manifest: dict[str, Any]
    fingerprint: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "frame": str(self.frame),
            "manifest": str(self.manifest_path),
            "rows": self.rows.__dict__,
            "cached": self.cached,
            "seconds": round(self.seconds, 3),
            "as_of": self.manifest["as_of"],
            "fingerprint": self.fingerprint,
            "engine": self.manifest.get("engine"),
        }


# -- decision identity -----------------------------------------------------------------------
def decision_ids(plan: Plan, frame: pa.Table, aware: bool) -> pa.Array:
    """The ``decision_id`` of every row (see docs/spec.md): unique, never null.

    Event points: the decision source's key values as text, joined by ``|``. Scheduled
    points: ``<entity key>@<decision time, ISO 8601 to the second>`` (``+00:00`` for aware
    data).
    """
    parts = [pc.fill_null(pc.cast(frame.column(k), pa.string()), "")
             for k in plan.decision_keys]
    if isinstance(plan.points, EventPointsPlan):
        ids = parts[0] if len(parts) == 1 else pc.binary_join_element_wise(*parts, "|")
    else:
        micros = np.asarray(frame.column("__t").to_numpy(), dtype=np.int64)
        moments = pa.array(np.floor_divide(micros, 1_000_000), pa.timestamp("s"))
        stamp = pc.strftime(moments, format="%Y-%m-%dT%H:%M:%S")
        if aware:
            stamp = pc.binary_join_element_wise(stamp, pa.scalar("+00:00"), "")
        ids = pc.binary_join_element_wise(parts[0], stamp, "@")
    ids = ids.combine_chunks() if isinstance(ids, pa.ChunkedArray) else ids
    # Unique ids <=> unique (keys[, time]): checked on the typed columns (hashing ints is
    # far cheaper than hashing the id strings).
    parts_of_id = [*plan.decision_keys] + ([] if isinstance(plan.points, EventPointsPlan)
                                          else ["__t"])
    duplicated = pa.table({c: frame.column(c) for c in parts_of_id}).to_pandas().duplicated()
    if bool(duplicated.any()):
        first = int(np.flatnonzero(duplicated.to_numpy())[0])
        dup = ids[first].as_py()
        times = int(pc.sum(pc.equal(ids, dup)).as_py() or 0)
        if plan.own:
            values = {k: frame.column(k)[first].as_py() for k in plan.decision_keys}
            raise DataError(
                f"{plan.where('sources', plan.own, 'keys')}: keys {list(plan.decision_keys)} "
                f"do not identify one row of source '{plan.own}': {values} appears {times} "
                "times. Fix the duplicates or declare more key columns."
            )
        raise EngineError(
            f"{plan.where('decision_points')}: the engine made {times} decision points with "
            f"the id {dup!r}. Expected one per entity and time; this is a bug of the engine."
        )
    return ids


# -- the frame -------------------------------------------------------------------------------
def finish_frame(plan: Plan, out: EngineOutput) -> tuple[pa.Table, RowCounts]:
    """The frame from an engine's output: ``decision_id``, ids, time, features, label;
    mature rows only, with the counts."""
    raw = out.frame
    features = [f.name for f in plan.row_features] + [w.name for w in plan.windows] + [
        lk.name for lk in plan.lookups]
    expected = [*plan.id_columns, plan.time_column, *features, LABEL, "__t"]
    missing = [c for c in expected if c not in raw.column_names]
    if missing:
        raise EngineError(
            f"the engine returned a frame without the columns {missing}. Expected "
            f"{expected} (see docs/engines.md)."
        )
    cols: dict[str, Any] = {ID_COLUMN: decision_ids(plan, raw, out.aware)}
    for name in (*plan.id_columns, plan.time_column, *features):
        cols[name] = raw.column(name)
    label = raw.column(LABEL)
    binary = plan.label.kind == "binary"
    # pit.is_mature, vectorised: t + horizon + d <= as_of.
    ends = pc.add(raw.column("__t"), plan.label.horizon_us)
    mature = pc.less_equal(pc.add(ends, out.label_delay_us), out.as_of_us)
    by_horizon = int(pc.sum(pc.less_equal(ends, out.as_of_us)).as_py() or 0)
    _check_label(plan, label, mature, cols[ID_COLUMN])
    cols[plan.label.name] = pc.cast(label, pa.int8() if binary else pa.float64())
    frame = pa.table(cols)
    kept = frame.filter(mature)
    positive = int(pc.sum(pc.greater(kept.column(plan.label.name), 0)).as_py() or 0)
    counts = RowCounts(total=frame.num_rows, mature=kept.num_rows,
                       immature=frame.num_rows - kept.num_rows, positive=positive,
                       dropped_no_time=out.dropped_no_time,
                       immature_delay=by_horizon - kept.num_rows)
    return kept, counts


def _label_origin(plan: Plan) -> str:
    """``column 'y' of source 'orders' (path)`` for messages about the label values."""
    src = plan.label.source or plan.own
    ref = plan.sources.get(src) if src else None
    where = f" of source '{src}' ({ref.path})" if ref is not None else ""
    return f"label column '{plan.label.column or plan.label.name}'{where}"


def _check_label(plan: Plan, label: pa.ChunkedArray, mature: Any, ids: pa.Array) -> None:
    """DataError on empty or (binary) out-of-domain label values on mature rows."""
    ids = pa.chunked_array([ids]) if isinstance(ids, pa.Array) else ids
    origin = _label_origin(plan)
    if label.null_count:
        empty = pc.and_(mature, pc.is_null(label))
        nulls = int(pc.sum(empty).as_py() or 0)
        if nulls:
            example = ids.filter(empty)[0].as_py()
            raise DataError(
                f"{plan.where('label')}: the {origin} has {nulls:,} empty values on mature rows "
                f"(e.g. decision_id {example!r}). Expected a value for every decision whose "
                "horizon has passed; fill them at the source (0 if nothing happened) or drop "
                "those rows."
            )
    if plan.label.kind != "binary":
        return
    try:
        values = pc.cast(label, pa.float64())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        raise DataError(
            f"{plan.where('label')}: the {origin} has type {label.type}. Expected 0/1 "
            "(or true/false) for a binary label; convert the column at the source."
        ) from None
    ok = pc.or_(pc.equal(values, 0.0), pc.equal(values, 1.0))
    bad = pc.and_(mature, pc.invert(pc.fill_null(ok, True)))
    count = int(pc.sum(bad).as_py() or 0)
    if count:
        value = label.filter(bad)[0].as_py()
        example = ids.filter(bad)[0].as_py()
        distinct = sorted({v for v in label.filter(bad).to_pylist()}, key=str)[:5]
        raise DataError(
            f"{plan.where('label')}: the {origin} is binary but {count:,} mature rows hold "
            f"other values than 0 and 1 ({distinct}; e.g. {value!r} at decision_id "
            f"{example!r}). Map the values to 0/1 at the source (e.g. 2 -> 1, -1 -> 0), or set "
            "`label.kind: amount` if the column is a quantity."
        )


def select_engine(loaded: LoadedSpec, engine: EngineChoice = None) -> Engine:
    """The engine for ``loaded``: the argument, else the spec's ``engine``, else DuckDB.

    A bare name equal to the spec's engine type keeps the spec's options.
    """
    settings = loaded.spec.engine
    if engine is None or (isinstance(engine, str) and settings is not None
                          and settings.type == engine):
        if settings is None:
            return get_engine(None)
        return get_engine(settings.model_dump(), where=loaded.where("engine"))
    return get_engine(engine, where="the `engine` argument")


# -- the stage -------------------------------------------------------------------------------
def _cache_key(loaded: LoadedSpec, fingerprints: dict[str, str], as_of: datetime | None,
               engine: dict[str, Any], accept: tuple[str, ...] = ()) -> str:
    parts: dict[str, Any] = {"spec": loaded.hash, "sources": fingerprints, "engine": engine,
                             "as_of": as_of.isoformat() if as_of else None,
                             "version": __version__}
    if accept:  # what a build accepted on purpose (absent: keys of earlier builds hold)
        parts["accept"] = list(accept)
    payload = json.dumps(parts, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def _previous_manifest(path: Path) -> dict[str, Any] | None:
    """The last build's manifest, or None when it is missing or damaged (then: rebuild)."""
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return previous if isinstance(previous, dict) else None


def build_frame(
    loaded: LoadedSpec,
    *,
    as_of: datetime | None = None,
    engine: EngineChoice = None,
    force: bool = False,
    progress: Progress | None = None,
    accept_early_times: bool = False,
) -> BuildResult:
    """Build (or reuse) the point-in-time frame for ``loaded``.

    Parameters
    ----------
    loaded : LoadedSpec
        The spec (``valuechain.spec.load_spec``).
    as_of : datetime, optional
        Extraction time; default the latest time in the sources. Rows whose label horizon
        ends after it are immature: dropped and counted.
    engine : str, mapping or EngineConfig, optional
        The engine (short name, settings such as ``{"type": "duckdb", "threads": 2}``, or a
        config); default the spec's ``engine``, else DuckDB.
    force : bool
        Rebuild even when the spec, the sources and the engine settings are unchanged.
    accept_early_times : bool
        Accept times at or before 1970-01-01 in columns that also hold later times (refused
        by default as "missing" placeholders; docs/point-in-time.md).

    Examples
    --------
    >>> from valuechain.spec import load_spec  # doctest: +SKIP
    >>> build_frame(load_spec("examples/fraud")).rows.mature  # doctest: +SKIP
    """
    started = time.perf_counter()
    out_dir = loaded.workspace / "build"
    frame_path, manifest_path = out_dir / "frame.parquet", out_dir / "manifest.json"
    plan = make_plan(loaded, as_of, accept_early_times=accept_early_times)
    chosen = select_engine(loaded, engine)
    engine_settings = chosen.config.model_dump(mode="json")
    catalog = Catalog(plan)
    if progress:
        progress("sources", 0.02)
    infos = {name: catalog.info(name) for name in plan.sources}
    _check_decision_keys(plan, catalog)
    catalog.con.close()
    key = _cache_key(loaded, {n: i.fingerprint for n, i in infos.items()}, as_of,
                     engine_settings, ("early_times",) if accept_early_times else ())
    previous = _previous_manifest(manifest_path) if not force and frame_path.exists() else None
    if previous is not None:
        recorded = previous.get("frame", {}).get("fingerprint")
        if (previous.get("cache_key") == key and recorded and "rows" in previous
                and recorded == fingerprint([frame_path])):
            if progress:
                progress("cached", 1.0)
            return BuildResult(frame_path, manifest_path, RowCounts(**previous["rows"]), True,
                               time.perf_counter() - started, previous, recorded)
    _check_not_empty(plan, infos)
    out = chosen.execute(plan, progress)
    if progress:
        progress("assemble", 0.9)
    frame, counts = finish_frame(plan, out)
    _check_rows(plan, out, counts, infos)
    write_parquet(frame_path, frame)
    frame_fingerprint = fingerprint([frame_path])
    seconds = time.perf_counter() - started
    lab = loaded.spec.label
    manifest = {
        "valuechain_version": __version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cache_key": key,
        "engine": chosen.name,
        "engine_config": engine_settings,
        "spec": {"path": str(loaded.path), "hash": loaded.hash,
                 "project": loaded.spec.project.name},
        "as_of": us_to_datetime(out.as_of_us, out.aware).isoformat(),
        "as_of_source": "--as-of" if as_of else "latest time in the sources",
        "time_zone_aware": out.aware,
        "sources": {n: i.__dict__ for n, i in infos.items()},
        "rows": counts.__dict__,
        "dropped": {name: dict(reasons) for name, reasons in out.dropped.items()},
        "label_delay": _delay_entry(plan, out, counts),
        "label": {**lab.model_dump(mode="json", exclude_none=True)},
        "frame": {"path": frame_path.name, "columns": frame.column_names,
                  "id_column": ID_COLUMN, "fingerprint": frame_fingerprint,
                  "id_columns": list(plan.id_columns), "time_column": plan.time_column},
        "features": [
            {"name": f.name, "kind": f.kind, "definition": f.model_dump(mode="json",
                                                                       exclude_none=True),
             **_column_stats(frame, f.name)}
            for f in loaded.spec.features
        ],
        "build_seconds": round(seconds, 3),
    }
    write_json(manifest_path, manifest)
    if progress:
        progress("done", 1.0)
    return BuildResult(frame_path, manifest_path, counts, False, seconds, manifest,
                       frame_fingerprint)


def _days(us: int) -> str:
    return f"{us / 86_400_000_000:.4g} days"


def _check_decision_keys(plan: Plan, catalog: Catalog) -> None:
    """DataError when a key column of the decision source is empty (null) in some rows."""
    if plan.own is None:
        return
    for k in plan.decision_keys:
        if k not in catalog.columns(plan.own):
            continue  # the engine's column check names it
        empty = int(catalog.scalar(f"SELECT count(*) FROM {catalog.view(plan.own)} "
                                   f"WHERE {quote_ident(k)} IS NULL") or 0)
        if empty:
            raise DataError(
                f"{plan.where('sources', plan.own, 'keys')}: key column '{k}' of decision "
                f"source '{plan.own}' ({catalog.display_path(plan.own)}) is empty (null) in "
                f"{empty:,} rows. Expected every decision to have its key (it is the "
                "decision's identity, `decision_id`); fill the key at the source or drop "
                "those rows."
            )


def _check_not_empty(plan: Plan, infos: Mapping[str, SourceInfo]) -> None:
    """DataError when the decision source or the outcome source has no rows at all."""
    decisions = plan.own or (plan.points.population
                             if not isinstance(plan.points, EventPointsPlan) else None)
    for name, what, consequence in (
            (decisions, "decision source", "there is no decision to learn from"),
            (plan.label.source, "outcome source", "every label would be 0")):
        if name is None or infos[name].rows:
            continue
        raise DataError(
            f"{plan.where('sources', name, 'path')}: {what} '{name}' ({infos[name].path}) has "
            f"0 rows: {consequence}. Expected the extracted data; check the file (an export "
            "that wrote only the header?) and the `path`."
        )


def _check_rows(plan: Plan, out: EngineOutput, counts: RowCounts,
                infos: Mapping[str, SourceInfo]) -> None:
    """DataError when no decision row, or no mature label, is left: say why, with figures."""
    as_of = us_to_datetime(out.as_of_us, out.aware).isoformat()
    outcome = plan.label.source
    if outcome is not None:
        left_out = sum(out.dropped.get(outcome, {}).values())
        if left_out and left_out >= infos[outcome].rows:
            raise DataError(
                f"{plan.where('sources', outcome)}: all {infos[outcome].rows:,} rows of outcome "
                f"source '{outcome}' ({infos[outcome].path}) lack a time "
                f"({dict(out.dropped[outcome])}), so every label would be 0. Fill "
                "`event_time` (and `available_at`) at the source."
            )
    if counts.total == 0:
        source = plan.own
        if source is not None:
            raise DataError(
                f"{plan.where('sources', source, 'event_time')}: decision source '{source}' "
                f"({infos[source].path}) has {infos[source].rows:,} rows but none with a time "
                f"({dict(out.dropped.get(source, {}))}): there is no decision point. Fill the "
                "event times at the source."
            )
        raise DataError(
            f"{plan.where('decision_points', 'schedule')}: the schedule makes no decision "
            f"point up to as_of {as_of}: no entity of the population is seen by then. Check "
            "`schedule.start` and `end` against the population's times."
        )
    if counts.mature == 0:
        first = int(pc.min(out.frame.column("__t")).as_py())
        needed = first + plan.label.horizon_us + out.label_delay_us
        delay = (f" + outcome delay {_days(out.label_delay_us)} ({out.label_delay_basis})"
                 if out.label_delay_us else "")
        raise DataError(
            f"{plan.where('label', 'horizon')}: none of the {counts.total:,} decision rows has "
            f"a mature label: as_of is {as_of}, and the earliest decision "
            f"({us_to_datetime(first, out.aware).isoformat()}) + horizon "
            f"{_days(plan.label.horizon_us)}{delay} ends at "
            f"{us_to_datetime(needed, out.aware).isoformat()}. A label is final only when "
            "t + horizon + delay <= as_of. Use data extracted later (or a later `--as-of`), "
            "a shorter `label.horizon`"
            + (", or declare a shorter `reporting_delay` on the outcome source"
               if out.label_delay_us else "") + "."
        )


def _delay_entry(plan: Plan, out: EngineOutput, counts: RowCounts) -> dict[str, Any]:
    """The manifest's ``label_delay``: the outcome delay, how it was found, what it did."""
    entry: dict[str, Any] = {"seconds": out.label_delay_us / 1e6,
                             "basis": out.label_delay_basis,
                             "rows_made_immature": counts.immature_delay}
    src = plan.label.source
    if out.label_delay_basis == "inferred" and src is not None:
        ref = plan.sources[src]
        days = out.label_delay_us / 86_400_000_000
        entry["note"] = (
            f"inferred as the largest '{ref.available_at}' - '{ref.event_time}' of outcome "
            f"source '{src}' ({days:.4g} days): a label is mature only when t + horizon + "
            f"this delay <= as_of. Declare `sources.{src}.reporting_delay` (e.g. "
            f"'{max(1, round(days + 0.4999))}d') to make it explicit.")
    return entry


def _column_stats(frame: pa.Table, name: str) -> dict[str, Any]:
    column = frame.column(name)
    stats: dict[str, Any] = {"type": str(column.type),
                             "null_share": round(column.null_count / max(len(column), 1), 6)}
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        stats["mean"] = pc.mean(column).as_py()
        stats["min"] = pc.min(column).as_py()
        stats["max"] = pc.max(column).as_py()
    return stats
