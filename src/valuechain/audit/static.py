"""Static leakage checks: read the spec (and, where needed, the sources it names).

Each check returns :class:`~valuechain.audit.findings.Finding` objects; none prints.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from sqlglot import exp

from valuechain.audit.findings import Finding
from valuechain.data.engines.resolve import schedule_points_sql
from valuechain.data.plan import make_plan
from valuechain.data.sources import Catalog
from valuechain.errors import ValuechainError
from valuechain.expressions import parse_expression
from valuechain.spec.durations import format_duration as fmt
from valuechain.spec.loader import LoadedSpec
from valuechain.spec.models import AggregateFeature, LookupFeature, RowFeature
from valuechain.sql import quote_ident

__all__ = ["ID_NAME", "static_findings"]

ID_NAME = re.compile(r"(^(id|ID|Id)$|_(id|ID|Id)$|^(id|ID)_|[a-z]Id$|(?<![A-Z])ID$|_key$|uuid)")
_TIME_TYPES = ("TIMESTAMP", "DATE")


def _columns_in(expr: str, where: str = "expression") -> set[str]:
    """Column names a spec expression reads (parsed by :mod:`valuechain.expressions`)."""
    return set(parse_expression(expr, where=where).columns)


def _bare_column(expr: str, where: str) -> str | None:
    """The column an expression is, when it is nothing but one column (``"amount"``)."""
    parsed = parse_expression(expr, where=where)
    return next(iter(parsed.columns)) if isinstance(parsed.tree, exp.Column) else None


def _where(loaded: LoadedSpec, feature: str) -> str:
    index = next(i for i, f in enumerate(loaded.spec.features) if f.name == feature)
    return loaded.where("features", index, "expr")


def _label_copy(loaded: LoadedSpec) -> Iterator[Finding]:
    spec = loaded.spec
    label_col = spec.label.column if spec.label.source is None else None
    if label_col is None:
        return
    for f in spec.features:
        if isinstance(f, RowFeature) and label_col in _columns_in(f.expr, _where(loaded, f.name)):
            yield Finding(
                id=f"label_copy:{f.name}", check="label_copy", severity="critical",
                features=(f.name,), evidence={"label_column": label_col, "expr": f.expr},
                explanation=f"feature '{f.name}' is computed from the label column "
                f"'{label_col}', which records the outcome after the decision.",
                fix=f"remove '{label_col}' from `features[{f.name}].expr`.",
            )
        if isinstance(f, AggregateFeature) and f.of == label_col:
            yield Finding(
                id=f"label_copy:{f.name}", check="label_copy", severity="critical",
                features=(f.name,), evidence={"label_column": label_col, "of": f.of},
                explanation=f"feature '{f.name}' aggregates the raw label column "
                f"'{label_col}' as if it were known at once; outcomes become known only "
                f"{fmt(spec.label.horizon)} later.",
                fix="write `of: label` (counts only outcomes known by the decision time).",
            )


def _identifiers(loaded: LoadedSpec) -> Iterator[Finding]:
    spec = loaded.spec
    keys = {k for src in spec.sources.values() for k in src.keys}
    for f in spec.features:
        column = None
        if isinstance(f, RowFeature):
            column = _bare_column(f.expr, _where(loaded, f.name))
        elif isinstance(f, LookupFeature):
            column = f.lookup.column
        if column is None or not (column in keys or ID_NAME.search(column)):
            continue
        reason = "a declared key" if column in keys else "named like an identifier"
        yield Finding(
            id=f"identifier:{f.name}", check="identifier", severity="critical",
            features=(f.name,), evidence={"column": column, "declared_key": column in keys},
            explanation=f"feature '{f.name}' is column '{column}', {reason}. An identifier "
            "used as a number lets the model memorise entities seen in training (and their "
            "outcomes); new entities after the split get arbitrary scores.",
            fix=f"drop '{f.name}'; describe the entity with aggregates keyed by '{column}' "
            "instead.",
        )


def _lag_vs_delay(loaded: LoadedSpec) -> Iterator[Finding]:
    spec = loaded.spec
    own = spec.event_source
    for f in spec.features:
        if not isinstance(f, AggregateFeature):
            continue
        name = f.source or own or ""
        delay = spec.sources[name].reporting_delay if name in spec.sources else None
        if delay is not None and f.lag < delay:
            yield Finding(
                id=f"lag_shorter_than_delay:{f.name}", check="lag_shorter_than_delay",
                severity="critical", features=(f.name,),
                evidence={"lag_seconds": f.lag.total_seconds(),
                          "reporting_delay_seconds": delay.total_seconds()},
                explanation=f"feature '{f.name}' looks back to {fmt(f.lag)} before the "
                f"decision, but rows of '{name}' reach the serving systems only "
                f"{fmt(delay)} after they happen: training sees rows serving cannot.",
                fix=f"set `lag: {fmt(delay)}` on '{f.name}' (or shorten the source's "
                "`reporting_delay` if the pipeline is faster).",
            )


def _decision_times(loaded: LoadedSpec, catalog: Catalog) -> str | None:
    """SQL of the decision points as ``(key column..., tp)``: the decision source's rows at
    their event time, or the scheduled points at their decision time (None when the
    schedule's points cannot be made from the data; the build reports why)."""
    spec = loaded.spec
    own = spec.event_source
    if own is not None:
        t_dec, _ = catalog.time_us(own, spec.sources[own].event_time or "", "sources", own)
        return f"SELECT *, {t_dec} AS tp FROM {catalog.view(own)}"
    try:
        sql = schedule_points_sql(make_plan(loaded), catalog)
    except ValuechainError:
        return None
    return f"SELECT *, __t AS tp FROM ({sql})"


def _unversioned_lookups(loaded: LoadedSpec, catalog: Catalog) -> Iterator[Finding]:
    spec = loaded.spec
    if not any(isinstance(f, LookupFeature) for f in spec.features):
        return
    points = _decision_times(loaded, catalog)
    if points is None:
        return
    for f in spec.features:
        if not isinstance(f, LookupFeature):
            continue
        dim = spec.sources[f.lookup.source]
        if dim.valid_from or dim.available_at:
            continue
        times = [c for c, kind in catalog.columns(f.lookup.source).items()
                 if kind.startswith(_TIME_TYPES)]
        if not times:
            yield Finding(
                id=f"static_lookup:{f.name}", check="static_lookup", severity="warning",
                features=(f.name,), evidence={"source": f.lookup.source, "time_columns": 0},
                explanation=f"feature '{f.name}' reads '{f.lookup.source}', which has no "
                "valid_from, available_at or any time column: if its values are updated in "
                "place, training sees today's values for past decisions.",
                fix=f"add `valid_from` to source '{f.lookup.source}' (keep history), or "
                "confirm the attribute never changes and accept this finding.",
            )
            continue
        on = f.lookup.on or f.lookup.key
        worst: tuple[float, str, int, int] | None = None
        for column in times:
            t_dim, _ = catalog.time_us(f.lookup.source, column, "sources", f.lookup.source)
            sql = (f"SELECT count(*), count(*) FILTER (WHERE d.td > p.tp) "
                   f"FROM (SELECT {quote_ident(f.lookup.key)} AS k, tp FROM ({points})) p "
                   f"JOIN (SELECT {quote_ident(on)} AS k, {t_dim} AS td FROM "
                   f"{catalog.view(f.lookup.source)}) d USING (k)")
            matched, later = catalog.con.execute(sql).fetchall()[0]
            share = later / matched if matched else 0.0
            if worst is None or share > worst[0]:
                worst = (share, column, int(matched), int(later))
        assert worst is not None
        share, column, matched, later = worst
        if later == 0:
            continue
        yield Finding(
            id=f"unversioned_dimension:{f.name}", check="unversioned_dimension",
            severity="critical" if share >= 0.01 else "warning", features=(f.name,),
            evidence={"source": f.lookup.source, "time_column": column, "matched_rows": matched,
                      "rows_dated_after_decision": later, "share": round(share, 6)},
            explanation=f"feature '{f.name}' joins '{f.lookup.source}' without time, and "
            f"{share:.1%} of the joined rows carry a '{column}' later than the decision: the "
            "value did not exist (or was different) when the decision was taken.",
            fix=f"declare `valid_from: {column}` (or `available_at`) on source "
            f"'{f.lookup.source}', or mark it `role: post_outcome` if it only exists after "
            "the outcome.",
        )


#: A later time column counts as an undeclared delay when it is later than the event time
#: in more than this share of the rows where both are known.
DELAY_SHARE = 0.5


def _readers(loaded: LoadedSpec) -> dict[str, list[str]]:
    """Source -> the features that read its rows at their event time (plus the label's).

    The decision source feeds its row features and the aggregates without ``source``; an
    aggregate's ``source`` feeds it; the label's source feeds outcome-derived aggregates
    (``of: label``) and the label itself (listed as ``label``).
    """
    spec = loaded.spec
    own = spec.event_source
    out: dict[str, list[str]] = {}
    for f in spec.features:
        if isinstance(f, RowFeature) and own:
            out.setdefault(own, []).append(f.name)
        elif isinstance(f, AggregateFeature):
            name = spec.label.source if f.of == "label" and spec.label.source else (
                f.source or own)
            if name:
                out.setdefault(name, []).append(f.name)
    if spec.label.source:
        out.setdefault(spec.label.source, []).append(spec.label.name)
    return out


def _seconds_text(seconds: float) -> str:
    """A delay as people say it: ``3.4 days``, ``5.0 hours``, ``12 min``."""
    if seconds >= 86_400:
        return f"{seconds / 86_400:.1f} days"
    if seconds >= 3_600:
        return f"{seconds / 3_600:.1f} hours"
    return f"{seconds / 60:.0f} min"


def _spec_delay(seconds: float) -> str:
    """A delay as a spec duration, rounded up: whole days, else hours, else minutes.

    >>> _spec_delay(27.2 * 86_400), _spec_delay(5_400), _spec_delay(30)
    ('28d', '2h', '1min')
    """
    unit, size = next(((u, s) for u, s in (("d", 86_400), ("h", 3_600)) if seconds >= s),
                      ("min", 60))
    return f"{max(int(-(-seconds // size)), 1)}{unit}"


def _delay_fix(name: str, column: str, columns: list[str], p95: float, *, decisions: bool
               ) -> str:
    named = ", ".join(f"'{c}'" for c in columns)
    attribute = "is only an attribute" if len(columns) == 1 else "are only attributes"
    accept = (f"if {named} {attribute} of the event, accept this finding under `audit.accept` "
              f"with id 'undeclared_delay:{name}' and the reason.")
    delay = f"`reporting_delay: {_spec_delay(p95)}` (the p95 delay)"
    if decisions:
        return (f"the decision source's rows are known at their event time, but if they reach "
                f"the feature pipeline only at '{column}', declare {delay} on source '{name}' "
                "(its aggregates then need that `lag`); if some of its columns are filled in "
                f"at '{column}' (a status, a settled amount), keep them out of the features "
                f"or move them into their own source with `event_time: {column}`; {accept}")
    return (f"if rows of '{name}' become known at '{column}', declare `available_at: {column}` "
            f"on source '{name}' (or a fixed {delay}); {accept}")


def _undeclared_delays(loaded: LoadedSpec, catalog: Catalog) -> Iterator[Finding]:
    """A source whose rows carry a later time than the one features use: a delay nobody
    declared (the commonest leak of all)."""
    spec = loaded.spec
    for name, readers in sorted(_readers(loaded).items()):
        src = spec.sources.get(name)
        if (src is None or src.event_time is None or src.available_at or src.valid_from
                or src.reporting_delay is not None or src.role in ("dimension", "post_outcome")):
            continue
        catalog.open(name)
        times = [c for c, kind in catalog.columns(name).items()
                 if kind.startswith(_TIME_TYPES) and c != src.event_time]
        if not times:
            continue
        t_event, _ = catalog.time_us(name, src.event_time, "sources", name, "event_time")
        later: list[tuple[str, int, float, float, float]] = []
        for column in times:
            t_col, _ = catalog.time_us(name, column, "sources", name)
            both, after, median, p95 = catalog.con.execute(
                f"SELECT count(*), count(*) FILTER (WHERE d > 0), quantile_cont(d, 0.5), "
                f"quantile_cont(d, 0.95) FROM (SELECT {t_col} - {t_event} AS d "
                f"FROM {catalog.view(name)}) WHERE d IS NOT NULL").fetchall()[0]
            if both and after / both > DELAY_SHARE:
                later.append((column, int(both), after / both, float(median) / 1e6,
                              float(p95) / 1e6))
        if not later:
            continue
        later.sort(key=lambda item: -item[4])
        column, rows, share, median, p95 = later[0]
        columns = [c[0] for c in later]
        named = ", ".join(f"'{c}'" for c in columns)
        yield Finding(
            id=f"undeclared_delay:{name}", check="undeclared_delay", severity="warning",
            features=tuple(readers),
            evidence={"source": name, "event_time": src.event_time, "later_columns": columns,
                      "column": column, "rows": rows, "share_later": round(share, 4),
                      "median_delay": _seconds_text(median),
                      "p95_delay": _seconds_text(p95), "median_delay_seconds": median,
                      "p95_delay_seconds": p95},
            explanation=f"source '{name}' is read at its event time '{src.event_time}', but "
            f"its rows also carry {named}, later than '{src.event_time}' in {share:.0%} of "
            f"the rows ('{column}': median {_seconds_text(median)}, p95 "
            f"{_seconds_text(p95)} later). If a row only becomes known then, features and "
            "labels computed at the event time use what was not yet known at the decision: "
            "a delay nobody declared is the commonest leak of all.",
            fix=_delay_fix(name, column, columns, p95, decisions=name == spec.event_source),
        )


def static_findings(loaded: LoadedSpec, catalog: Catalog) -> list[Finding]:
    """Every static finding for the spec."""
    return [*_label_copy(loaded), *_identifiers(loaded), *_lag_vs_delay(loaded),
            *_unversioned_lookups(loaded, catalog), *_undeclared_delays(loaded, catalog)]
