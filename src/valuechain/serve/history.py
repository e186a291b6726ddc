"""Reading the sources' history for the online state: warm-up and replay.

:func:`read_history` reads, with DuckDB (the build's catalog and time conversion), the rows
of every source the features use and returns them as :class:`StreamItem` objects in replay
order: by the time each becomes known, rows of other sources before decision events at equal
times, decision events by tie order. :meth:`OnlineFeatures.warm
<valuechain.serve.features.OnlineFeatures.warm>` loads what the state needs at one moment;
:func:`valuechain.serve.parity.parity` replays a period.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from valuechain.data.sources import Catalog, datetime_to_us
from valuechain.serve.state import MIN_TIME
from valuechain.sql import quote_ident

if TYPE_CHECKING:
    from valuechain.serve.features import OnlineFeatures

__all__ = ["StreamItem", "order_of", "plain", "read_history"]


def plain(value: Any) -> Any:
    """A JSON value for a stored payload."""
    if isinstance(value, datetime):
        return datetime_to_us(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, date):
        return datetime_to_us(datetime(value.year, value.month, value.day))
    return value


def order_of(values: Sequence[Any]) -> list[Any]:
    """The tie order of a row from its key values (nulls last, as SQL's ORDER BY)."""
    return [[1, 0] if v is None else [0, plain(v)] for v in values]


@dataclass(frozen=True)
class StreamItem:
    """One update of the state, in replay order: ``(time, phase, order)``.

    ``kind``: ``event`` (a decision event), ``row`` (a row of another source: outcome,
    dimension version, events a window counts) or ``label`` (a column label becoming known).
    At equal times rows come first (``phase`` 0), then decision events by tie order.
    """

    time: int
    phase: int
    order: Any
    kind: str
    source: str
    row: dict[str, Any] = field(compare=False)



def read_history(online: OnlineFeatures, since_us: int | None, until_us: int, *,
                 warm: bool = False) -> Iterator[StreamItem]:
    """The sources' rows that become known in ``(since_us, until_us]``, in replay order.

    ``warm``: instead, what the state needs at ``until_us``: window rows no older than
    their span (``since_us`` is ignored), every dimension version known by then, the
    outcomes on decisions still inside an outcome-derived window.
    """
    plan = online.plan
    catalog = Catalog(plan)
    con = catalog.con
    con.execute("SET TimeZone = 'UTC'")
    from valuechain.data.engines.resolve import awareness

    _, tsql = awareness(catalog)
    spans = online.spans()
    items: list[StreamItem] = []

    def fetch(source: str, columns: list[str], extra: str, condition: str
              ) -> list[dict[str, Any]]:
        cols = ", ".join(quote_ident(c) for c in dict.fromkeys(columns))
        cursor = con.execute(f"SELECT {cols}{extra} FROM {catalog.view(source)} "
                             f"WHERE {condition}")
        names = [d[0] for d in cursor.description or []]
        return [dict(zip(names, r, strict=True)) for r in cursor.fetchall()]

    def between(expr: str, lo: int | None, hi: int) -> str:
        return f"{expr} IS NOT NULL AND {expr} <= {hi}" + (
            f" AND {expr} > {lo}" if lo is not None else "")

    try:
        own_t = tsql[(online.own, "event_time")]
        lab = plan.label
        own_cols = list(online._required)
        if lab.source is None and lab.column:
            own_cols.append(lab.column)
        if online.own in spans or not warm:
            lo = until_us - spans.get(online.own, 0) - online.slack_us if warm else since_us
            for r in fetch(online.own, own_cols, f", {own_t} AS __t", between(own_t, lo,
                                                                           until_us)):
                t = r.pop("__t")
                if not warm and lab.source is None and lab.column:
                    y = r.pop(lab.column)
                    known = t + lab.horizon_us
                    if y is not None and known <= until_us and online._outcome_span:
                        items.append(StreamItem(known, 0, [], "label", online.own,
                                                {**{k: r[k] for k in online.keys},
                                                 lab.column: y}))
                items.append(StreamItem(t, 1, order_of([r[k] for k in online.keys]), "event",
                                        online.own, r))
        if (not warm and since_us is not None and lab.source is None and lab.column
                and online._outcome_span):
            # labels of decisions before the period that become known during it
            cond = between(own_t, since_us - lab.horizon_us, since_us)
            for r in fetch(online.own, [*online.keys, lab.column], f", {own_t} AS __t", cond):
                t, y = r.pop("__t"), r[lab.column]
                known = t + lab.horizon_us
                if y is not None and since_us < known <= until_us:
                    items.append(StreamItem(known, 0, [], "label", online.own, r))
        for source in plan.sources:
            if source == online.own:
                continue
            src = plan.sources[source]
            used_windows = source in spans
            used_lookups = any(lk.source == source for lk in plan.lookups)
            used_label = source == lab.source and online._outcome_span is not None
            if not (used_windows or used_lookups or used_label):
                continue
            cols = online._source_columns(source)
            a_sql = tsql.get((source, "available_at")) or tsql.get((source, "event_time"))
            conds: list[str] = []
            if used_windows and a_sql:
                lo = until_us - spans[source] - online.slack_us if warm else since_us
                conds.append(between(a_sql, lo, until_us))
            if used_label and a_sql:
                e_sql = tsql[(source, "event_time")]
                assert online._outcome_span is not None
                if warm:
                    lo = until_us - online._outcome_span - online.slack_us
                    conds.append(f"({between(a_sql, None, until_us)} AND "
                                 f"{e_sql} > {lo})")
                else:
                    conds.append(between(a_sql, since_us, until_us))
            if used_lookups:
                known = [tsql[(source, f)] for f in ("valid_from", "available_at")
                         if (source, f) in tsql]
                k_sql = (known[0] if len(known) == 1 else f"greatest({', '.join(known)})"
                         ) if known else "NULL::BIGINT"
                if warm or since_us is None:
                    conds.append(f"({k_sql} IS NULL OR {k_sql} <= {until_us})")
                else:
                    conds.append(between(k_sql, since_us, until_us))
                a_sql = a_sql or None
                order_sql = k_sql
            else:
                order_sql = a_sql or "NULL::BIGINT"
            if not conds:
                continue
            # a row is placed at the latest of the times it is used at: for lookups its
            # known time; for windows and outcomes its availability
            when = (f"greatest({order_sql}, {a_sql})" if used_lookups and a_sql
                    and (used_windows or used_label) else order_sql)
            for r in fetch(source, cols, f", coalesce({when}, {MIN_TIME}) AS __t",
                           " OR ".join(f"({c})" for c in conds)):
                t = r.pop("__t")
                items.append(StreamItem(t, 0, order_of([r.get(k) for k in src.keys]), "row",
                                        source, r))
    finally:
        con.close()
    items.sort(key=lambda x: (x.time, x.phase, x.order))
    yield from items

