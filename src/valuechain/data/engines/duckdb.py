"""The DuckDB engine: sources read by DuckDB, point-in-time windows as sorted window functions.

Each group of windows sharing (source, key, lag, filter, include_current) becomes one sorted
pass. Rows are ordered by ``(key, time, tie order)``; for each decision the first member is
found by counting rows at or before the window start (a ``RANGE`` frame), and the aggregate
runs over a per-row ``ROWS`` frame from there to the last member, so ties, lags and the
decision's own row follow :mod:`valuechain.data.pit` exactly. Outcome-derived counts join the
(rare) positive rows by key and time range with the condition ``known <= t``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace
from typing import ClassVar

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from valuechain.data.engines.asof import asof_values
from valuechain.data.engines.base import EngineConfig, EngineOutput, Progress
from valuechain.data.engines.prefix import DECOMPOSABLE, SortedGroup, sort_group, window_values
from valuechain.data.engines.resolve import output, resolve
from valuechain.data.pit import DAY_US, EMPTY_ZERO, KNOWN, LABEL, RECENCY, PitProblem, Window
from valuechain.data.plan import Plan
from valuechain.data.sources import Catalog
from valuechain.errors import EngineError
from valuechain.sql import connect, quote_ident, quote_literal
from valuechain.threads import threads as default_threads

__all__ = ["DuckDBConfig", "DuckDBEngine", "DuckDBKernel"]

# aggregate -> (window call over value v, wrapper around the windowed result x)
_SQL_AGG = {
    "count": ("count({v})", "{x}"),
    "sum": ("sum({v})", "coalesce({x}::DOUBLE, 0.0)"),
    "mean": ("avg({v})", "{x}::DOUBLE"),
    "rate": ("avg({v}::DOUBLE)", "{x}"),
    "min": ("min({v})", "{x}"),
    "max": ("max({v})", "{x}"),
    "std": ("stddev_samp({v})", "{x}::DOUBLE"),
    "distinct_count": ("count(DISTINCT {v})", "{x}"),
}
_BIG = 9_223_372_036_854_775_807



def _recency_sql(agg: str, v: str, frame: str, own: bool, lag: int) -> str:
    """A recency aggregate over the frame (rows in ``(time, tie)`` order; members are the
    rows where ``v`` is not null); ``tm`` of the probing row is ``t`` (own source) or
    ``t - lag`` (another source)."""
    if agg == "last":
        return f"last_value({v} IGNORE NULLS) OVER ({frame})"
    t = "tm" if own else f"(tm + {lag})"
    pick = "min" if agg == "since_first" else "max"
    member_t = f"{pick}(CASE WHEN {v} IS NOT NULL THEN tm END) OVER ({frame})"
    return f"({t} - {member_t})::DOUBLE / {DAY_US}.0"


def _in_point_order(table: pa.Table, n: int) -> dict[str, pa.Array]:
    """Columns of a ``__row``-keyed table, in points order (rows absent become null)."""
    rows = np.asarray(table.column("__row").to_numpy(), dtype=np.int64)
    position = np.full(n, -1, dtype=np.int64)
    position[rows] = np.arange(len(rows), dtype=np.int64)
    take = pa.array(position, mask=position < 0)
    return {name: table.column(name).combine_chunks().take(take)
            for name in table.column_names if name != "__row"}


def _src(name: str) -> str:
    """The registered view of problem table ``name``."""
    return quote_ident(f"in_{name}")


class DuckDBConfig(EngineConfig):
    """Options of the DuckDB engine.

    >>> DuckDBConfig(type="duckdb", threads=2, memory_limit="8GB").threads
    2
    """

    type: str = "duckdb"
    threads: int | None = Field(None, ge=1, description="Threads; default VALUECHAIN_THREADS "
                                "or the machine's cores.")
    memory_limit: str | None = Field(
        None, pattern=r"^\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)$",
        description="DuckDB's memory limit, e.g. '8GB'.")


class DuckDBEngine:
    """The embedded default engine: DuckDB reads the sources and computes the frame.

    Decision points, times, row features and filters are DuckDB SQL (expressions translated
    with ``Expression.sql("duckdb")``); windows, lookups and labels run in
    :class:`DuckDBKernel`.

    >>> from valuechain.data.engines import get_engine
    >>> get_engine({"type": "duckdb", "threads": 1}).config.threads
    1
    """

    name: ClassVar[str] = "duckdb"
    Config: ClassVar[type[EngineConfig]] = DuckDBConfig

    def __init__(self, config: EngineConfig | None = None) -> None:
        self.config = (config if isinstance(config, DuckDBConfig)
                       else DuckDBConfig.model_validate({}))

    def execute(self, plan: Plan, progress: Progress | None = None) -> EngineOutput:
        config = self.config
        assert isinstance(config, DuckDBConfig)
        con = connect()
        try:
            con.execute(f"SET threads = {int(config.threads or default_threads())}")
            if config.memory_limit:
                con.execute(f"SET memory_limit = {quote_literal(config.memory_limit)}")
            resolved = resolve(plan, Catalog(plan, con=con), progress)
        finally:
            con.close()
        if progress:
            progress("features and labels", 0.3)
        kernel = DuckDBKernel(threads=config.threads, memory_limit=config.memory_limit)
        return output(plan, resolved, kernel.compute(resolved.problem))


class DuckDBKernel:
    """Windows, lookups and labels of a :class:`PitProblem` in DuckDB (see module doc)."""

    def __init__(self, threads: int | None = None, memory_limit: str | None = None) -> None:
        self.threads = threads or default_threads()
        self.memory_limit = memory_limit

    def compute(self, problem: PitProblem) -> pa.Table:
        con = connect()
        try:
            con.execute(f"SET threads = {int(self.threads)}")
            if self.memory_limit:
                con.execute(f"SET memory_limit = {quote_literal(self.memory_limit)}")
            con.execute("SET preserve_insertion_order = false")
            return self._compute(con, problem)
        except duckdb.Error as err:
            raise EngineError(f"DuckDB engine failed: {err}") from err
        finally:
            con.close()

    # -- orchestration -------------------------------------------------------------------
    def _compute(self, con: duckdb.DuckDBPyConnection, problem: PitProblem) -> pa.Table:
        con.register("points_in", problem.points)
        con.execute("CREATE TEMP TABLE points AS SELECT * FROM points_in")
        for name, table in problem.tables.items():
            if name != problem.own:
                con.register(f"in_{name}", table)
        parts: list[str] = []  # SELECT statements keyed by __row, joined at the end
        if problem.label is not None:
            self._labels(con, problem)
            parts.append("labels")
        elif LABEL in problem.points.column_names:  # given (see PitProblem)
            con.execute(f"CREATE TEMP TABLE labels AS SELECT __row, {LABEL}, {KNOWN} FROM points")
        groups: dict[tuple[object, ...], list[Window]] = defaultdict(list)
        for w in problem.windows:
            own = w.source == problem.own
            groups[(w.source, w.key, w.source_key, w.lag_us, w.filter,
                    w.include_current if own else True)].append(w)
        arrays: dict[str, pa.Array] = {}
        for index, windows in enumerate(groups.values()):
            first = windows[0]
            sorted_group = (sort_group(problem.points, first.key, first.filter)
                            if first.source == problem.own
                            and all(w.agg in DECOMPOSABLE for w in windows) else None)
            if sorted_group is not None:
                arrays.update(self._prefix_group(con, problem, windows, sorted_group))
                continue
            table = f"win_{index}"
            self._window_group(con, problem, windows, table)
            parts.append(table)
        for lookup in problem.lookups:
            arrays[lookup.name] = asof_values(problem.points, lookup.key,
                                              problem.table(lookup.source), lookup.on,
                                              lookup.column, lookup.fill)
        names = [LABEL, KNOWN] if problem.label is not None else []
        names += [w.name for w in problem.windows] + [lk.name for lk in problem.lookups]
        if not names:
            return pa.table({})
        n = problem.points.num_rows
        for part in parts:
            arrays.update(_in_point_order(con.sql(f"SELECT * FROM {part}").to_arrow_table(), n))
        return pa.table({name: arrays[name] for name in names})

    def _prefix_group(
        self,
        con: duckdb.DuckDBPyConnection,
        problem: PitProblem,
        windows: list[Window],
        group: SortedGroup,
    ) -> dict[str, pa.Array]:
        """Windows over the points, by sorted ranges; outcome numerators in SQL."""
        out = {}
        outcome = [(i, w) for i, w in enumerate(windows) if w.outcome]
        for w in windows:
            if not w.outcome:
                out[w.name] = window_values(group, problem.points, w)
        if not outcome:
            return out
        self._outcome_counts(con, problem, outcome, own=True)
        n_rows = problem.points.num_rows
        known = _in_point_order(con.sql("SELECT * FROM oc").to_arrow_table(), n_rows)
        con.execute("DROP TABLE oc")
        for i, w in outcome:
            members = window_values(group, problem.points, replace(
                w, agg="count", value=None, outcome=False, fill=None))
            count = pc.fill_null(known[f"c{i}"], 0)
            total = pc.fill_null(pc.cast(known[f"s{i}"], pa.float64()), 0.0)
            if w.agg == "count":
                value = count
            elif w.agg == "sum":
                value = total
            else:
                value = pc.if_else(pc.greater(members, 0),
                                   pc.divide(total, pc.cast(members, pa.float64())), None)
                if w.fill is not None:
                    value = pc.fill_null(value, w.fill)
            out[w.name] = value
        return out

    # -- labels --------------------------------------------------------------------------
    def _labels(self, con: duckdb.DuckDBPyConnection, problem: PitProblem) -> None:
        plan = problem.label
        assert plan is not None
        if plan.outcome is None:
            assert plan.column is not None
            con.execute(f"""
                CREATE TEMP TABLE labels AS SELECT __row, {quote_ident(plan.column)} AS {LABEL},
                       __t + {plan.horizon_us} AS {KNOWN} FROM points""")
            return
        on = " AND ".join(f"p.{quote_ident(a)} = o.{quote_ident(b)}" for a, b in plan.keys)
        if plan.kind == "binary":
            value, known, empty = "1", "min(o.__t)", "0"
        else:
            value, known, empty = f"sum(o.{quote_ident(plan.column or '')})::DOUBLE", "max(o.__t)", "0.0"
            con.execute(f"CREATE TEMP VIEW outcome_rows AS SELECT * FROM {_src(plan.outcome)} "
                        f"WHERE {quote_ident(plan.column or '')} IS NOT NULL")
        source = "outcome_rows" if plan.kind == "amount" else _src(plan.outcome)
        known_by = "" if plan.known_by_us is None else f" AND o.__t <= {int(plan.known_by_us)}"
        if plan.absent:  # 1 when no outcome falls in the horizon, known at its end
            label = "CASE WHEN h.__row IS NULL THEN 1 ELSE 0 END"
            known_at = f"CASE WHEN h.__row IS NULL THEN p.__t + {plan.horizon_us} ELSE h.known END"
        else:
            label, known_at = f"coalesce(h.lab, {empty})", "h.known"
        con.execute(f"""
            CREATE TEMP TABLE labels AS
            WITH hits AS (
                SELECT p.__row, {value} AS lab, {known} AS known
                FROM points p JOIN {source} o
                  ON {on} AND o.__e > p.__t AND o.__e <= p.__t + {plan.horizon_us}
                 AND o.__e IS NOT NULL AND o.__t IS NOT NULL{known_by}
                GROUP BY p.__row)
            SELECT p.__row, {label} AS {LABEL}, {known_at} AS {KNOWN}
            FROM points p LEFT JOIN hits h USING (__row)""")

    # -- windows -------------------------------------------------------------------------
    def _window_group(
        self,
        con: duckdb.DuckDBPyConnection,
        problem: PitProblem,
        windows: list[Window],
        table: str,
    ) -> None:
        first = windows[0]
        own = first.source == problem.own
        lag = first.lag_us
        key, skey = quote_ident(first.key), quote_ident(first.source_key)
        filt = f"({quote_ident(first.filter)})" if first.filter else "TRUE"
        values = sorted({w.value for w in windows if w.value and not w.outcome})
        val_cols = ", ".join(
            f"CASE WHEN {filt} THEN {quote_ident(v)} END AS v{i}" for i, v in enumerate(values)
        )
        val_of = {v: f"v{i}" for i, v in enumerate(values)}
        sel_vals = f", {val_cols}" if val_cols else ""
        if own:
            # The points are the events: no union needed.
            con.execute(f"""
                CREATE TEMP TABLE u AS
                SELECT __row, {key} AS k, __t AS tm, __o AS tie, 0 AS rk,
                       CASE WHEN {filt} THEN 1 END AS ev{sel_vals}
                FROM points""")
            end_offset = lag  # frame ends `lag` before the row's own time
        else:
            src_vals = ", ".join(
                f"CASE WHEN {filt} THEN {quote_ident(v)} END AS v{i}" for i, v in enumerate(values)
            )
            null_vals = ", ".join(f"NULL AS v{i}" for i in range(len(values)))
            con.execute(f"""
                CREATE TEMP TABLE u AS
                SELECT NULL::BIGINT AS __row, {skey} AS k, __t AS tm, __o AS tie, 0 AS rk,
                       CASE WHEN {filt} THEN 1 END AS ev{", " + src_vals if src_vals else ""}
                FROM {_src(first.source)} WHERE __t IS NOT NULL AND {skey} IS NOT NULL
                UNION ALL
                SELECT __row, {key} AS k, __t - {lag} AS tm, {_BIG} AS tie, 1 AS rk,
                       NULL AS ev{", " + null_vals if null_vals else ""}
                FROM points""")
            end_offset = 0
        # Positions: pos (1-based, unique order), lo_w (rows at or before each window start),
        # hi (rows at or before the window end, when the end is before the row itself).
        los = ", ".join(
            f"count(*) OVER (PARTITION BY k ORDER BY tm RANGE BETWEEN UNBOUNDED PRECEDING "
            f"AND {w.window_us + end_offset} PRECEDING) AS lo{i}"
            for i, w in enumerate(windows)
        )
        hi = (
            f", count(*) OVER (PARTITION BY k ORDER BY tm RANGE BETWEEN UNBOUNDED PRECEDING "
            f"AND {end_offset} PRECEDING) AS hi"
            if end_offset
            else ""
        )
        con.execute(f"""
            CREATE TEMP TABLE pos AS
            SELECT *, row_number() OVER (PARTITION BY k ORDER BY tm, tie, rk) AS pos, {los}{hi}
            FROM u""")
        if end_offset:
            frame_end = "(pos - hi) PRECEDING"
        elif own and not first.include_current:
            frame_end = "1 PRECEDING"
        else:
            frame_end = "CURRENT ROW"
        exprs = []
        for i, w in enumerate(windows):
            frame = (f"PARTITION BY k ORDER BY tm, tie, rk ROWS BETWEEN (pos - lo{i} - 1) "
                     f"PRECEDING AND {frame_end}")
            if w.outcome:
                exprs.append(f"count(ev) OVER ({frame}) AS n{i}")
                continue
            v = "ev" if w.value is None else val_of[w.value]
            if w.agg in RECENCY:
                exprs.append(f"{_recency_sql(w.agg, v, frame, own, lag)} AS a{i}")
                continue
            call, wrap = _SQL_AGG[w.agg]
            windowed = f"{call.format(v=v)} OVER ({frame})"
            exprs.append(f"{wrap.format(x=windowed)} AS a{i}")
        probe = "TRUE" if own else "rk = 1"
        con.execute(f"""
            CREATE TEMP TABLE agg AS
            SELECT __row, k, {", ".join(exprs)}
            FROM pos QUALIFY {probe}""")
        outcome_windows = [(i, w) for i, w in enumerate(windows) if w.outcome]
        if outcome_windows:
            self._outcome_counts(con, problem, outcome_windows, own)
        cols = []
        for i, w in enumerate(windows):
            if w.outcome:
                known = f"coalesce(oc.s{i}, 0)"
                if w.agg == "count":
                    expr = f"coalesce(oc.c{i}, 0)"
                elif w.agg == "sum":
                    expr = f"coalesce(oc.s{i}, 0.0)::DOUBLE"
                else:
                    expr = f"CASE WHEN a.n{i} > 0 THEN {known}::DOUBLE / a.n{i} END"
            else:
                expr = f"a.a{i}"
            empty = "0" if w.agg in EMPTY_ZERO else "NULL"
            if w.outcome and w.agg in ("count", "sum"):
                empty = "0"
            expr = f"CASE WHEN a.k IS NULL THEN {empty} ELSE {expr} END"
            if w.fill is not None:
                expr = f"coalesce({expr}, {w.fill!r})"
            cols.append(f"{expr} AS {quote_ident(w.name)}")
        oc_join = "LEFT JOIN oc USING (__row)" if outcome_windows else ""
        con.execute(f"CREATE TEMP TABLE {table} AS SELECT a.__row, {', '.join(cols)} "
                    f"FROM agg a {oc_join}")
        con.execute("DROP TABLE u; DROP TABLE pos; DROP TABLE agg")
        if outcome_windows:
            con.execute("DROP TABLE oc")

    def _outcome_counts(
        self,
        con: duckdb.DuckDBPyConnection,
        problem: PitProblem,
        windows: list[tuple[int, Window]],
        own: bool,
    ) -> None:
        """Known positive outcomes per decision and window, by a range join on positives."""
        if not own:
            raise EngineError("outcome-derived windows must aggregate the decision source")
        first = windows[0][1]
        key = quote_ident(first.key)
        lag = first.lag_us
        filt = f"({quote_ident(first.filter)})" if first.filter else "TRUE"
        widest = max(w.window_us for _, w in windows)
        sums = []
        for i, w in windows:
            start = w.window_us + lag
            inside = (f"e.__t > p.__t - {start} AND "
                      + ("(e.__t < p.__t OR e.__o < p.__o)" if lag == 0
                         else f"e.__t <= p.__t - {lag}"))
            sums.append(f"count(*) FILTER (WHERE {inside}) AS c{i}")
            sums.append(f"sum(e.lab) FILTER (WHERE {inside}) AS s{i}")
        upper = "e.__t <= p.__t" if lag == 0 else f"e.__t <= p.__t - {lag}"
        con.execute(f"""
            CREATE TEMP TABLE oc AS
            WITH pos AS (
                SELECT p.__row, p.__t, p.__o, p.{key} AS k, l.{LABEL}::DOUBLE AS lab,
                       l.{KNOWN} AS known
                FROM points p JOIN labels l USING (__row)
                WHERE l.{LABEL} > 0 AND l.{KNOWN} IS NOT NULL AND p.{key} IS NOT NULL
                  AND {filt})
            SELECT p.__row, {", ".join(sums)}
            FROM points p JOIN pos e
              ON p.{key} = e.k AND e.__row <> p.__row AND e.known <= p.__t
             AND e.__t > p.__t - {widest + lag} AND {upper}
            GROUP BY p.__row""")
