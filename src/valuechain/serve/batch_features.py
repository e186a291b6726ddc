"""The features of a batch of decision events, computed by the offline engine.

:func:`batch_features` computes, for every decision event of a batch, the features the
online path would compute for it, in one vectorised build: the engine that made the training
frame (DuckDB by default) runs the bundle's plan with the decision source replaced by

- the decision source's own history: its rows *before the first event of the batch* (only as
  far back as the longest window over it looks, as :meth:`OnlineFeatures.warm
  <valuechain.serve.features.OnlineFeatures.warm>` keeps; rows whose keys the batch holds are
  left out, so an event present in both is counted once: the batch's copy wins), and
- the batch's events (cast to the source's column types).

Every other source (outcomes, dimensions, other event sources) is read as it is. The
point-in-time rules of :mod:`valuechain.data.pit` therefore hold by construction, as in the
training frame: windows see the history before the batch and the batch's earlier events,
tied events see those before them in key order, outcome-derived features count the outcomes
*known by each decision time* (reported during the batch included), dimension lookups are
as of each decision time.

Source rows of the decision source from the first event's time on that are not in the batch
are not history: the batch is the stream of decisions (as when the same events arrive at the
service after a warm-up to the first one).

>>> BatchFeatures.__dataclass_fields__.keys() >= {"frame", "history_rows", "seconds"}
True
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from valuechain.data.build import EngineChoice, select_engine
from valuechain.data.engines.resolve import awareness
from valuechain.data.plan import EventPointsPlan, Plan
from valuechain.data.sources import Catalog
from valuechain.errors import DataError, SpecError
from valuechain.spec.loader import LoadedSpec
from valuechain.sql import quote_ident

__all__ = ["ROW_COLUMN", "BatchFeatures", "batch_features"]

#: The column carrying each event's row number in the input through the build.
ROW_COLUMN = "vc_batch_row"


@dataclass(frozen=True)
class BatchFeatures:
    """The features of a batch, one row per event in decision order (time, then keys).

    ``frame`` holds :data:`ROW_COLUMN` (the event's row in the input), the plan's id and time
    columns, every feature by name and ``__t`` (epoch µs); ``events`` the input's columns,
    those of the decision source cast to its types (what the service's ``check_event``
    makes of an event), row for row with ``frame``; ``history_rows`` the decision
    source's rows used as history; ``aware`` whether times are UTC instants; ``seconds`` the
    wall time (``build`` inside it: the engine).
    """

    frame: pa.Table
    events: pa.Table
    history_rows: int
    first_us: int
    aware: bool
    seconds: dict[str, float]


def _where(name: str, column: str | None = None) -> str:
    return f"`input` {name}" + (f", column '{column}'" if column else "")


def _input_view(catalog: Catalog, plan: Plan, events: pd.DataFrame, name: str,
                required: tuple[str, ...]) -> tuple[list[str], str]:
    """Register the events cast to the decision source's types as view ``vc_events``; the
    source's columns and the SQL selecting every input column (cast where the source has
    it), in the input's order."""
    own = plan.own
    assert own is not None
    types = catalog.columns(own)
    missing = [c for c in required if c not in events.columns]
    if missing:
        raise DataError(
            f"{_where(name, missing[0])}: missing column(s) {missing}. The decision events "
            f"need the columns of source '{own}' the features read: {list(required)} "
            f"(keys {list(plan.decision_keys)}, time '{plan.time_column}').")
    if ROW_COLUMN in events.columns:
        raise DataError(f"{_where(name, ROW_COLUMN)}: '{ROW_COLUMN}' is reserved for batch "
                        "scoring; rename the column.")
    con = catalog.con
    con.register("vc_raw", events.assign(**{ROW_COLUMN: np.arange(len(events))}))
    raw_types = {str(r[0]): str(r[1]) for r in con.execute("DESCRIBE vc_raw").fetchall()}
    selects = []
    cast: dict[str, str] = {}
    for column, kind in types.items():
        ident = quote_ident(column)
        if column not in events.columns:
            selects.append(f"CAST(NULL AS {kind}) AS {ident}")
            continue
        source = ident
        if kind == "TIMESTAMP" and raw_types.get(column) == "VARCHAR":
            source = f"CAST({ident} AS TIMESTAMPTZ)"  # text with an offset: its UTC instant
        elif kind == "TIMESTAMP" and raw_types.get(column) == "TIMESTAMP WITH TIME ZONE":
            source = f"timezone('UTC', {ident})"
        bad = con.execute(f"SELECT {ident} FROM vc_raw WHERE {ident} IS NOT NULL AND "
                          f"try_cast({source} AS {kind}) IS NULL LIMIT 1").fetchall()
        if bad:
            raise DataError(
                f"{_where(name, column)}: value {bad[0][0]!r} is not a {kind} (the type of "
                f"column '{column}' of source '{own}'). Convert the column.")
        selects.append(f"CAST({source} AS {kind}) AS {ident}")
        cast[column] = selects[-1]
    as_given = ", ".join(cast.get(str(c), quote_ident(str(c))) for c in events.columns)
    con.execute(f"CREATE VIEW vc_events AS SELECT {', '.join(selects)}, {ROW_COLUMN} "
                "FROM vc_raw").fetchall()
    for column in (*plan.decision_keys, plan.time_column):
        empty = con.execute(f"SELECT count(*) FROM vc_events WHERE {quote_ident(column)} IS "
                            "NULL").fetchall()
        if empty[0][0]:
            raise DataError(f"{_where(name, column)}: empty (null) in {empty[0][0]:,} rows; every "
                            "decision event needs its keys and its time.")
    keys = ", ".join(quote_ident(k) for k in plan.decision_keys)
    dups = con.execute(f"SELECT {keys}, count(*) FROM vc_events GROUP BY ALL HAVING "
                      "count(*) > 1 LIMIT 1").fetchall()
    if dups:
        dup = dups[0]
        raise DataError(
            f"{_where(name, ', '.join(plan.decision_keys))}: the keys "
            f"{dict(zip(plan.decision_keys, dup[:-1], strict=True))} appear {dup[-1]} times; "
            "each decision event must appear once.")
    return list(types), f"SELECT {as_given} FROM vc_raw ORDER BY {ROW_COLUMN}"


def batch_features(loaded: LoadedSpec, plan: Plan, events: pd.DataFrame, *,
                   name: str = "events", required: tuple[str, ...] = (),
                   lookback_us: int = 0, engine: EngineChoice = None,
                   progress: Callable[[str, float], None] | None = None) -> BatchFeatures:
    """The features of every event of ``events`` (see the module docstring).

    Parameters
    ----------
    loaded : LoadedSpec
        The project (its engine settings).
    plan : Plan
        The bundle's plan (:meth:`Bundle.plan <valuechain.registry.Bundle.plan>`); decision
        points must be events of a source.
    events : DataFrame
        The decision events: the decision source's columns (at least ``required``).
    name : str
        The input's name in messages (its file).
    required : tuple of str
        Columns the events must have (the features' inputs, keys and time).
    lookback_us : int
        How far before the first event the decision source's history is needed (the longest
        window over it, plus slack); 0 reads its whole history.
    engine : optional
        The offline engine (default the spec's, else DuckDB).
    """
    if not isinstance(plan.points, EventPointsPlan) or plan.own is None:
        raise SpecError(f"{plan.where('decision_points')}: batch scoring of events needs "
                        "decision points that are events of a source.")
    if events.empty:
        raise DataError(f"{_where(name)}: no rows to score.")
    started = time.perf_counter()
    own = plan.own
    seconds: dict[str, float] = {}
    catalog = Catalog(plan)
    with tempfile.TemporaryDirectory(prefix="valuechain-batch-") as tmp:
        target = Path(tmp) / f"{own}.parquet"
        try:
            _, tsql = awareness(catalog)
            columns, given = _input_view(catalog, plan, events, name,
                                         required or (*plan.decision_keys, plan.time_column))
            con = catalog.con
            own_t = tsql[(own, "event_time")]
            first = con.execute(f"SELECT min({own_t}) FROM vc_events").fetchall()
            assert first[0][0] is not None
            first_us = int(first[0][0])
            match = " AND ".join(f"e.{quote_ident(k)} IS NOT DISTINCT FROM "
                                 f"s.{quote_ident(k)}" for k in plan.decision_keys)
            since = f" AND {own_t} > {first_us - lookback_us}" if lookback_us > 0 else ""
            cols = ", ".join(quote_ident(c) for c in columns)
            history = (f"SELECT {cols}, CAST(NULL AS BIGINT) AS {ROW_COLUMN} FROM "
                       f"{catalog.view(own)} AS s WHERE {own_t} < {first_us}{since} AND NOT "
                       f"EXISTS (SELECT 1 FROM vc_events AS e WHERE {match})")
            if progress:
                progress("history", 0.02)
            con.execute(f"COPY ({history} UNION ALL SELECT {cols}, {ROW_COLUMN} FROM "
                        f"vc_events) TO '{target}' (FORMAT parquet)").fetchall()
            counted = con.execute(f"SELECT count(*) FROM read_parquet('{target}') WHERE "
                                  f"{ROW_COLUMN} IS NULL").fetchall()
            history_rows = int(counted[0][0])
            typed = con.sql(given).to_arrow_table()
        finally:
            catalog.con.close()
        seconds["history"] = time.perf_counter() - started
        ref = replace(plan.sources[own], format="parquet", path=target, table=None)
        points = replace(plan.points, keep=(*plan.points.keep, ROW_COLUMN))
        batch_plan = replace(plan, sources={**plan.sources, own: ref}, points=points)
        begun = time.perf_counter()
        out = select_engine(loaded, engine).execute(batch_plan, progress)
        seconds["build"] = time.perf_counter() - begun
    frame = out.frame
    mask = pc.is_valid(frame.column(ROW_COLUMN))
    keep = [ROW_COLUMN, *plan.id_columns, plan.time_column, *plan.feature_names, "__t"]
    chosen = frame.filter(mask).select(list(dict.fromkeys(keep)))
    if chosen.num_rows != len(events):
        raise DataError(
            f"{_where(name, plan.time_column)}: {len(events) - chosen.num_rows:,} events were "
            "left out of the build (a time the engine could not place); check the column.")
    rows = pc.cast(chosen.column(ROW_COLUMN), pa.int64())
    seconds["total"] = time.perf_counter() - started
    return BatchFeatures(frame=chosen, events=typed.take(rows), history_rows=history_rows,
                         first_us=first_us, aware=out.aware, seconds=seconds)
