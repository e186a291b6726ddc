"""Reading a plan's sources with DuckDB into a :class:`~valuechain.data.pit.PitProblem`.

Shared by the DuckDB and the reference engine: sources are opened as DuckDB views
(:class:`~valuechain.data.sources.Catalog`), times become epoch microseconds, decision points
are made (events or a schedule), row features and ``where`` filters are computed from their
parsed expressions translated to DuckDB SQL, and the other sources are read with their
availability time and tie order. What happens next (windows, lookups, labels) is the
kernel's job; :func:`output` assembles the kernel's columns into an
:class:`~valuechain.data.engines.base.EngineOutput`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from valuechain.data.engines.base import EngineOutput, Progress
from valuechain.data.pit import (
    KNOWN,
    LABEL,
    LabelPlan,
    LookupPlan,
    PitProblem,
    Window,
    label_delay,
    scheduled_members,
)
from valuechain.data.plan import EventPointsPlan, Plan, SchedulePlan
from valuechain.data.sources import Catalog, datetime_to_us, us_to_datetime
from valuechain.errors import DataError, SpecError
from valuechain.expressions import Expression
from valuechain.sql import quote_ident, quote_literal

__all__ = ["Resolved", "awareness", "missing_reason", "output", "resolve",
           "schedule_points_sql"]

_INTS = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER")
_NUMERIC = ("INT", "DOUBLE", "FLOAT", "DECIMAL", "REAL", "BOOLEAN", "NUMERIC")


@dataclass(frozen=True)
class Resolved:
    """A plan resolved against its data: the problem plus what the frame keeps."""

    problem: PitProblem
    aware: bool
    as_of_us: int
    dropped_no_time: int
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)
    label_delay_us: int = 0
    label_delay_basis: str = "none"


def _sql(expr: Expression) -> str:
    return f"({expr.sql('duckdb')})"


def _row_expr(expr: Expression, fill: float | None) -> str:
    return _sql(expr) if fill is None else f"coalesce({_sql(expr)}, {fill!r})"


def awareness(catalog: Catalog) -> tuple[bool, dict[tuple[str, str], str]]:
    """Epoch-µs SQL for every declared time column; refuse naive/aware mixes."""
    sql: dict[tuple[str, str], str] = {}
    kinds: dict[bool, list[str]] = {True: [], False: []}
    for source, src in catalog.sources.items():
        for fld, column in src.time_fields():
            expr, aware = catalog.time_us(source, column, "sources", source, fld)
            sql[(source, fld)] = expr
            kinds[aware].append(f"sources.{source}.{fld} ('{column}')")
    if kinds[True] and kinds[False]:
        raise DataError(
            f"{catalog.locator.file}: time columns mix time-zone aware and naive timestamps. "
            f"Aware (UTC instants, e.g. text with a UTC offset such as '+02:00' or 'Z'): "
            f"{', '.join(kinds[True])}. Naive (wall-clock, no offset): "
            f"{', '.join(kinds[False])}. Expected one kind; convert the naive columns to aware "
            "ones (e.g. AT TIME ZONE / tz_localize) or store all times as naive local times "
            "(without an offset)."
        )
    return bool(kinds[True]), sql


def check_moment(plan: Plan, value: datetime, aware: bool, field: str) -> int:
    """``value`` in epoch µs; SpecError when its awareness differs from the data's."""
    if (value.tzinfo is not None) != aware:
        data_kind = "time-zone aware" if aware else "naive"
        raise SpecError(
            f"{field}: {value.isoformat()} is "
            f"{'aware' if value.tzinfo else 'naive'} but the data's timestamps are {data_kind}. "
            f"Write it {'with an offset, e.g. 2025-01-01T00:00:00+00:00' if aware else 'without an offset'}."
        )
    return datetime_to_us(value)


def _availability(tsql: dict[tuple[str, str], str], source: str) -> str | None:
    return tsql.get((source, "available_at")) or tsql.get((source, "event_time"))


_DECIMAL_COMMA = r"^\s*[+-]?(\d{1,3}(\.\d{3})+|\d+),\d+\s*$"


def _text_values(catalog: Catalog, source: str, column: str) -> str:
    """What is in text ``column``: examples of values that are not numbers, and a hint
    when they are numbers written with a decimal comma (for messages)."""
    col, view = quote_ident(column), catalog.view(source)
    rows = catalog.con.execute(
        f"SELECT DISTINCT {col}::VARCHAR FROM {view} WHERE {col} IS NOT NULL AND "
        f"try_cast({col} AS DOUBLE) IS NULL LIMIT 3").fetchall()
    examples = ", ".join(repr(r[0]) for r in rows) or "none that fails to read as a number"
    text = (f"column '{column}' of source '{source}' ({catalog.display_path(source)}) holds "
            f"text (type {catalog.columns(source)[column]}), e.g. {examples}")
    commas = int(catalog.scalar(
        f"SELECT count(*) FROM {view} WHERE regexp_matches({col}::VARCHAR, "
        f"{quote_literal(_DECIMAL_COMMA)})") or 0)
    if commas:
        text += (f". {commas:,} values look like numbers written with a decimal comma: "
                 "write them with a decimal point at the source (a CSV: export with '.' as "
                 "the decimal separator, or read it with pandas `read_csv(..., decimal=',')` "
                 "and save it as Parquet)")
    else:
        text += ". Convert the column to numbers at the source"
    return text


def _is_number(kind: str) -> bool:
    return any(n in kind for n in _NUMERIC)


def _check_types(plan: Plan, catalog: Catalog) -> None:
    """DataError naming the feature, the column and the file when a number is text."""
    for w in plan.windows:
        if w.of is None:
            continue
        kind = catalog.columns(w.source)[w.of]
        if w.agg == "last" and w.fill is not None and not _is_number(kind):
            raise DataError(
                f"{plan.where('features', w.index, 'fill')}: feature '{w.name}' is the last "
                f"'{w.of}' of source '{w.source}' ({catalog.display_path(w.source)}), of type "
                f"{kind}, but `fill` is the number {w.fill!r}. Expected no `fill` for a "
                "non-numeric column (an empty window stays null); remove `fill`."
            )
        if w.agg in ("sum", "mean", "std", "rate") and not _is_number(kind):
            detail = (_text_values(catalog, w.source, w.of) if "VARCHAR" in kind else
                      f"column '{w.of}' of source '{w.source}' "
                      f"({catalog.display_path(w.source)}) has type {kind}")
            raise DataError(
                f"{plan.where('features', w.index, 'of')}: feature '{w.name}' takes the "
                f"{w.agg} of '{w.of}': {detail}. Expected a number or boolean; or use "
                "count/distinct_count/min/max."
            )
    _check_key_types(plan, catalog)
    lab = plan.label
    if lab.kind == "amount" and lab.source is not None and lab.column:
        kind = catalog.columns(lab.source)[lab.column]
        if not _is_number(kind):
            detail = (_text_values(catalog, lab.source, lab.column) if "VARCHAR" in kind else
                      f"column '{lab.column}' has type {kind}")
            raise DataError(f"{plan.where('label', 'column')}: the amount label sums "
                            f"'{lab.column}': {detail}. Expected a number.")


def _check_key_types(plan: Plan, catalog: Catalog) -> None:
    """DataError when a join key is text on one side and a number on the other (the rows
    would never match, or the engine would fail with a bare type error)."""
    own = plan.own
    if own is None:
        return
    pairs: list[tuple[tuple[str | int, ...], str, str, str]] = []
    for w in plan.windows:
        if w.source != own:
            pairs.append((("features", w.index, "key"), w.key, w.source, w.key))
    for lk in plan.lookups:
        pairs.append((("features", lk.index, "lookup", "on"), lk.key, lk.source, lk.on))
    if plan.label.source is not None:
        for a, b in plan.label_pairs(list(catalog.columns(plan.label.source))):
            pairs.append((("label", "keys"), a, plan.label.source, b))
    for loc, mine, source, theirs in pairs:
        left = catalog.columns(own).get(mine, "")
        right = catalog.columns(source).get(theirs, "")
        if not left or not right or ("VARCHAR" in left) == ("VARCHAR" in right):
            continue
        raise DataError(
            f"{plan.where(*loc)}: decisions join source '{source}' "
            f"({catalog.display_path(source)}) on '{mine}' ({left}, in '{own}') = '{theirs}' "
            f"({right}): text on one side, a number on the other, so no row would match. "
            "Expected the same type; store the key with one type in both sources."
        )


def _expression_error(plan: Plan, catalog: Catalog, err: duckdb.Error,
                      what: str) -> DataError | SpecError:
    """The message for a failed query computing row features or filters: each expression
    is evaluated on its own to find the culprit, whose text columns are described."""
    candidates: list[tuple[Expression, tuple[str | int, ...], str, str]] = []
    if plan.own is not None:
        candidates += [(f.expr, ("features", f.index, "expr"), f.name, plan.own)
                       for f in plan.row_features]
    candidates += [(w.where, ("features", w.index, "where"), w.name, w.source)
                   for w in plan.windows if w.where is not None]
    for expr, loc, name, source in candidates:
        try:
            catalog.first(f"SELECT count({_sql(expr)}) FROM {catalog.view(source)}")
        except duckdb.Error as own_err:
            said = str(own_err).splitlines()[0].rstrip(". ")
            text = [c for c in sorted(expr.columns)
                    if "VARCHAR" in catalog.columns(source).get(c, "")]
            detail = ("; ".join(_text_values(catalog, source, c) for c in text) if text else
                      f"source '{source}' ({catalog.display_path(source)})")
            return DataError(
                f"{plan.where(*loc)}: feature '{name}' (`{expr.text}`) cannot be computed: "
                f"{detail}. DuckDB said: {said}. Expected the columns it reads to have the "
                "types it needs; fix the column's values or type, or the expression."
            )
    return SpecError(
        f"{plan.locator.file}: could not compute {what}: {str(err).splitlines()[0]}. "
        "Check `features[*].expr` and `where`."
    )


def _check_unique_keys(plan: Plan, catalog: Catalog) -> None:
    """DataError when a keyed source (other than the decision source, which
    :func:`valuechain.data.build.decision_ids` checks) has two rows for one key.

    A dimension is keyed by its keys plus its version time (``valid_from``, else
    ``available_at``): two versions of one key valid from the same moment would make a
    lookup read one of them arbitrarily. Events and outcomes: the keys alone.
    """
    for name, src in plan.sources.items():
        if not src.keys or name == plan.own:
            continue
        columns = list(src.keys)
        if src.role == "dimension":
            columns += [c for f, c in src.time_fields() if f in ("valid_from", "available_at")]
        cols = ", ".join(quote_ident(c) for c in columns)
        row = catalog.first(
            f"SELECT {cols}, count(*) AS n FROM {catalog.view(name)} GROUP BY ALL "
            f"HAVING count(*) > 1 ORDER BY n DESC LIMIT 1")
        if row is None:
            continue
        values = dict(zip(columns, [str(v) if v is not None else None for v in row[:-1]],
                          strict=True))
        groups = int(catalog.scalar(
            f"SELECT count(*) FROM (SELECT 1 FROM {catalog.view(name)} GROUP BY {cols} "
            "HAVING count(*) > 1)") or 0)
        where = catalog.where("sources", name, "keys")
        file = catalog.display_path(name)
        if src.role == "dimension":
            raise DataError(
                f"{where}: source '{name}' ({file}) has {row[-1]} rows for {values} "
                f"({groups:,} such duplicates in all): a lookup would read one of them "
                "arbitrarily. Expected one row per key and version time; remove the "
                "duplicates, give each version its own `valid_from`, or declare more key "
                "columns."
            )
        raise DataError(
            f"{where}: keys {list(src.keys)} do not identify one row of source '{name}' "
            f"({file}): {values} appears {row[-1]} times ({groups:,} such duplicates in all). "
            "Remove the duplicates or declare more key columns."
        )


_YEAR_US = 365 * 86_400_000_000


def _count_missing(catalog: Catalog, plan: Plan, source: str, fields: tuple[str, ...],
                   dropped: dict[str, dict[str, int]]) -> None:
    """Count (into ``dropped``) the rows of ``source`` a null time leaves out of the build.

    Each row is counted once, under the first of ``fields`` that is null
    (:func:`missing_reason` names the reason).
    """
    src = plan.sources[source]
    earlier: list[str] = []
    for fld in fields:
        column = getattr(src, fld)
        if not column or column in earlier:
            continue
        before = "".join(f" AND {quote_ident(c)} IS NOT NULL" for c in earlier)
        earlier.append(column)
        n = int(catalog.scalar(f"SELECT count(*) FROM {catalog.view(source)} "
                               f"WHERE {quote_ident(column)} IS NULL{before}") or 0)
        if n:
            dropped.setdefault(source, {})[missing_reason(fld, column)] = n


def missing_reason(fld: str, column: str) -> str:
    """The ``dropped`` reason for rows whose time ``column`` (spec field ``fld``) is null."""
    what = "event time" if fld == "event_time" else "availability time"
    return f"no {what} ('{column}')"


def _row_keys(plan: Plan, catalog: Catalog, source: str, condition: str) -> dict[str, Any]:
    """The key values (else every column) of the first row of ``source`` matching."""
    keys = list(plan.sources[source].keys)
    cols = ", ".join(quote_ident(k) for k in keys) if keys else "*"
    cursor = catalog.con.execute(
        f"SELECT {cols} FROM {catalog.view(source)} WHERE {condition} LIMIT 1")
    names = [d[0] for d in cursor.description or []]
    rows = cursor.fetchall()
    row = rows[0] if rows else ()
    return {n: (str(v) if v is not None else None) for n, v in zip(names, row, strict=False)}


def _check_known_after(plan: Plan, catalog: Catalog, source: str, e_sql: str,
                       a_sql: str | None) -> None:
    """DataError for outcome rows known before they happened (availability < event time)."""
    src = plan.sources[source]
    if not src.available_at or a_sql is None or src.available_at == src.event_time:
        return
    condition = f"{a_sql} < {e_sql}"
    n = int(catalog.scalar(f"SELECT count(*) FROM {catalog.view(source)} WHERE {condition}")
            or 0)
    if not n:
        return
    example = _row_keys(plan, catalog, source, condition)
    raise DataError(
        f"{catalog.where('sources', source, 'available_at')}: {n:,} rows of outcome source "
        f"'{source}' ({catalog.display_path(source)}) are known before they happened: "
        f"'{src.available_at}' < '{src.event_time}' (e.g. {example}). Expected the availability "
        "time at or after the event time; fix those rows, or swap `event_time` and "
        "`available_at` if the columns are declared the wrong way round."
    )


def _check_as_of_outlier(plan: Plan, catalog: Catalog, tsql: dict[tuple[str, str], str],
                         as_of_us: int, aware: bool) -> None:
    """DataError when the default ``as_of`` comes from a few rows far after all the others.

    Per time column holding the latest time: with ``k = max(1, rows // 1000)``, the
    ``k + 1``-th latest value is "the rest"; when the latest is more than a year and more
    than the whole span of the rest after it, the latest rows are outliers.
    """
    for (source, fld), expr in tsql.items():
        view = catalog.view(source)
        n, lo, hi = catalog.first(
            f"SELECT count({expr}), min({expr}), max({expr}) FROM {view}") or (0, None, None)
        if not n or hi is None or hi != as_of_us or n < 2:
            continue
        k = max(1, int(n) // 1000)
        rest = catalog.scalar(f"SELECT {expr} AS x FROM {view} WHERE {expr} IS NOT NULL "
                              f"ORDER BY x DESC LIMIT 1 OFFSET {k}")
        if rest is None or hi - rest <= max(rest - lo, _YEAR_US):
            continue
        column = getattr(plan.sources[source], fld)
        late = int(catalog.scalar(f"SELECT count(*) FROM {view} WHERE {expr} > {rest}") or 0)
        example = _row_keys(plan, catalog, source, f"{expr} = {hi}")
        latest = us_to_datetime(hi, aware).isoformat()
        others = us_to_datetime(rest, aware).isoformat()
        raise DataError(
            f"{catalog.where('sources', source, fld)}: column '{column}' of source '{source}' "
            f"({catalog.display_path(source)}) has {late:,} of {n:,} rows far after all the "
            f"others: the latest, {latest} (row {example}), against {others} for the rest. "
            "It would set the default `as_of` (the latest time in the sources) and turn "
            "outcomes not yet reported into final negatives. Fix or remove that row, or pass "
            f"the extraction time explicitly (`--as-of {others}`)."
        )


def _check_early_times(plan: Plan, catalog: Catalog, tsql: dict[tuple[str, str], str],
                       aware: bool) -> None:
    """DataError for times at or before 1970-01-01 00:00 in a column reaching past 1971.

    A zero epoch (or a 1970 date) is the commonest "missing" placeholder; among modern times
    it places an event half a century early, silently. History that really lies before 1970
    passes when the column stays there (it reaches no later than 1971-01-01), or with
    ``plan.accept_early_times``.
    """
    if plan.accept_early_times:
        return
    for (source, fld), expr in tsql.items():
        view = catalog.view(source)
        early, latest, first = catalog.first(
            f"SELECT count(*) FILTER (WHERE {expr} <= 0), max({expr}), min({expr}) "
            f"FROM {view}") or (0, None, None)
        if not early or latest is None or latest <= _YEAR_US:
            continue
        column = getattr(plan.sources[source], fld)
        example = _row_keys(plan, catalog, source, f"{expr} <= 0")
        total = int(catalog.scalar(f"SELECT count({expr}) FROM {view}") or 0)
        raise DataError(
            f"{catalog.where('sources', source, fld)}: column '{column}' of source '{source}' "
            f"({catalog.display_path(source)}) has {early:,} of {total:,} rows at or before "
            f"1970-01-01 00:00 (e.g. row {example}, the earliest "
            f"{us_to_datetime(int(first), aware).isoformat()}) among times up to "
            f"{us_to_datetime(int(latest), aware).isoformat()}. A zero epoch is the usual "
            "placeholder for a missing time and would place those rows decades early. "
            "Expected real times; empty the placeholders (rows without a time are left out "
            "and counted in the manifest's `dropped`; a dimension row without `valid_from` "
            "is always known), or, if these times are real, build with "
            "`accept_early_times=True` (`valuechain build --accept-early-times`)."
        )


def _interval_sql(catalog: Catalog, points: SchedulePlan, aware: bool,
                  any_times: bool) -> dict[str, str]:
    """Epoch-µs SQL of the schedule's ``active_from`` / ``active_until`` columns; DataError
    when their time-zone awareness differs from the other time columns'."""
    out: dict[str, str] = {}
    for fld in ("active_from", "active_until"):
        column = getattr(points, fld)
        if not column:
            continue
        expr, col_aware = catalog.time_us(points.population, column,
                                          "decision_points", "schedule", fld)
        if any_times and col_aware != aware:
            kinds = ("time-zone aware", "naive")
            raise DataError(
                f"{catalog.where('decision_points', 'schedule', fld)}: column '{column}' of "
                f"source '{points.population}' ({catalog.display_path(points.population)}) is "
                f"{kinds[0] if col_aware else kinds[1]} but the sources' other time columns "
                f"are {kinds[0] if aware else kinds[1]}. Expected one kind; store all times "
                "as aware (with an offset) or all as naive."
            )
        out[fld] = expr
    return out


def _schedule_sql(plan: Plan, catalog: Catalog, points: SchedulePlan,
                  tsql: dict[tuple[str, str], str], aware: bool, as_of_us: int,
                  reference: bool) -> str:
    """SQL of the scheduled decision points (``__row``, key, ``__t``, ``__o``,
    ``decision_time``). Who is a point at ``t`` is :func:`valuechain.data.pit.
    scheduled_members`; ``reference`` computes it with that function, else in DuckDB."""
    pop = points.population
    intervals = _interval_sql(catalog, points, aware, bool(tsql))
    f_sql, u_sql = intervals.get("active_from"), intervals.get("active_until")
    seen_sql = _availability(tsql, pop) or f_sql
    assert seen_sql is not None  # make_plan refuses a population without times
    start = check_moment(plan, points.start, aware,
                         plan.where("decision_points", "schedule", "start"))
    end = (check_moment(plan, points.end, aware, plan.where("decision_points", "schedule", "end"))
           if points.end else as_of_us)
    key = quote_ident(points.key)
    ev = (f"SELECT {key} AS k, {seen_sql} AS a, {f_sql or 'NULL::BIGINT'} AS f, "
          f"{u_sql or 'NULL::BIGINT'} AS u FROM {catalog.view(pop)} "
          f"WHERE {key} IS NOT NULL AND {seen_sql} IS NOT NULL"
          + (f" AND {f_sql} IS NOT NULL" if f_sql else ""))
    if reference:
        rows = catalog.con.sql(ev).to_arrow_table()
        pairs = scheduled_members(
            range(start, end + 1, points.every_us),
            zip(*(rows.column(c).to_pylist() for c in ("k", "a", "f", "u")), strict=True),
            points.active_within_us, intervals=bool(intervals))
        catalog.con.register("__schedule_pairs", pa.table({
            "k": pa.array([k for k, _ in pairs], rows.schema.field("k").type),
            "__t": pa.array([t for _, t in pairs], pa.int64())}))
        chosen = "SELECT k, __t FROM __schedule_pairs"
    else:
        within = (f"AND last_seen > __t - {points.active_within_us}"
                  if points.active_within_us else "")
        active = ""
        if intervals:
            active = (f"JOIN (SELECT DISTINCT e.k, times.__t FROM ev e JOIN times "
                      f"ON greatest(e.a, coalesce(e.f, e.a)) <= times.__t "
                      f"AND coalesce(e.u, {_BIG}) > times.__t) act USING (k, __t)")
        chosen = f"""
            WITH ev AS ({ev}),
                 times AS (SELECT unnest(range({start}, {end + 1}, {points.every_us})) AS __t),
                 ents AS (SELECT k, min(a) AS first FROM ev GROUP BY k),
                 cand AS (SELECT k, __t FROM ents JOIN times ON first <= __t),
                 seen AS (SELECT c.k, c.__t, e.a AS last_seen FROM cand c
                          ASOF JOIN ev e ON c.k = e.k AND e.a <= c.__t)
            SELECT k, __t FROM seen {active} WHERE TRUE {within}"""
    return f"""
        SELECT row_number() OVER (ORDER BY __t, k) - 1 AS __row, k AS {key}, __t,
               dense_rank() OVER (ORDER BY k) AS __o, make_timestamp(__t) AS decision_time
        FROM ({chosen}) ORDER BY __row"""


_BIG = 9_223_372_036_854_775_807


def schedule_points_sql(plan: Plan, catalog: Catalog) -> str:
    """DuckDB SQL of ``plan``'s scheduled decision points (columns ``__row``, the key,
    ``__t``, ``__o``, ``decision_time``) up to the schedule's end, else the latest time in
    the sources: the build's own definition, for checks that need the points (the audit)."""
    assert isinstance(plan.points, SchedulePlan)
    aware, tsql = awareness(catalog)
    if plan.as_of is not None:
        as_of_us = check_moment(plan, plan.as_of, aware, "the `as_of` argument")
    else:
        parts = [f"SELECT max({expr}) AS m FROM {catalog.view(src)}"
                 for (src, _), expr in tsql.items()]
        as_of_us = int(catalog.scalar(f"SELECT max(m) FROM ({' UNION ALL '.join(parts)})"))
    return _schedule_sql(plan, catalog, plan.points, tsql, aware, as_of_us, False)


def resolve(plan: Plan, catalog: Catalog | None = None,
            progress: Progress | None = None, *, reference_points: bool = False) -> Resolved:
    """Read ``plan``'s sources and make the :class:`PitProblem` a kernel computes.

    ``reference_points``: compute scheduled decision points with the reference definition
    (:func:`valuechain.data.pit.scheduled_members`, slow) instead of DuckDB SQL.
    """
    catalog = catalog or Catalog(plan)
    con = catalog.con
    aware, tsql = awareness(catalog)
    plan.check_columns({n: list(catalog.columns(n)) for n in plan.sources},
                       {n: catalog.display_path(n) for n in plan.sources})
    _check_types(plan, catalog)
    _check_unique_keys(plan, catalog)
    _check_early_times(plan, catalog, tsql, aware)
    if plan.as_of is not None:
        as_of_us = check_moment(plan, plan.as_of, aware, "the `as_of` argument")
    else:
        parts = [f"SELECT max({expr}) AS m FROM {catalog.view(src)}"
                 for (src, _), expr in tsql.items()]
        as_of_us = int(catalog.scalar(f"SELECT max(m) FROM ({' UNION ALL '.join(parts)})"))
        _check_as_of_outlier(plan, catalog, tsql, as_of_us, aware)
    dropped_by: dict[str, dict[str, int]] = {}
    own = plan.own
    row_sql = [f"{_row_expr(f.expr, f.fill)} AS {quote_ident('__x_' + f.name)}"
               for f in plan.row_features]

    # Decision points --------------------------------------------------------------------
    dropped = 0
    points_spec = plan.points
    if isinstance(points_spec, EventPointsPlan):
        assert own is not None
        keys = ", ".join(quote_ident(k) for k in points_spec.keys)
        t_sql = tsql[(own, "event_time")]
        filters = [f"{_sql(w.where)} AS {quote_ident(f'__f{i}')}"
                   for i, w in enumerate(plan.windows) if w.where is not None and w.source == own]
        extra = "".join(f", {e}" for e in row_sql + filters)
        dropped = int(catalog.scalar(
            f"SELECT count(*) FROM {catalog.view(own)} WHERE {t_sql} IS NULL"))
        if dropped:
            column = plan.sources[own].event_time
            dropped_by.setdefault(own, {})[f"no event time ('{column}')"] = dropped
        # Duplicate keys are refused by `build` (valuechain.data.build.decision_ids).
        key_types = [catalog.columns(own)[k] for k in points_spec.keys]
        # A single integer key is its own tie order; otherwise rank the keys.
        tie = (f"{quote_ident(points_spec.keys[0])}::BIGINT"
               if len(points_spec.keys) == 1 and key_types[0] in _INTS
               else f"row_number() OVER (ORDER BY {keys}) - 1")
        sql = f"""
            SELECT row_number() OVER (ORDER BY __t, __o) - 1 AS __row, *
            FROM (SELECT *, {t_sql} AS __t, {tie} AS __o
                          {extra}
                  FROM {catalog.view(own)} WHERE {t_sql} IS NOT NULL)
            ORDER BY __row"""
    else:
        assert isinstance(points_spec, SchedulePlan)
        sql = _schedule_sql(plan, catalog, points_spec, tsql, aware, as_of_us,
                            reference_points)
        if row_sql:
            sql = f"SELECT *, {', '.join(row_sql)} FROM ({sql}) ORDER BY __row"
    if progress:
        progress("decision points", 0.1)
    try:
        points = con.sql(sql).to_arrow_table()
    except duckdb.Error as err:
        raise _expression_error(plan, catalog, err, "the decision points or a row feature "
                                "expression") from None
    if aware and isinstance(points_spec, SchedulePlan):
        points = points.set_column(
            points.column_names.index("decision_time"), "decision_time",
            pc.assume_timezone(points.column("decision_time"), "UTC"))
    if progress:
        progress("decision points", 0.25)

    # Other sources ----------------------------------------------------------------------
    tables: dict[str, pa.Table] = {}
    windows: list[Window] = []
    for i, w in enumerate(plan.windows):
        windows.append(Window(
            name=w.name, source=w.source, key=w.key, agg=w.agg, window_us=w.window_us,
            lag_us=w.lag_us, value=w.of, include_current=w.include_current,
            filter=f"__f{i}" if w.where is not None else None, outcome=w.outcome, fill=w.fill))
        if w.source == own or w.source in tables:
            continue
        a_sql = _availability(tsql, w.source)
        src_keys = plan.sources[w.source].keys or (w.key,)
        wheres = "".join(
            f", {_sql(x.where)} AS {quote_ident(f'__f{j}')}"
            for j, x in enumerate(plan.windows) if x.where is not None and x.source == w.source)
        _count_missing(catalog, plan, w.source,
                       ("available_at",) if plan.sources[w.source].available_at
                       else ("event_time",), dropped_by)
        tables[w.source] = _table(
            catalog, plan,
            f"SELECT *, {a_sql} AS __t, row_number() OVER (ORDER BY "
            f"{', '.join(quote_ident(k) for k in src_keys)}) - 1 AS __o{wheres} "
            f"FROM {catalog.view(w.source)} WHERE {a_sql} IS NOT NULL")
    lookups: list[LookupPlan] = []
    for lk in plan.lookups:
        name = f"dim::{lk.source}"
        if name not in tables:
            known = [tsql[(lk.source, fld)] for fld in ("valid_from", "available_at")
                     if (lk.source, fld) in tsql]
            t_expr = (known[0] if len(known) == 1 else f"greatest({', '.join(known)})"
                      ) if known else "NULL::BIGINT"
            order = ", ".join(quote_ident(k) for k in plan.sources[lk.source].keys) or "1"
            tables[name] = con.sql(
                f"SELECT *, {t_expr} AS __t, row_number() OVER (ORDER BY {order}) - 1 AS __o "
                f"FROM {catalog.view(lk.source)}"
            ).to_arrow_table()
        lookups.append(LookupPlan(name=lk.name, source=name, key=lk.key, on=lk.on,
                                  column=lk.column, fill=lk.fill))

    # Label ------------------------------------------------------------------------------
    lab = plan.label
    if lab.source is None:
        assert lab.column is not None
        label = LabelPlan(kind=lab.kind, horizon_us=lab.horizon_us, column=lab.column)
        delay_us, delay_basis = 0, "none"
    else:
        out = lab.source
        pairs = plan.label_pairs(list(catalog.columns(out)))
        e_sql, a_sql = tsql[(out, "event_time")], _availability(tsql, out)
        _count_missing(catalog, plan, out, ("event_time", "available_at"), dropped_by)
        _check_known_after(plan, catalog, out, e_sql, a_sql)
        tables[out] = con.sql(
            f"SELECT *, {e_sql} AS __e, {a_sql} AS __t, 0 AS __o FROM {catalog.view(out)} "
            f"WHERE {e_sql} IS NOT NULL AND {a_sql} IS NOT NULL"
        ).to_arrow_table()
        label = LabelPlan(kind=lab.kind, horizon_us=lab.horizon_us, outcome=out, keys=pairs,
                          column=lab.column, known_by_us=as_of_us, absent=lab.absent)
        ref = plan.sources[out]
        gap = (catalog.scalar(f"SELECT max({a_sql} - {e_sql}) FROM {catalog.view(out)}")
               if ref.available_at and ref.available_at != ref.event_time else None)
        delay_us, delay_basis = label_delay(
            ref.reporting_delay_us,
            None if not ref.available_at or ref.available_at == ref.event_time
            else ([] if gap is None else [int(gap)]))
    problem = PitProblem(points=points, tables=tables, own=own, windows=tuple(windows),
                         lookups=tuple(lookups), label=label)
    return Resolved(problem=problem, aware=aware, as_of_us=as_of_us, dropped_no_time=dropped,
                    dropped=dropped_by, label_delay_us=delay_us, label_delay_basis=delay_basis)


def _table(catalog: Catalog, plan: Plan, sql: str) -> pa.Table:
    try:
        return catalog.con.sql(sql).to_arrow_table()
    except duckdb.Error as err:
        raise _expression_error(plan, catalog, err, "a `where` filter") from None


def output(plan: Plan, resolved: Resolved, computed: pa.Table) -> EngineOutput:
    """The engine's frame: ids, time, features, ``__label``, ``__t`` (every point)."""
    points = resolved.problem.points
    cols: dict[str, pa.ChunkedArray | pa.Array] = {}
    for name in (*plan.id_columns, plan.time_column):
        cols[name] = points.column(name)
    for f in plan.row_features:
        cols[f.name] = points.column(f"__x_{f.name}")
    for name in computed.column_names:
        if name not in (LABEL, KNOWN):
            cols[name] = computed.column(name)
    cols[LABEL] = computed.column(LABEL)
    cols["__t"] = points.column("__t")
    return EngineOutput(frame=pa.table(cols), as_of_us=resolved.as_of_us, aware=resolved.aware,
                        dropped_no_time=resolved.dropped_no_time, dropped=resolved.dropped,
                        label_delay_us=resolved.label_delay_us,
                        label_delay_basis=resolved.label_delay_basis)
