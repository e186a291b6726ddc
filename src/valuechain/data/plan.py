"""The build plan: what ``valuechain build`` asks an engine to compute, engine-neutral.

:func:`make_plan` turns a validated spec into a :class:`Plan` once: sources (files, format,
keys, time columns), decision points (events of a source, or a schedule), row features and
window filters as parsed :class:`~valuechain.expressions.Expression`\\ s, windows, as-of
lookups, the label and the extraction time. Durations are integer microseconds; nothing in a
plan is DuckDB-specific. An engine (:mod:`valuechain.data.engines`) executes a plan end to end
from the source files and returns the frame; :mod:`valuechain.data.pit` defines what each
window, lookup and label means.

Errors an engine finds in the data name the spec field through :meth:`Plan.where`, and the
column checks every engine needs are here once (:meth:`Plan.check_columns`).

>>> import yaml, tempfile, pathlib
>>> from valuechain.spec import load_spec
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> _ = (folder / "valuechain.yaml").write_text(yaml.safe_dump({
...     "project": {"name": "demo"},
...     "decision": {"statement": "s", "owner": "o", "moment": "m", "actions": ["a", "b"]},
...     "decision_points": {"source": "tx"},
...     "sources": {"tx": {"path": "tx.parquet", "keys": ["id"], "event_time": "ts"}},
...     "label": {"column": "y", "horizon": "1d"},
...     "features": [{"name": "big", "expr": "amount > 100"},
...                  {"name": "n_7d", "aggregate": "count", "key": "card", "window": "7d"}]}))
>>> plan = make_plan(load_spec(folder))
>>> plan.id_columns, plan.time_column, plan.windows[0].window_us
(('id',), 'ts', 604800000000)
>>> sorted(plan.required_columns()["tx"])
['amount', 'card', 'id', 'ts', 'y']
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from valuechain.data.pit import LookupPlan
from valuechain.errors import DataError, SpecError
from valuechain.expressions import Expression, parse_expression, require_columns
from valuechain.spec.durations import to_micros
from valuechain.spec.loader import LoadedSpec
from valuechain.spec.models import (
    AggregateFeature,
    EventPoints,
    LookupFeature,
    RowFeature,
    SchedulePoints,
    Source,
)

__all__ = [
    "ID_COLUMN",
    "EventPointsPlan",
    "LabelRule",
    "Locator",
    "LookupFeaturePlan",
    "Plan",
    "RowFeaturePlan",
    "SchedulePlan",
    "SourceRef",
    "WindowPlan",
    "make_plan",
]

ID_COLUMN = "decision_id"
"""The frame's first column: one identity per decision row (a reserved name)."""

Agg = Literal["count", "sum", "mean", "min", "max", "std", "distinct_count", "rate",
              "since_first", "since_last", "last"]
OUTCOME_AGGREGATES = ("count", "sum", "rate", "mean")


@dataclass(frozen=True)
class Locator:
    """Names spec fields in messages: ``valuechain.yaml, line 12, field `features.0.key```."""

    file: str
    lines: Mapping[tuple[str | int, ...], int] = field(default_factory=dict)

    def where(self, *loc: str | int) -> str:
        line = None
        for end in range(len(loc), -1, -1):
            if loc[:end] in self.lines:
                line = self.lines[loc[:end]]
                break
        name = ".".join(str(p) for p in loc)
        return f"{self.file}{f', line {line}' if line else ''}, field `{name}`"


@dataclass(frozen=True)
class SourceRef:
    """One source: where it is, how to read it, its keys and time columns."""

    name: str
    format: Literal["parquet", "csv", "duckdb"]
    path: Path | None  # absolute; a file, a directory of Parquet files, or a DuckDB database
    written: str | None  # the path as the spec writes it (for messages)
    table: str | None = None  # the table inside a DuckDB database
    keys: tuple[str, ...] = ()
    event_time: str | None = None
    available_at: str | None = None
    valid_from: str | None = None
    role: str = "events"
    reporting_delay_us: int | None = None  # declared `reporting_delay`

    def time_fields(self) -> list[tuple[str, str]]:
        """``(field, column)`` for every declared time column."""
        return [(f, c) for f in ("event_time", "available_at", "valid_from")
                if (c := getattr(self, f))]

    @property
    def availability(self) -> str | None:
        """The column telling when a row became known: ``available_at``, else ``event_time``."""
        return self.available_at or self.event_time


@dataclass(frozen=True)
class EventPointsPlan:
    """One decision per row of ``source``, at its event time."""

    source: str
    keys: tuple[str, ...]
    keep: tuple[str, ...] = ()


@dataclass(frozen=True)
class SchedulePlan:
    """Each entity of ``population`` seen by ``t``, every ``every_us`` from ``start``."""

    population: str
    key: str
    start: datetime
    every_us: int
    end: datetime | None = None  # default: as_of
    active_within_us: int | None = None
    active_from: str | None = None  # population column: active from (included)
    active_until: str | None = None  # population column: active until (excluded; null: open)


@dataclass(frozen=True)
class RowFeaturePlan:
    """A value computed from the decision row's own columns."""

    name: str
    expr: Expression
    fill: float | None = None
    index: int = 0  # position in ``features`` (for messages)


@dataclass(frozen=True)
class WindowPlan:
    """An aggregate over ``source`` rows available in ``(t - lag - window, t - lag]``."""

    name: str
    source: str
    key: str
    agg: Agg
    window_us: int
    lag_us: int = 0
    of: str | None = None  # the column aggregated; None for count and outcome windows
    outcome: bool = False  # `of: label`
    include_current: bool = True
    where: Expression | None = None
    fill: float | None = None
    index: int = 0


@dataclass(frozen=True)
class LookupFeaturePlan(LookupPlan):
    """The kernel's :class:`LookupPlan` over a spec source, with the feature's ``index``."""

    index: int = 0


@dataclass(frozen=True)
class LabelRule:
    """The label: a column of the decision row, or outcomes of a source within the horizon."""

    name: str
    kind: Literal["binary", "amount"]
    horizon_us: int
    column: str | None = None
    source: str | None = None
    keys: tuple[tuple[str, str], ...] | None = None  # None: shared key names (see pair_keys)
    absent: bool = False  # 1 when NO outcome falls in the horizon


@dataclass(frozen=True)
class Plan:
    """Everything an engine needs to build the frame; see the module docstring.

    The engine returns one row per decision point with the columns :attr:`id_columns`,
    :attr:`time_column`, every feature by name, ``__label`` and ``__t`` (decision time in
    epoch microseconds), rows in decision order (time, then keys).
    """

    locator: Locator
    sources: Mapping[str, SourceRef]
    points: EventPointsPlan | SchedulePlan
    row_features: tuple[RowFeaturePlan, ...]
    windows: tuple[WindowPlan, ...]
    lookups: tuple[LookupFeaturePlan, ...]
    label: LabelRule
    as_of: datetime | None = None
    feature_names: tuple[str, ...] = ()  # in spec order
    accept_early_times: bool = False  # rows at or before 1970-01-01 in modern data are real

    def where(self, *loc: str | int) -> str:
        """The spec location of ``loc`` for messages."""
        return self.locator.where(*loc)

    @property
    def own(self) -> str | None:
        """The decision source in event mode (its rows are the points), else None."""
        return self.points.source if isinstance(self.points, EventPointsPlan) else None

    @property
    def id_columns(self) -> tuple[str, ...]:
        """Columns identifying a decision, copied into the frame: keys then `keep`."""
        if isinstance(self.points, EventPointsPlan):
            return self.points.keys + tuple(k for k in self.points.keep
                                            if k not in self.points.keys)
        return (self.points.key,)

    @property
    def decision_keys(self) -> tuple[str, ...]:
        """The key columns a decision id is made of."""
        if isinstance(self.points, EventPointsPlan):
            return self.points.keys
        return (self.points.key,)

    @property
    def time_column(self) -> str:
        """The decision time column in the frame."""
        if isinstance(self.points, EventPointsPlan):
            return self.sources[self.points.source].event_time or ""
        return "decision_time"

    def label_pairs(self, outcome_columns: Collection[str]) -> tuple[tuple[str, str], ...]:
        """How outcomes join decisions: ``label.keys``, else the shared key names."""
        if self.label.keys:
            return self.label.keys
        candidates = (self.sources[self.own].keys if self.own else self.id_columns)
        pairs = tuple((k, k) for k in candidates if k in outcome_columns)
        if not pairs:
            raise SpecError(
                f"{self.where('label', 'keys')}: cannot tell how outcomes join decisions: no "
                f"key column is shared. Set `label.keys: {{decision_column: outcome_column}}`."
            )
        return pairs

    def required_columns(self) -> dict[str, set[str]]:
        """Per source, the columns the plan reads (for engines that read selectively)."""
        out: dict[str, set[str]] = {name: set() for name in self.sources}
        for name, src in self.sources.items():
            out[name].update(src.keys)
            out[name].update(c for _, c in src.time_fields())
        own = self.own
        if isinstance(self.points, SchedulePlan):
            out[self.points.population].add(self.points.key)
            out[self.points.population].update(
                c for c in (self.points.active_from, self.points.active_until) if c)
        else:
            out[self.points.source].update(self.points.keep)
        if own:
            for f in self.row_features:
                out[own].update(f.expr.columns)
            if self.label.source is None and self.label.column:
                out[own].add(self.label.column)
        for w in self.windows:
            out[w.source].add(w.key)
            if own:
                out[own].add(w.key)
            if w.of:
                out[w.source].add(w.of)
            if w.where is not None:
                out[w.source].update(w.where.columns)
        for lk in self.lookups:
            out[lk.source].update((lk.on, lk.column))
            if own:
                out[own].add(lk.key)
        if self.label.source is not None:
            if self.label.column:
                out[self.label.source].add(self.label.column)
            for a, b in self.label.keys or ():
                out[self.label.source].add(b)
                if own:
                    out[own].add(a)
        return out

    def check_columns(self, schemas: Mapping[str, Collection[str]],
                      describe: Mapping[str, str] | None = None) -> None:
        """Raise the error naming the spec field when a column the plan reads is missing.

        ``schemas`` maps each source to its column names; ``describe`` (optional) maps a
        source to the file it was read from, for the message.
        """
        describe = describe or {}

        def need(source: str, column: str, *loc: str | int) -> None:
            columns = schemas[source]
            if column in columns:
                return
            close = [c for c in columns if c.lower() == column.lower()]
            hint = f" Did you mean '{close[0]}'?" if close else ""
            shown = f" ({describe[source]})" if source in describe else ""
            raise DataError(
                f"{self.where(*loc)}: column '{column}' is not in source '{source}'{shown}. "
                f"Expected one of {sorted(columns)}.{hint}"
            )

        for name, src in self.sources.items():
            if name not in schemas:
                continue
            for fld, column in src.time_fields():
                need(name, column, "sources", name, fld)
        point_columns: list[str]
        if isinstance(self.points, EventPointsPlan):
            own = self.points.source
            for k in self.points.keys:
                need(own, k, "sources", own, "keys")
            for k in self.points.keep:
                need(own, k, "decision_points", "keep")
            point_columns = list(schemas[own])
        else:
            pop = self.points.population
            need(pop, self.points.key, "decision_points", "schedule", "key")
            for fld in ("active_from", "active_until"):
                column = getattr(self.points, fld)
                if column:
                    need(pop, column, "decision_points", "schedule", fld)
            point_columns = [self.points.key, "decision_time"]
        for f in self.row_features:
            self._expression_columns(f.expr, point_columns, "features", f.index, "expr")
        for w in self.windows:
            if w.key not in point_columns:
                raise SpecError(
                    f"{self.where('features', w.index, 'key')}: feature '{w.name}' groups by "
                    f"'{w.key}', which the decision points do not have. Expected one of "
                    f"{point_columns}."
                )
            need(w.source, w.key, "features", w.index, "key")
            if w.of is not None:
                need(w.source, w.of, "features", w.index, "of")
            if w.where is not None:
                self._expression_columns(w.where, list(schemas[w.source]), "features",
                                         w.index, "where")
        for lk in self.lookups:
            if lk.key not in point_columns:
                raise SpecError(
                    f"{self.where('features', lk.index, 'lookup', 'key')}: '{lk.key}' is not a "
                    "column of the decision points."
                )
            need(lk.source, lk.on, "features", lk.index, "lookup", "on")
            need(lk.source, lk.column, "features", lk.index, "lookup", "column")
        lab = self.label
        if lab.source is None:
            assert self.own is not None and lab.column is not None
            need(self.own, lab.column, "label", "column")
        else:
            for a, b in self.label_pairs(schemas[lab.source]):
                if a not in point_columns:
                    raise SpecError(f"{self.where('label', 'keys')}: '{a}' is not a decision "
                                    "column.")
                need(lab.source, b, "label", "keys")
            if lab.kind == "amount":
                need(lab.source, lab.column or "", "label", "column")

    def _expression_columns(self, expr: Expression, columns: list[str],
                            *loc: str | int) -> None:
        require_columns(expr, columns, where=self.where(*loc), rows="the rows it reads")


def _format(loaded: LoadedSpec, name: str, src: Source) -> Literal["parquet", "csv", "duckdb"]:
    if src.format is not None:
        return src.format
    if src.table is not None:
        return "duckdb"
    suffix = Path(src.path or "").suffix.lower()
    if suffix in (".parquet", ".pq", ""):
        return "parquet"
    if suffix in (".csv", ".tsv", ".txt", ".gz"):
        return "csv"
    if suffix in (".duckdb", ".db"):
        return "duckdb"
    raise SpecError(
        f"{loaded.where('sources', name, 'path')}: cannot tell the format of "
        f"'{src.path}' from its suffix. Set `format: parquet|csv|duckdb`."
    )


def source_refs(loaded: LoadedSpec) -> dict[str, SourceRef]:
    """The spec's sources, with formats inferred and paths made absolute."""
    return {
        name: SourceRef(
            name=name, format=_format(loaded, name, src),
            path=(loaded.root / src.path).resolve() if src.path else None, written=src.path,
            table=src.table, keys=tuple(src.keys), event_time=src.event_time,
            available_at=src.available_at, valid_from=src.valid_from, role=src.role,
            reporting_delay_us=(to_micros(src.reporting_delay) if src.reporting_delay is not None
                                else None))
        for name, src in loaded.spec.sources.items()
    }


def locator(loaded: LoadedSpec) -> Locator:
    return Locator(file=loaded.path.name, lines=dict(loaded.lines))


def make_plan(loaded: LoadedSpec, as_of: datetime | None = None, *,
              accept_early_times: bool = False) -> Plan:
    """The :class:`Plan` of ``loaded``; SpecError for what the spec alone rules out.

    ``accept_early_times`` accepts time values at or before 1970-01-01 among later ones
    (refused by default as "missing" placeholders; see docs/point-in-time.md).
    """
    spec = loaded.spec
    sources = source_refs(loaded)
    own = spec.event_source
    dp = spec.decision_points
    points: EventPointsPlan | SchedulePlan
    if isinstance(dp, EventPoints):
        keep = tuple(dp.keep)
        for i, column in enumerate(keep):
            if column == ID_COLUMN:
                raise SpecError(
                    f"{loaded.where('decision_points', 'keep', i)}: '{ID_COLUMN}' is reserved "
                    "for the decision identity valuechain writes as the frame's first column. "
                    "Rename the column in the source (or drop it from `keep`)."
                )
        points = EventPointsPlan(source=dp.source, keys=tuple(spec.sources[dp.source].keys),
                                 keep=keep)
    else:
        assert isinstance(dp, SchedulePoints)
        sched = dp.schedule
        if sources[sched.population].availability is None and sched.active_from is None:
            raise SpecError(
                f"{loaded.where('sources', sched.population)}: the population source needs "
                "`event_time` (when each entity was seen), or the schedule "
                "`active_from` (the column from which each row's entity is active)."
            )
        points = SchedulePlan(
            population=sched.population, key=sched.key, start=sched.start,
            every_us=to_micros(sched.every), end=sched.end,
            active_within_us=to_micros(sched.active_within) if sched.active_within else None,
            active_from=sched.active_from, active_until=sched.active_until)
    rows: list[RowFeaturePlan] = []
    windows: list[WindowPlan] = []
    lookups: list[LookupFeaturePlan] = []
    for index, f in enumerate(spec.features):
        if f.name == ID_COLUMN:
            raise SpecError(
                f"{loaded.where('features', index, 'name')}: '{ID_COLUMN}' is reserved for the "
                "decision identity valuechain writes as the frame's first column. Rename the "
                "feature."
            )
        if isinstance(f, RowFeature):
            rows.append(RowFeaturePlan(
                name=f.name, fill=f.fill, index=index,
                expr=parse_expression(f.expr, where=loaded.where("features", index, "expr"))))
        elif isinstance(f, AggregateFeature):
            source = f.source or own
            assert source is not None
            if f.outcome_derived and f.aggregate not in OUTCOME_AGGREGATES:
                raise SpecError(
                    f"{loaded.where('features', index, 'aggregate')}: an outcome-derived "
                    f"feature (`of: label`) can be count, sum, rate or mean, not "
                    f"'{f.aggregate}'."
                )
            if source != own and sources[source].availability is None:
                raise SpecError(
                    f"{loaded.where('sources', source)}: source '{source}' is aggregated by "
                    f"feature '{f.name}' but declares no `event_time` or `available_at`, so its "
                    "rows cannot be placed in time. Declare one."
                )
            where = (parse_expression(f.where, where=loaded.where("features", index, "where"))
                     if f.where else None)
            windows.append(WindowPlan(
                name=f.name, source=source, key=f.key, agg=f.aggregate,
                window_us=to_micros(f.window), lag_us=to_micros(f.lag),
                of=None if f.outcome_derived else f.of, outcome=f.outcome_derived,
                include_current=f.include_current, where=where, fill=f.fill, index=index))
        else:
            assert isinstance(f, LookupFeature)
            lk = f.lookup
            lookups.append(LookupFeaturePlan(name=f.name, source=lk.source, key=lk.key,
                                             on=lk.on or lk.key, column=lk.column, fill=f.fill,
                                             index=index))
    lab = spec.label
    if lab.name == ID_COLUMN:
        raise SpecError(
            f"{loaded.where('label', 'name')}: '{ID_COLUMN}' is reserved for the decision "
            "identity valuechain writes as the frame's first column. Choose another label name."
        )
    if lab.source is not None and sources[lab.source].event_time is None:
        raise SpecError(
            f"{loaded.where('sources', lab.source)}: the outcome source needs `event_time` "
            "(when the outcome happened); the label counts outcomes in (t, t + horizon]."
        )
    if lab.absent:
        for w in windows:
            if w.outcome:
                raise SpecError(
                    f"{loaded.where('features', w.index, 'of')}: feature '{w.name}' is "
                    "outcome-derived (`of: label`) but the label is `absent: true`: the absence "
                    "of an outcome is known only once the horizon (and any reporting delay) "
                    "has passed, which outcome-derived features do not model. Aggregate the "
                    "outcome source itself instead (e.g. `since_last` over it)."
                )
    label = LabelRule(name=lab.name, kind=lab.kind, horizon_us=to_micros(lab.horizon),
                      column=lab.column, source=lab.source,
                      keys=tuple(lab.keys.items()) if lab.keys else None, absent=lab.absent)
    return Plan(locator=locator(loaded), sources=sources, points=points,
                row_features=tuple(rows), windows=tuple(windows), lookups=tuple(lookups),
                label=label, as_of=as_of, feature_names=tuple(f.name for f in spec.features),
                accept_early_times=accept_early_times)
