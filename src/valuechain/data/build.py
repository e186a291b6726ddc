"""``valuechain build``: the point-in-time training frame and its lineage manifest.

The spec is resolved into a :class:`~valuechain.data.pit.PitProblem` (all times as epoch
microseconds), computed by an engine, and written as ``<workspace>/build/frame.parquet``
beside ``manifest.json``. Immature rows (``t + horizon > as_of``) are dropped and counted.
Re-running on unchanged spec and inputs reuses the frame.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from valuechain import __version__
from valuechain.data.engines import get_engine
from valuechain.data.pit import KNOWN, LABEL, LabelPlan, LookupPlan, PitProblem, Window
from valuechain.data.sources import Catalog, datetime_to_us, us_to_datetime
from valuechain.errors import DataError, SpecError
from valuechain.io import write_json, write_parquet
from valuechain.spec.durations import to_micros
from valuechain.spec.loader import LoadedSpec
from valuechain.spec.models import (
    AggregateFeature,
    EventPoints,
    LookupFeature,
    RowFeature,
    SchedulePoints,
)
from valuechain.sql import quote_ident

__all__ = ["BuildResult", "Resolved", "RowCounts", "build_frame", "resolve"]

Progress = Callable[[str, float], None]
_INTS = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER")
_NUMERIC = ("INT", "DOUBLE", "FLOAT", "DECIMAL", "REAL", "BOOLEAN", "NUMERIC")
_WINDOW_FN = re.compile(r"\bover\s*\(", re.IGNORECASE)



@dataclass(frozen=True)
class RowCounts:
    total: int
    mature: int
    immature: int
    positive: int
    dropped_no_time: int = 0


@dataclass(frozen=True)
class BuildResult:
    frame: Path
    manifest_path: Path
    rows: RowCounts
    cached: bool
    seconds: float
    manifest: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "frame": str(self.frame),
            "manifest": str(self.manifest_path),
            "rows": self.rows.__dict__,
            "cached": self.cached,
            "seconds": round(self.seconds, 3),
            "as_of": self.manifest["as_of"],
        }


@dataclass(frozen=True)
class Resolved:
    """A spec resolved against its data: the problem plus what the frame keeps."""

    problem: PitProblem
    aware: bool
    as_of_us: int
    id_columns: tuple[str, ...]
    time_column: str
    row_features: tuple[str, ...]
    dropped_no_time: int


def _row_expr(feature: RowFeature) -> str:
    if feature.fill is None:
        return f"({feature.expr})"
    return f"coalesce(({feature.expr}), {feature.fill!r})"


# -- time ------------------------------------------------------------------------------------
def _time_columns(loaded: LoadedSpec) -> list[tuple[str, str, str]]:
    out = []
    for name, src in loaded.spec.sources.items():
        for field in ("event_time", "available_at", "valid_from"):
            column = getattr(src, field)
            if column:
                out.append((name, field, column))
    return out


def _awareness(catalog: Catalog) -> tuple[bool, dict[tuple[str, str], str]]:
    """Epoch-µs SQL for every declared time column; refuse naive/aware mixes."""
    sql: dict[tuple[str, str], str] = {}
    kinds: dict[bool, list[str]] = {True: [], False: []}
    for source, field, column in _time_columns(catalog.loaded):
        expr, aware = catalog.time_us(source, column, "sources", source, field)
        sql[(source, field)] = expr
        kinds[aware].append(f"sources.{source}.{field} ('{column}')")
    if kinds[True] and kinds[False]:
        raise DataError(
            f"{catalog.loaded.path.name}: time columns mix time-zone aware and naive timestamps. "
            f"Aware: {', '.join(kinds[True])}. Naive: {', '.join(kinds[False])}. Expected one "
            "kind; convert the naive columns to aware ones (e.g. AT TIME ZONE / tz_localize) "
            "or store all times as naive local times."
        )
    return bool(kinds[True]), sql


def _check_moment(loaded: LoadedSpec, value: datetime, aware: bool, field: str) -> int:
    if (value.tzinfo is not None) != aware:
        data_kind = "time-zone aware" if aware else "naive"
        raise SpecError(
            f"{loaded.path.name}: {field} ({value.isoformat()}) is "
            f"{'aware' if value.tzinfo else 'naive'} but the data's timestamps are {data_kind}. "
            f"Write it {'with an offset, e.g. 2025-01-01T00:00:00+00:00' if aware else 'without an offset'}."
        )
    return datetime_to_us(value)


def _availability(src_sql: dict[tuple[str, str], str], source: str) -> str | None:
    return src_sql.get((source, "available_at")) or src_sql.get((source, "event_time"))


# -- resolution ------------------------------------------------------------------------------
def resolve(
    loaded: LoadedSpec,
    catalog: Catalog,
    as_of: datetime | None = None,
    progress: Progress | None = None,
) -> Resolved:
    """Turn the spec and its sources into a :class:`PitProblem`."""
    spec = loaded.spec
    con = catalog.con
    aware, tsql = _awareness(catalog)
    if as_of is not None:
        as_of_us = _check_moment(loaded, as_of, aware, "--as-of")
    else:
        parts = [
            f"SELECT max({expr}) AS m FROM {catalog.view(src)}" for (src, _), expr in tsql.items()
        ]
        as_of_us = int(catalog.scalar(f"SELECT max(m) FROM ({' UNION ALL '.join(parts)})"))
    own = spec.event_source
    windows = [f for f in spec.features if isinstance(f, AggregateFeature)]
    row_feats = [f for f in spec.features if isinstance(f, RowFeature)]
    for index, feature in enumerate(spec.features):
        if isinstance(feature, RowFeature) and _WINDOW_FN.search(feature.expr):
            raise SpecError(
                f"{loaded.where('features', index, 'expr')}: feature '{feature.name}' uses a "
                "window function (OVER), which would see other rows, including later ones. Use "
                "an aggregate feature (`aggregate:`, `key:`, `window:`) instead."
            )

    # Decision points --------------------------------------------------------------------
    dp = spec.decision_points
    dropped = 0
    if isinstance(dp, EventPoints):
        assert own is not None
        src = spec.sources[own]
        keys = ", ".join(quote_ident(k) for k in src.keys)
        for k in src.keys:
            catalog.require_column(own, k, "sources", own, "keys")
        for k in dp.keep:
            catalog.require_column(own, k, "decision_points", "keep")
        t_sql = tsql[(own, "event_time")]
        filters = [
            f"({w.where}) AS {quote_ident(f'__f{i}')}"
            for i, w in enumerate(windows)
            if w.where and (w.source or own) == own
        ]
        feats = [f"{_row_expr(f)} AS {quote_ident('__x_' + f.name)}" for f in row_feats]
        extra = "".join(f", {e}" for e in feats + filters)
        dropped = int(catalog.scalar(
            f"SELECT count(*) FROM {catalog.view(own)} WHERE {t_sql} IS NULL"))
        dup = con.execute(
            f"SELECT {keys}, count(*) FROM {catalog.view(own)} GROUP BY ALL HAVING count(*) > 1 "
            "LIMIT 1"
        ).fetchone()
        if dup is not None:
            raise DataError(
                f"{loaded.where('sources', own, 'keys')}: keys {src.keys} do not identify one "
                f"row of source '{own}': {dict(zip(src.keys, dup[:-1], strict=False))} appears "
                f"{dup[-1]} times. Fix the duplicates or declare more key columns."
            )
        key_types = [catalog.columns(own)[k] for k in src.keys]
        # A single integer key is its own tie order; otherwise rank the keys.
        tie = (f"{quote_ident(src.keys[0])}::BIGINT" if len(src.keys) == 1 and key_types[0] in _INTS
               else f"row_number() OVER (ORDER BY {keys}) - 1")
        sql = f"""
            SELECT row_number() OVER (ORDER BY __t, __o) - 1 AS __row, *
            FROM (SELECT *, {t_sql} AS __t, {tie} AS __o
                          {extra}
                  FROM {catalog.view(own)} WHERE {t_sql} IS NOT NULL)
            ORDER BY __row"""
        id_columns = tuple(src.keys) + tuple(k for k in dp.keep if k not in src.keys)
        time_column = src.event_time or ""
    else:
        assert isinstance(dp, SchedulePoints)
        sched = dp.schedule
        pop = sched.population
        catalog.require_column(pop, sched.key, "decision_points", "schedule", "key")
        a_sql = _availability(tsql, pop)
        if a_sql is None:
            raise SpecError(
                f"{loaded.where('sources', pop)}: the population source needs `event_time` "
                "(when each entity was seen)."
            )
        start = _check_moment(loaded, sched.start, aware, "decision_points.schedule.start")
        end = (_check_moment(loaded, sched.end, aware, "decision_points.schedule.end")
               if sched.end else as_of_us)
        step = to_micros(sched.every)
        active = (f"AND last_seen > __t - {to_micros(sched.active_within)}"
                  if sched.active_within else "")
        key = quote_ident(sched.key)
        sql = f"""
            WITH ev AS (SELECT {key} AS k, {a_sql} AS a FROM {catalog.view(pop)}
                        WHERE {key} IS NOT NULL AND {a_sql} IS NOT NULL),
                 times AS (SELECT unnest(range({start}, {end + 1}, {step})) AS __t),
                 ents AS (SELECT k, min(a) AS first FROM ev GROUP BY k),
                 cand AS (SELECT k, __t FROM ents JOIN times ON first <= __t),
                 seen AS (SELECT c.k, c.__t, e.a AS last_seen FROM cand c
                          ASOF JOIN ev e ON c.k = e.k AND e.a <= c.__t)
            SELECT row_number() OVER (ORDER BY __t, k) - 1 AS __row, k AS {key}, __t,
                   dense_rank() OVER (ORDER BY k) AS __o,
                   make_timestamp(__t) AS decision_time
            FROM seen WHERE TRUE {active} ORDER BY __row"""
        id_columns = (sched.key,)
        time_column = "decision_time"
        if row_feats:
            inner = sql
            exprs = ", ".join(f"{_row_expr(f)} AS {quote_ident('__x_' + f.name)}" for f in row_feats)
            sql = f"SELECT *, {exprs} FROM ({inner}) ORDER BY __row"
    if progress:
        progress("decision points", 0.1)
    try:
        points = con.sql(sql).to_arrow_table()
    except Exception as err:  # duckdb raises many subclasses; all are user expression errors
        raise SpecError(
            f"{loaded.path.name}: could not compute the decision points or a row feature "
            f"expression: {str(err).splitlines()[0]}. Check `features[*].expr` and `where`."
        ) from None
    if aware and time_column == "decision_time":
        points = points.set_column(
            points.column_names.index("decision_time"), "decision_time",
            pc.assume_timezone(points.column("decision_time"), "UTC"))
    if progress:
        progress("decision points", 0.25)

    # Other sources ----------------------------------------------------------------------
    tables: dict[str, pa.Table] = {}
    plans: list[Window] = []
    for i, f in enumerate(windows):
        source = f.source or own
        assert source is not None
        index = spec.features.index(f)
        if f.key not in points.column_names:
            raise SpecError(
                f"{loaded.where('features', index, 'key')}: feature '{f.name}' groups by "
                f"'{f.key}', which the decision points do not have. Expected one of "
                f"{[c for c in points.column_names if not c.startswith('__')]}."
            )
        catalog.require_column(source, f.key, "features", index, "key")
        if f.of and not f.outcome_derived:
            kind = catalog.require_column(source, f.of, "features", index, "of")
            numeric = any(n in kind for n in _NUMERIC)
            if f.aggregate in ("sum", "mean", "std", "rate") and not numeric:
                raise DataError(
                    f"{loaded.where('features', index, 'of')}: feature '{f.name}' takes the "
                    f"{f.aggregate} of '{f.of}', whose type is {kind}. Expected a number or "
                    "boolean; use count/distinct_count/min/max, or cast it in a row feature."
                )
        if f.outcome_derived and f.aggregate not in ("count", "sum", "rate", "mean"):
            raise SpecError(
                f"{loaded.where('features', index, 'aggregate')}: an outcome-derived feature "
                f"(`of: label`) can be count, sum, rate or mean, not '{f.aggregate}'."
            )
        plans.append(Window(
            name=f.name, source=source, key=f.key, agg=f.aggregate,
            window_us=to_micros(f.window), lag_us=to_micros(f.lag),
            value=None if f.outcome_derived else f.of, include_current=f.include_current,
            filter=f"__f{i}" if f.where else None, outcome=f.outcome_derived, fill=f.fill,
        ))
        if source != own and source not in tables:
            a_sql = _availability(tsql, source)
            if a_sql is None:
                raise SpecError(
                    f"{loaded.where('sources', source)}: source '{source}' is aggregated by "
                    f"feature '{f.name}' but declares no `event_time` or `available_at`, so its "
                    "rows cannot be placed in time. Declare one."
                )
            src_keys = spec.sources[source].keys or [f.key]
            wheres = "".join(
                f", ({w.where}) AS {quote_ident(f'__f{j}')}"
                for j, w in enumerate(windows) if w.where and (w.source or own) == source
            )
            tables[source] = con.sql(
                f"SELECT *, {a_sql} AS __t, row_number() OVER (ORDER BY "
                f"{', '.join(quote_ident(k) for k in src_keys)}) - 1 AS __o{wheres} "
                f"FROM {catalog.view(source)}"
            ).to_arrow_table()
    lookups: list[LookupPlan] = []
    for index, feature in enumerate(spec.features):
        if not isinstance(feature, LookupFeature):
            continue
        lk = feature.lookup
        on = lk.on or lk.key
        if lk.key not in points.column_names:
            raise SpecError(
                f"{loaded.where('features', index, 'lookup', 'key')}: '{lk.key}' is not a column "
                "of the decision points."
            )
        catalog.require_column(lk.source, on, "features", index, "lookup", "on")
        catalog.require_column(lk.source, lk.column, "features", index, "lookup", "column")
        name = f"dim::{lk.source}"
        if name not in tables:
            known = [tsql[(lk.source, fld)] for fld in ("valid_from", "available_at")
                     if (lk.source, fld) in tsql]
            t_expr = (known[0] if len(known) == 1 else f"greatest({', '.join(known)})"
                      ) if known else "NULL::BIGINT"
            order = ", ".join(quote_ident(k) for k in spec.sources[lk.source].keys) or "1"
            tables[name] = con.sql(
                f"SELECT *, {t_expr} AS __t, row_number() OVER (ORDER BY {order}) - 1 AS __o "
                f"FROM {catalog.view(lk.source)}"
            ).to_arrow_table()
        lookups.append(LookupPlan(name=feature.name, source=name, key=lk.key, on=on,
                                  column=lk.column, fill=feature.fill))

    # Label ------------------------------------------------------------------------------
    lab = spec.label
    horizon = to_micros(lab.horizon)
    if lab.source is None:
        assert lab.column is not None
        catalog.require_column(own or "", lab.column, "label", "column")
        label = LabelPlan(kind=lab.kind, horizon_us=horizon, column=lab.column)
    else:
        out = lab.source
        e_sql = tsql.get((out, "event_time"))
        if e_sql is None:
            raise SpecError(
                f"{loaded.where('sources', out)}: the outcome source needs `event_time` (when "
                "the outcome happened); the label counts outcomes in (t, t + horizon]."
            )
        pairs = tuple((lab.keys or {}).items()) or tuple(
            (k, k) for k in (spec.sources[own].keys if own else id_columns)
            if k in catalog.columns(out)
        )
        if not pairs:
            raise SpecError(
                f"{loaded.where('label', 'keys')}: cannot tell how outcomes join decisions: no "
                f"key column is shared. Set `label.keys: {{decision_column: outcome_column}}`."
            )
        for a, b in pairs:
            if a not in points.column_names:
                raise SpecError(f"{loaded.where('label', 'keys')}: '{a}' is not a decision column.")
            catalog.require_column(out, b, "label", "keys")
        if lab.kind == "amount":
            catalog.require_column(out, lab.column or "", "label", "column")
        a_sql = _availability(tsql, out)
        tables[out] = con.sql(
            f"SELECT *, {e_sql} AS __e, {a_sql} AS __t, 0 AS __o FROM {catalog.view(out)}"
        ).to_arrow_table()
        label = LabelPlan(kind=lab.kind, horizon_us=horizon, outcome=out, keys=pairs,
                          column=lab.column)
    problem = PitProblem(points=points, tables=tables, own=own, windows=tuple(plans),
                         lookups=tuple(lookups), label=label)
    return Resolved(problem=problem, aware=aware, as_of_us=as_of_us, id_columns=id_columns,
                    time_column=time_column, row_features=tuple(f.name for f in row_feats),
                    dropped_no_time=dropped)


# -- the stage -------------------------------------------------------------------------------
def _cache_key(loaded: LoadedSpec, fingerprints: dict[str, str], as_of: datetime | None,
               engine: str) -> str:
    payload = json.dumps({"spec": loaded.hash, "sources": fingerprints, "engine": engine,
                          "as_of": as_of.isoformat() if as_of else None,
                          "version": __version__}, sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()[:20]


def assemble(resolved: Resolved, computed: pa.Table, label_name: str, horizon_us: int,
             binary: bool) -> tuple[pa.Table, RowCounts]:
    """The frame: ids, time, features, label; mature rows only."""
    points = resolved.problem.points
    cols: dict[str, pa.ChunkedArray] = {}
    for name in (*resolved.id_columns, resolved.time_column):
        cols[name] = points.column(name)
    names = [f for f in computed.column_names if f not in (LABEL, KNOWN)]
    for name in resolved.row_features:
        cols[name] = points.column(f"__x_{name}")
    for name in names:
        cols[name] = computed.column(name)
    label = computed.column(LABEL)
    cols[label_name] = pc.cast(label, pa.int8()) if binary else pc.cast(label, pa.float64())
    frame = pa.table(cols)
    mature = pc.less_equal(pc.add(points.column("__t"), horizon_us), resolved.as_of_us)
    if label.null_count:
        nulls = pc.sum(pc.and_(mature, pc.is_null(label))).as_py() or 0
        if nulls:
            raise DataError(
                f"the label column has {nulls} empty values on mature rows. Expected a value "
                "for every decision whose horizon has passed; fill or drop them at the source."
            )
    kept = frame.filter(mature)
    positive = int(pc.sum(pc.greater(kept.column(label_name), 0)).as_py() or 0)
    counts = RowCounts(total=frame.num_rows, mature=kept.num_rows,
                       immature=frame.num_rows - kept.num_rows, positive=positive,
                       dropped_no_time=resolved.dropped_no_time)
    return kept, counts


def build_frame(
    loaded: LoadedSpec,
    *,
    as_of: datetime | None = None,
    engine: str = "duckdb",
    force: bool = False,
    progress: Progress | None = None,
) -> BuildResult:
    """Build (or reuse) the point-in-time frame for ``loaded``.

    Examples
    --------
    >>> from valuechain.spec import load_spec  # doctest: +SKIP
    >>> build_frame(load_spec("examples/fraud")).rows.mature  # doctest: +SKIP
    """
    started = time.perf_counter()
    out_dir = loaded.workspace / "build"
    frame_path, manifest_path = out_dir / "frame.parquet", out_dir / "manifest.json"
    catalog = Catalog(loaded)
    if progress:
        progress("sources", 0.02)
    infos = {name: catalog.info(name) for name in loaded.spec.sources}
    key = _cache_key(loaded, {n: i.fingerprint for n, i in infos.items()}, as_of, engine)
    if not force and manifest_path.exists() and frame_path.exists():
        previous = json.loads(manifest_path.read_text())
        if previous.get("cache_key") == key:
            if progress:
                progress("cached", 1.0)
            return BuildResult(frame_path, manifest_path, RowCounts(**previous["rows"]), True,
                               time.perf_counter() - started, previous)
    resolved = resolve(loaded, catalog, as_of, progress)
    if progress:
        progress("features and labels", 0.3)
    computed = get_engine(engine).compute(resolved.problem)
    if progress:
        progress("assemble", 0.9)
    lab = loaded.spec.label
    frame, counts = assemble(resolved, computed, lab.name, to_micros(lab.horizon),
                             lab.kind == "binary")
    write_parquet(frame_path, frame)
    seconds = time.perf_counter() - started
    manifest = {
        "valuechain_version": __version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "cache_key": key,
        "engine": engine,
        "spec": {"path": str(loaded.path), "hash": loaded.hash,
                 "project": loaded.spec.project.name},
        "as_of": us_to_datetime(resolved.as_of_us, resolved.aware).isoformat(),
        "as_of_source": "--as-of" if as_of else "latest time in the sources",
        "time_zone_aware": resolved.aware,
        "sources": {n: i.__dict__ for n, i in infos.items()},
        "rows": counts.__dict__,
        "label": {**lab.model_dump(mode="json", exclude_none=True)},
        "frame": {"path": frame_path.name, "columns": frame.column_names,
                  "id_columns": list(resolved.id_columns), "time_column": resolved.time_column},
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
    return BuildResult(frame_path, manifest_path, counts, False, seconds, manifest)


def _column_stats(frame: pa.Table, name: str) -> dict[str, Any]:
    column = frame.column(name)
    stats: dict[str, Any] = {"type": str(column.type),
                             "null_share": round(column.null_count / max(len(column), 1), 6)}
    if pa.types.is_integer(column.type) or pa.types.is_floating(column.type):
        stats["mean"] = pc.mean(column).as_py()
        stats["min"] = pc.min(column).as_py()
        stats["max"] = pc.max(column).as_py()
    return stats
