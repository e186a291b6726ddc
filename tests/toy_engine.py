"""A toy second engine (pandas/numpy/pyarrow, no DuckDB) that proves the engine boundary.

It executes a :class:`~valuechain.data.plan.Plan` on its own: it reads the Parquet and CSV
files with pyarrow, converts times to epoch microseconds, makes the decision points (events
or a schedule), evaluates row features and ``where`` filters with a small interpreter over
the parsed sqlglot trees, and only then reuses the row-level window/lookup/label semantics of
:class:`~valuechain.data.pit.ReferenceKernel`. It is small and slow; the conformance suite
(`valuechain.testing.check_engine`) runs it against the reference.

Registered in the tests by class path, as a third-party engine would be:
``register_engine("toy", "tests.toy_engine:ToyEngine")``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, ClassVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
from sqlglot import exp

from valuechain.data.engines.base import EngineConfig, EngineOutput, Progress
from valuechain.data.engines.resolve import missing_reason
from valuechain.data.pit import (
    LABEL,
    LabelPlan,
    LookupPlan,
    PitProblem,
    ReferenceKernel,
    Window,
    label_delay,
)
from valuechain.data.plan import EventPointsPlan, Plan, SourceRef
from valuechain.data.sources import datetime_to_us
from valuechain.errors import DataError, EngineError
from valuechain.expressions import Expression

__all__ = ["ToyConfig", "ToyEngine", "interpret"]


class ToyConfig(EngineConfig):
    """The toy engine takes no options."""

    type: str = "toy"


# -- expressions: a tiny SQL interpreter, one row at a time, with SQL null semantics ----------
def _null_safe(fn: Callable[..., Any]) -> Callable[..., Any]:
    return lambda *args: None if any(a is None for a in args) else fn(*args)


_BINARY: dict[type[exp.Expression], Callable[[Any, Any], Any]] = {
    exp.Add: _null_safe(lambda a, b: a + b),
    exp.Sub: _null_safe(lambda a, b: a - b),
    exp.Mul: _null_safe(lambda a, b: a * b),
    exp.Div: _null_safe(lambda a, b: None if b == 0 else a / b),
    exp.GT: _null_safe(lambda a, b: a > b),
    exp.GTE: _null_safe(lambda a, b: a >= b),
    exp.LT: _null_safe(lambda a, b: a < b),
    exp.LTE: _null_safe(lambda a, b: a <= b),
    exp.EQ: _null_safe(lambda a, b: a == b),
    exp.NEQ: _null_safe(lambda a, b: a != b),
}
_CASTS: dict[str, Callable[[Any], Any]] = {
    "INT": int, "BIGINT": int, "DOUBLE": float, "FLOAT": float, "BOOLEAN": bool, "TEXT": str,
    "VARCHAR": str,
}


def interpret(node: exp.Expression, row: dict[str, Any]) -> Any:
    """The value of a parsed expression on one row (``None`` is SQL null)."""
    if isinstance(node, exp.Paren):
        return interpret(node.this, row)
    if isinstance(node, exp.Column):
        if node.name in row:
            return row[node.name]
        folded = {k.lower(): k for k in row}
        return row[folded[node.name.lower()]]
    if isinstance(node, exp.Literal):
        if node.is_string:
            return node.this
        text = str(node.this)
        return float(text) if any(c in text for c in ".eE") else int(text)
    if isinstance(node, exp.Boolean):
        return bool(node.this)
    if isinstance(node, exp.Null):
        return None
    if type(node) in _BINARY:
        return _BINARY[type(node)](interpret(node.this, row), interpret(node.expression, row))
    if isinstance(node, exp.Neg):
        value = interpret(node.this, row)
        return None if value is None else -value
    if isinstance(node, exp.And):
        left, right = interpret(node.this, row), interpret(node.expression, row)
        if left is False or right is False:
            return False
        return None if left is None or right is None else True
    if isinstance(node, exp.Or):
        left, right = interpret(node.this, row), interpret(node.expression, row)
        if left is True or right is True:
            return True
        return None if left is None or right is None else False
    if isinstance(node, exp.Not):
        value = interpret(node.this, row)
        return None if value is None else not value
    if isinstance(node, exp.Is) and isinstance(node.expression, exp.Null):
        return interpret(node.this, row) is None
    if isinstance(node, exp.Case):
        for branch in node.args.get("ifs") or []:
            if interpret(branch.this, row) is True:
                return interpret(branch.args["true"], row)
        default = node.args.get("default")
        return None if default is None else interpret(default, row)
    if isinstance(node, exp.Coalesce):
        for part in (node.this, *node.expressions):
            value = interpret(part, row)
            if value is not None:
                return value
        return None
    if isinstance(node, exp.In):
        value = interpret(node.this, row)
        return None if value is None else value in [interpret(e, row) for e in node.expressions]
    if isinstance(node, exp.Cast):
        value = interpret(node.this, row)
        target = node.to.this.name if hasattr(node.to.this, "name") else str(node.to.this)
        if target not in _CASTS:
            raise EngineError(f"toy engine: cannot cast to {target}")
        return None if value is None else _CASTS[target](value)
    if isinstance(node, exp.Abs):
        value = interpret(node.this, row)
        return None if value is None else abs(value)
    if isinstance(node, exp.Ln):
        value = interpret(node.this, row)
        return None if value is None else math.log(value)
    if isinstance(node, exp.Hour):
        value = interpret(node.this, row)
        return None if value is None else value.hour
    raise EngineError(
        f"toy engine: unsupported function or operator '{node.key}' in `{node.sql('duckdb')}`. "
        "It knows arithmetic, comparisons, AND/OR/NOT, IS NULL, IN, CASE, coalesce, CAST, "
        "abs, ln and hour."
    )


def _evaluate(expr: Expression, table: pa.Table) -> list[Any]:
    return [interpret(expr.tree, row) for row in table.to_pylist()]


# -- the engine -------------------------------------------------------------------------------
class ToyEngine:
    """Executes a plan with pyarrow and Python (for the conformance tests)."""

    name: ClassVar[str] = "toy"
    Config: ClassVar[type[EngineConfig]] = ToyConfig

    def __init__(self, config: EngineConfig | None = None) -> None:
        self.config = config if isinstance(config, ToyConfig) else ToyConfig.model_validate({})

    # reading and time ---------------------------------------------------------------------
    @staticmethod
    def _read(src: SourceRef) -> pa.Table:
        if src.path is None or not src.path.exists():
            raise DataError(f"source '{src.name}': {src.path} does not exist")
        if src.format == "parquet":
            files = sorted(src.path.rglob("*.parquet")) if src.path.is_dir() else [src.path]
            return pa.concat_tables([pq.read_table(f) for f in files])
        if src.format == "csv":
            return pacsv.read_csv(src.path)
        raise EngineError(f"toy engine: cannot read {src.format} sources")

    @staticmethod
    def _micros(column: pa.ChunkedArray) -> tuple[pa.Array, bool]:
        kind = column.type
        if pa.types.is_date(kind):
            column = pc.cast(column, pa.timestamp("us"))
            kind = column.type
        if not pa.types.is_timestamp(kind):
            raise DataError(f"toy engine: expected a timestamp column, got {kind}")
        aware = kind.tz is not None
        us = pc.cast(pc.cast(column, pa.timestamp("us", tz=kind.tz)), pa.int64())
        return us.combine_chunks(), aware

    def execute(self, plan: Plan, progress: Progress | None = None) -> EngineOutput:
        raw = {name: self._read(src) for name, src in plan.sources.items()}
        plan.check_columns({n: t.column_names for n, t in raw.items()})
        times: dict[tuple[str, str], pa.Array] = {}
        kinds: set[bool] = set()
        for name, src in plan.sources.items():
            for fld, column in src.time_fields():
                times[(name, fld)], aware = self._micros(raw[name].column(column))
                kinds.add(aware)
        if len(kinds) > 1:
            raise DataError("toy engine: time columns mix time-zone aware and naive timestamps")
        aware = kinds == {True}
        if plan.as_of is not None:
            as_of_us = datetime_to_us(plan.as_of)
        else:
            as_of_us = max(int(pc.max(a).as_py()) for a in times.values() if a.null_count < len(a))

        def avail(name: str) -> pa.Array | None:
            return times.get((name, "available_at"), times.get((name, "event_time")))

        own = plan.own
        dropped = 0
        dropped_by: dict[str, dict[str, int]] = {}

        def count_missing(name: str, fields: tuple[str, ...]) -> None:
            """Rows of ``name`` left out for a null time, once each, first null field."""
            src, earlier = plan.sources[name], pa.array([True] * raw[name].num_rows, pa.bool_())
            for fld in fields:
                column = getattr(src, fld)
                if not column or (name, fld) not in times:
                    continue
                null = pc.and_(pc.is_null(times[(name, fld)]), earlier)
                n = int(pc.sum(pc.cast(null, pa.int64())).as_py() or 0)
                if n:
                    dropped_by.setdefault(name, {})[missing_reason(fld, column)] = n
                earlier = pc.and_(earlier, pc.is_valid(times[(name, fld)]))

        if isinstance(plan.points, EventPointsPlan):
            assert own is not None
            table = raw[own].append_column("__t", times[(own, "event_time")])
            dropped = table.column("__t").null_count
            count_missing(own, ("event_time",))
            table = table.filter(pc.is_valid(table.column("__t")))
            table = table.append_column("__o", pa.array(self._tie(table, plan.points.keys),
                                                         pa.int64()))
            order = pc.sort_indices(table, [("__t", "ascending"), ("__o", "ascending")])
            points = table.take(order)
        else:
            points = self._schedule(plan, raw, avail(plan.points.population), as_of_us, aware)
        points = points.append_column("__row", pa.array(np.arange(points.num_rows)))
        for f in plan.row_features:
            values = _evaluate(f.expr, points)
            if f.fill is not None:
                values = [f.fill if v is None else v for v in values]
            points = points.append_column(f"__x_{f.name}", pa.array(values))
        tables: dict[str, pa.Table] = {}
        windows = []
        for i, w in enumerate(plan.windows):
            filt = f"__f{i}" if w.where is not None else None
            windows.append(Window(name=w.name, source=w.source, key=w.key, agg=w.agg,
                                  window_us=w.window_us, lag_us=w.lag_us, value=w.of,
                                  include_current=w.include_current, filter=filt,
                                  outcome=w.outcome, fill=w.fill))
            if w.source == own:
                if filt and w.where is not None:
                    points = points.append_column(filt, pa.array(_evaluate(w.where, points),
                                                                 pa.bool_()))
                continue
            if w.source not in tables:
                count_missing(w.source, ("available_at",) if plan.sources[w.source].available_at
                              else ("event_time",))
                src = raw[w.source]
                keys = plan.sources[w.source].keys or (w.key,)
                src = src.append_column("__t", avail(w.source))
                tables[w.source] = src.append_column("__o", pa.array(self._rank(src, keys)))
            if filt and w.where is not None:
                tables[w.source] = tables[w.source].append_column(
                    filt, pa.array(_evaluate(w.where, tables[w.source]), pa.bool_()))
        lookups = []
        for lk in plan.lookups:
            name = f"dim::{lk.source}"
            if name not in tables:
                known = [times[(lk.source, f)] for f in ("valid_from", "available_at")
                         if (lk.source, f) in times]
                if not known:
                    t = pa.nulls(raw[lk.source].num_rows, pa.int64())
                else:
                    t = known[0] if len(known) == 1 else pc.max_element_wise(*known)
                dim = raw[lk.source].append_column("__t", t)
                tables[name] = dim.append_column(
                    "__o", pa.array(self._rank(dim, plan.sources[lk.source].keys)))
            lookups.append(LookupPlan(name=lk.name, source=name, key=lk.key, on=lk.on,
                                      column=lk.column, fill=lk.fill))
        lab = plan.label
        delay = (0, "none")
        if lab.source is None:
            label = LabelPlan(kind=lab.kind, horizon_us=lab.horizon_us, column=lab.column)
        else:
            ref = plan.sources[lab.source]
            count_missing(lab.source, ("event_time", "available_at"))
            out = raw[lab.source]
            out = out.append_column("__e", times[(lab.source, "event_time")])
            out = out.append_column("__t", avail(lab.source))
            # Outcome rows without an event or availability time are no outcome.
            out = out.filter(pc.and_(pc.is_valid(out.column("__e")),
                                     pc.is_valid(out.column("__t"))))
            tables[lab.source] = out.append_column("__o", pa.array([0] * out.num_rows))
            label = LabelPlan(kind=lab.kind, horizon_us=lab.horizon_us, outcome=lab.source,
                              keys=plan.label_pairs(out.column_names), column=lab.column,
                              known_by_us=as_of_us)
            with_gap = ref.available_at and ref.available_at != ref.event_time
            delay = label_delay(ref.reporting_delay_us, [
                a - e for e, a in zip(out.column("__e").to_pylist(),
                                      out.column("__t").to_pylist(), strict=True)]
                if with_gap else None)
        problem = PitProblem(points=points, tables=tables, own=own, windows=tuple(windows),
                             lookups=tuple(lookups), label=label)
        computed = ReferenceKernel().compute(problem)
        cols: dict[str, Any] = {c: points.column(c) for c in (*plan.id_columns,
                                                              plan.time_column)}
        for f in plan.row_features:
            cols[f.name] = points.column(f"__x_{f.name}")
        for name in [w.name for w in plan.windows] + [lk.name for lk in plan.lookups]:
            cols[name] = computed.column(name)
        cols[LABEL] = computed.column(LABEL)
        cols["__t"] = points.column("__t")
        return EngineOutput(frame=pa.table(cols), as_of_us=as_of_us, aware=aware,
                            dropped_no_time=dropped, dropped=dropped_by,
                            label_delay_us=delay[0], label_delay_basis=delay[1])

    # decision points ------------------------------------------------------------------------
    @staticmethod
    def _rank(table: pa.Table, keys: tuple[str, ...]) -> list[int]:
        """Row number by the keys (nulls last), as the tie order of a source's rows."""
        if not keys:
            return [0] * table.num_rows
        rows = list(zip(*(table.column(k).to_pylist() for k in keys), strict=True))
        order = sorted(range(len(rows)), key=lambda i: tuple(
            (v is None, v if v is not None else 0) for v in rows[i]))
        rank = [0] * len(rows)
        for position, i in enumerate(order):
            rank[i] = position
        return rank

    def _tie(self, table: pa.Table, keys: tuple[str, ...]) -> list[int]:
        if len(keys) == 1 and pa.types.is_integer(table.column(keys[0]).type):
            return [int(v) for v in table.column(keys[0]).to_pylist()]
        return self._rank(table, keys)

    @staticmethod
    def _schedule(plan: Plan, raw: dict[str, pa.Table], seen_at: pa.Array | None,
                  as_of_us: int, aware: bool) -> pa.Table:
        sched = plan.points
        assert not isinstance(sched, EventPointsPlan) and seen_at is not None
        seen: dict[Any, list[int]] = {}
        for key, at in zip(raw[sched.population].column(sched.key).to_pylist(),
                           seen_at.to_pylist(), strict=True):
            if key is not None and at is not None:
                seen.setdefault(key, []).append(at)
        start = datetime_to_us(sched.start)
        end = datetime_to_us(sched.end) if sched.end else as_of_us
        rows = []
        for t in range(start, end + 1, sched.every_us):
            for key in sorted(seen):
                before = [a for a in seen[key] if a <= t]
                if not before:
                    continue
                if sched.active_within_us and max(before) <= t - sched.active_within_us:
                    continue
                rows.append((t, key))
        rank = {k: i + 1 for i, k in enumerate(sorted(seen))}
        tz = "UTC" if aware else None
        decision = [datetime.fromtimestamp(t / 1e6, UTC) if aware else
                    datetime.fromtimestamp(t / 1e6, UTC).replace(tzinfo=None) for t, _ in rows]
        return pa.table({
            sched.key: pa.array([k for _, k in rows], raw[sched.population].column(
                sched.key).type),
            "__t": pa.array([t for t, _ in rows], pa.int64()),
            "__o": pa.array([rank[k] for _, k in rows], pa.int64()),
            "decision_time": pa.array(decision, pa.timestamp("us", tz=tz)),
        })
