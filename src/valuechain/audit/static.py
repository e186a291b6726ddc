"""Static leakage checks: read the spec (and, where needed, the sources it names).

Each check returns :class:`~valuechain.audit.findings.Finding` objects; none prints.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from sqlglot import exp

from valuechain.audit.findings import Finding
from valuechain.data.sources import Catalog
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


def _unversioned_lookups(loaded: LoadedSpec, catalog: Catalog) -> Iterator[Finding]:
    spec = loaded.spec
    own = spec.event_source
    if own is None:
        return
    decision_src = spec.sources[own]
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
        t_dec, _ = catalog.time_us(own, decision_src.event_time or "", "sources", own)
        on = f.lookup.on or f.lookup.key
        worst: tuple[float, str, int, int] | None = None
        for column in times:
            t_dim, _ = catalog.time_us(f.lookup.source, column, "sources", f.lookup.source)
            sql = (f"SELECT count(*), count(*) FILTER (WHERE d.td > p.tp) "
                   f"FROM (SELECT {quote_ident(f.lookup.key)} AS k, {t_dec} AS tp "
                   f"FROM {catalog.view(own)}) p "
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


def static_findings(loaded: LoadedSpec, catalog: Catalog) -> list[Finding]:
    """Every static finding for the spec."""
    return [*_label_copy(loaded), *_identifiers(loaded), *_lag_vs_delay(loaded),
            *_unversioned_lookups(loaded, catalog)]
