"""Point-in-time semantics: the one definition, and its slow reference implementation.

Everything that decides *which rows a feature or label may see* is defined here, once.
Engines (:mod:`valuechain.data.engines`) compute the same thing fast and are tested
against :class:`ReferenceKernel` (the ``reference`` engine), through the conformance suite
:func:`valuechain.testing.check_engine`.

All times are integers: microseconds since the epoch (UTC instants for time-zone aware
data, wall-clock for naive data). Durations are exact (a day is 24 h).

Definitions
-----------
Decision point ``i``
    time ``t_i``, tie order ``o_i`` (rank of its keys), and its columns.
Availability ``a_j``
    the time row ``j`` of a source became known (``available_at``, else the event time).
Window membership (feature with window ``w``, lag ``L`` over key ``K``)
    row ``j`` is a member for decision ``i`` iff ``K_j == K_i`` (never null) and the row passes
    the feature's filter and

    * ``j`` is the decision event itself: only when ``L == 0`` and ``include_current``;
    * otherwise ``t_i - L - w < a_j <= t_i - L``, except that over the decision's own source
      with ``L == 0`` a row *tied* with the decision (``a_j == t_i``) is a member only if it
      arrived before it (``o_j < o_i``), exactly what an online system would have seen.
Aggregates over the members' non-null values
    count (rows, or non-null values of ``of``), sum (0 when empty), mean, min, max,
    std (sample, null below 2 values), distinct_count, rate (mean of a 0/1 column).
    Empty windows give null for mean/min/max/std/rate; ``fill`` replaces nulls.
Recency aggregates (:func:`recency`)
    over the members (with ``of``: those whose value is not null), ordered by
    ``(a_j, o_j)`` (the decision event itself at ``(t_i, o_i)``): since_first / since_last =
    ``(t_i - a_j) / 1 day`` (float days) for the first / last of them; last = the value of
    ``of`` in the last of them. Null when there is none (``fill`` replaces it).
Outcome-derived aggregates (``of: label``)
    count the members whose label is positive (> 0) *and known* by ``t_i`` (``known_j <= t_i``):
    count = such members, sum = their label values, rate/mean = sum / members.
Outcome rows
    an outcome row ``j`` has an event time ``e_j`` (when it happened) and an availability
    ``a_j`` (``available_at``, else ``e_j``). Rows with a null ``e_j`` or ``a_j`` are no
    outcome at all: every engine leaves them out and counts them (``dropped``).
Label
    column label: the column's value, known at ``t + horizon``. Outcome-source label: binary
    = any outcome row with matching keys, event time in ``(t, t + horizon]`` *and known by
    the extraction time* (``a_j <= as_of``); amount = the sum of their amounts. It is known
    (for outcome-derived features) at the earliest availability of such rows (binary) or the
    latest (amount). An ``absent`` label is the negation of the binary one: 1 when no such
    row exists (known at ``t + horizon``), else 0.
Outcome delay ``d``
    how long after it happens an outcome becomes known (:func:`label_delay`): the outcome
    source's declared ``reporting_delay``; else, when it declares ``available_at``, the
    largest ``a_j - e_j`` over its rows (inferred; the manifest says so and recommends
    declaring it); else 0. A column label has ``d = 0``.
Maturity
    a label is mature iff ``t + horizon + d <= as_of`` (:func:`is_mature`): every outcome in
    the horizon has then had the time to become known. Immature rows are excluded and
    counted; those that only the delay makes immature (``t + horizon <= as_of``) too.
As-of lookup
    the dimension row with ``on == key`` and ``known_r <= t`` that is latest by
    ``(known_r, o_r)``, where ``known_r`` is the later of ``valid_from`` and ``available_at``
    (rows without either are always known).

>>> import pyarrow as pa
>>> points = pa.table({"__row": [0, 1, 2], "__t": [0, 10, 10], "__o": [0, 1, 2],
...                    "cust": [1, 1, 1], "amount": [5.0, 7.0, 9.0]})
>>> problem = PitProblem(points=points, tables={}, own="tx", windows=(
...     Window(name="n", source="tx", key="cust", agg="count", window_us=11),
...     Window(name="s", source="tx", key="cust", agg="sum", value="amount", window_us=11,
...            include_current=False),))
>>> ReferenceKernel().compute(problem).to_pydict()
{'n': [1, 2, 3], 's': [0.0, 5.0, 12.0]}
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol

import pyarrow as pa

from valuechain.errors import EngineError

__all__ = [
    "AGGREGATES",
    "EMPTY_ZERO",
    "Kernel",
    "LabelPlan",
    "LookupPlan",
    "PitProblem",
    "ReferenceKernel",
    "Window",
    "aggregate",
    "in_window",
    "is_mature",
    "label_delay",
    "lookup_rank",
    "outcome_aggregate",
    "outcome_label",
    "recency",
    "scheduled_members",
]

Agg = Literal["count", "sum", "mean", "min", "max", "std", "distinct_count", "rate",
              "since_first", "since_last", "last"]
AGGREGATES: tuple[str, ...] = ("count", "sum", "mean", "min", "max", "std", "distinct_count",
                               "rate", "since_first", "since_last", "last")
#: Aggregates that read the members' times and tie order, not only their values.
RECENCY = frozenset({"since_first", "since_last", "last"})
DAY_US = 86_400_000_000
EMPTY_ZERO = frozenset({"count", "sum", "distinct_count"})
OUTCOME_AGGREGATES = frozenset({"count", "sum", "rate", "mean"})
LABEL = "__label"
KNOWN = "__known"


@dataclass(frozen=True)
class Window:
    """A windowed aggregate, already resolved to column names and microseconds."""

    name: str
    source: str
    key: str
    agg: Agg
    window_us: int
    value: str | None = None
    lag_us: int = 0
    include_current: bool = True
    filter: str | None = None
    outcome: bool = False
    fill: float | None = None
    key_in_source: str | None = None

    @property
    def source_key(self) -> str:
        return self.key_in_source or self.key


@dataclass(frozen=True)
class LookupPlan:
    """An as-of lookup: ``column`` of ``source`` where ``on`` equals the point's ``key``."""

    name: str
    source: str
    key: str
    on: str
    column: str
    fill: float | None = None


@dataclass(frozen=True)
class LabelPlan:
    """How to label each point; see the module docstring."""

    kind: Literal["binary", "amount"]
    horizon_us: int
    column: str | None = None
    outcome: str | None = None
    keys: tuple[tuple[str, str], ...] = ()
    known_by_us: int | None = None  # as_of: outcome rows known later do not count
    absent: bool = False  # binary: 1 when NO outcome falls in the horizon


@dataclass(frozen=True)
class PitProblem:
    """Everything an engine needs, as Arrow tables with reserved columns.

    ``points`` has ``__row`` (position), ``__t`` (decision time), ``__o`` (tie order) and
    the columns features read. Each table in ``tables`` has ``__t`` (availability time,
    null for static rows) and ``__o``; outcome tables also ``__e`` (outcome event time).
    When ``own`` names a source, its rows are the points themselves. Without a ``label``,
    outcome-derived windows read the labels from the points' ``__label`` and ``__known``
    columns (labels computed earlier, e.g. by an engine that partitions by another key).
    """

    points: pa.Table
    tables: Mapping[str, pa.Table]
    own: str | None = None
    windows: tuple[Window, ...] = ()
    lookups: tuple[LookupPlan, ...] = ()
    label: LabelPlan | None = None

    def table(self, name: str) -> pa.Table:
        if name == self.own:
            return self.points
        try:
            return self.tables[name]
        except KeyError:
            raise EngineError(f"problem has no table '{name}'") from None


class Kernel(Protocol):
    """Computes labels and features of a :class:`PitProblem` (an engine's inner part).

    ``compute`` returns one row per point in ``points`` order: ``__label`` and ``__known``
    (when the problem has a label) and one column per window and lookup.
    """

    name: ClassVar[str]

    def compute(self, problem: PitProblem) -> pa.Table: ...


def label_delay(declared_us: int | None, gaps: Iterable[int] | None) -> tuple[int, str]:
    """The outcome delay ``d`` of the module docstring, and how it was found.

    ``declared_us`` is the outcome source's ``reporting_delay`` (None when not declared);
    ``gaps`` the ``a_j - e_j`` of its rows with both times (None when the source has no
    ``available_at``; an engine may pass just the largest). Returns ``(d, basis)`` with
    ``basis`` ``"declared"``, ``"inferred"`` (the largest gap, 0 without rows) or ``"none"``.

    >>> label_delay(None, [5, 30, 0])
    (30, 'inferred')
    >>> label_delay(3, [50])
    (3, 'declared')
    >>> label_delay(None, None)
    (0, 'none')
    """
    if declared_us is not None:
        return int(declared_us), "declared"
    if gaps is None:
        return 0, "none"
    return max([0, *gaps]), "inferred"


def is_mature(t_us: int, horizon_us: int, delay_us: int, as_of_us: int) -> bool:
    """Whether a label at ``t_us`` is final at ``as_of_us``: ``t + horizon + d <= as_of``.

    >>> is_mature(0, 10, 5, 15), is_mature(0, 10, 5, 14)
    (True, False)
    """
    return t_us + horizon_us + delay_us <= as_of_us


_ROWS: dict[tuple[int, str], tuple[pa.Table, dict[Any, list[dict[str, Any]]]]] = {}


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    return table.to_pylist()  # type: ignore[no-any-return]


def _rows_with(table: pa.Table, column: str, value: Any) -> list[dict[str, Any]]:
    """Rows whose ``column`` equals ``value`` (indexed once per table; a speed-up only)."""
    cached = _ROWS.get((id(table), column))
    if cached is None or cached[0] is not table:
        if len(_ROWS) > 64:
            _ROWS.clear()
        index: dict[Any, list[dict[str, Any]]] = {}
        for row in _rows(table):
            index.setdefault(row[column], []).append(row)
        cached = _ROWS[(id(table), column)] = (table, index)
    return cached[1].get(value, []) if value is not None else []


# -- the definitions, as functions of one row (shared with the online path, valuechain.serve) --
def in_window(window: Window, *, own: bool, t: int, o: Any, row_t: int | None, row_o: Any,
              is_point: bool) -> bool:
    """Whether a row (availability ``row_t``, tie order ``row_o``) of ``window.source`` that
    matches the key and the filter is a member of ``window`` for the decision at ``t``
    (tie order ``o``). ``own``: the window is over the decision source; ``is_point``: the
    row is the decision event itself."""
    if own and is_point:
        return window.lag_us == 0 and window.include_current
    if own and window.lag_us == 0 and row_t == t:
        return bool(row_o < o)
    end = t - window.lag_us
    return row_t is not None and end - window.window_us < row_t <= end


def outcome_label(kind: str, horizon_us: int, t: int,
                  hits: list[tuple[int, int, Any]], absent: bool = False) -> tuple[Any, Any]:
    """``(label, known time)`` of the decision at ``t`` from the outcome rows with matching
    keys, each ``(event time, availability, amount)``: only those with event time in
    ``(t, t + horizon]`` count; binary: known at the earliest, amount: at the latest.
    ``absent``: 1 (known at ``t + horizon``) when none counts, else 0.

    >>> outcome_label("binary", 10, 0, [(5, 6, None)]), outcome_label("binary", 10, 0, [])
    ((1, 6), (0, None))
    >>> outcome_label("binary", 10, 0, [(11, 11, None)], absent=True)
    (1, 10)
    """
    inside = [h for h in hits if h[0] is not None and t < h[0] <= t + horizon_us]
    if absent:
        return (0, min(h[1] for h in inside)) if inside else (1, t + horizon_us)
    if kind == "binary":
        if not inside:
            return 0, None
        return 1, min(h[1] for h in inside)
    inside = [h for h in inside if h[2] is not None]
    if not inside:
        return 0.0, None
    return float(math.fsum(h[2] for h in inside)), max(h[1] for h in inside)


def outcome_aggregate(agg: str, labels: list[tuple[Any, Any]], t: int) -> Any:
    """An outcome-derived aggregate over the members' ``(label, known time)``: positive
    labels known by ``t`` count; rate and mean divide their sum by all members."""
    known = [lab for lab, at in labels if at is not None and at <= t
             and lab is not None and lab > 0]
    total = float(math.fsum(known))
    if agg == "count":
        return len(known)
    if agg == "sum":
        return total
    return total / len(labels) if labels else None


def recency(agg: str, members: list[tuple[int, Any, Any]], t: int) -> Any:
    """A recency aggregate (``since_first``, ``since_last``, ``last``) of the decision at
    ``t`` over its members ``(availability, tie order, value)`` (with ``of``: only members
    whose value is not null): float days from the first / last member to ``t``, or the value
    of the last; None without members. The last member is the latest by ``(availability,
    tie order)``, the order in which an online system would have seen them.

    >>> day = DAY_US
    >>> rows = [(0, 2, "a"), (day, 1, "b"), (day, 0, "c")]
    >>> recency("since_first", rows, 3 * day), recency("since_last", rows, 3 * day)
    (3.0, 2.0)
    >>> recency("last", rows, 3 * day), recency("last", [], 0)
    ('b', None)
    """
    if not members:
        return None
    if agg == "since_first":
        return (t - min(m[0] for m in members)) / DAY_US
    if agg == "since_last":
        return (t - max(m[0] for m in members)) / DAY_US
    if agg == "last":
        return max(members, key=lambda m: (m[0], m[1]))[2]
    raise EngineError(f"unknown recency aggregate '{agg}'")


def scheduled_members(times: Iterable[int],
                      rows: Iterable[tuple[Any, int | None, int | None, int | None]],
                      active_within_us: int | None = None,
                      intervals: bool = False) -> list[tuple[Any, int]]:
    """The scheduled decision points ``(key, t)``, in ``(t, key)`` order.

    ``rows`` are the population rows ``(key, seen, active_from, active_until)``: ``seen`` is
    when the row became known (its availability; without one, its ``active_from``);
    ``active_from`` None means "from ``seen``", ``active_until`` None "still open". Rows with
    a null key or ``seen`` never count (nor, when the schedule declares ``active_from``, rows
    where it is null: the caller leaves them out). An entity is a decision point at ``t``
    when it has a row known at ``t`` (``seen <= t``) and, with ``active_within``, a row seen
    in ``(t - active_within, t]``, and, with ``intervals`` (the schedule declares
    ``active_from`` or ``active_until``), a row known at ``t`` that is active at ``t``:
    ``active_from <= t`` and (``active_until`` null or ``active_until > t``).

    >>> scheduled_members([0, 10, 20], [("a", 0, 0, 10), ("b", 5, 5, None)], intervals=True)
    [('a', 0), ('b', 10), ('b', 20)]
    """
    by_key: dict[Any, list[tuple[int, int | None, int | None]]] = {}
    for key, seen, start, until in rows:
        if key is None or seen is None:
            continue
        by_key.setdefault(key, []).append((seen, start, until))
    out: list[tuple[Any, int]] = []
    for t in sorted(set(times)):
        for key in sorted(by_key):
            known = [r for r in by_key[key] if r[0] <= t]
            if not known:
                continue
            if active_within_us is not None and not any(
                    seen > t - active_within_us for seen, _, _ in known):
                continue
            if intervals and not any(
                    (seen if start is None else start) <= t and (until is None or until > t)
                    for seen, start, until in known):
                continue
            out.append((key, t))
    return out


def lookup_rank(known: int | None, o: Any) -> tuple[int, Any]:
    """The as-of lookup's order of a dimension row: the latest ``(known, o)`` wins; rows with
    no known time are always known (and older than every dated row)."""
    return (known if known is not None else -(2**63), o)


def aggregate(agg: str, values: list[Any], members: int) -> Any:
    """An aggregate over the members' non-null ``values`` (``members``: their count)."""
    return _aggregate(agg, values, members)


def _aggregate(agg: str, values: list[Any], members: int) -> Any:
    if agg == "count":
        return members
    if agg == "distinct_count":
        return len(set(values))
    if agg == "sum":
        return float(math.fsum(values)) if values else 0.0
    if not values:
        return None
    if agg in ("mean", "rate"):
        return math.fsum(values) / len(values)
    if agg == "min":
        return min(values)
    if agg == "max":
        return max(values)
    if agg == "std":
        if len(values) < 2:
            return None
        mean = math.fsum(values) / len(values)
        return math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (len(values) - 1))
    raise EngineError(f"unknown aggregate '{agg}'")


@dataclass
class ReferenceKernel:
    """Slow, obviously correct implementation of the module's definitions (tests only)."""

    name: ClassVar[str] = "reference"

    def compute(self, problem: PitProblem) -> pa.Table:
        points = _rows(problem.points)
        out: dict[str, list[Any]] = {}
        labels: dict[int, tuple[Any, Any]] = {}
        if problem.label is not None:
            labels = {p["__row"]: self._label(problem, p) for p in points}
            out[LABEL] = [lab for lab, _ in labels.values()]
            out[KNOWN] = [known for _, known in labels.values()]
        elif LABEL in problem.points.column_names:  # given (see PitProblem)
            labels = {p["__row"]: (p[LABEL], p[KNOWN]) for p in points}
        for window in problem.windows:
            out[window.name] = [self._window(problem, window, p, labels) for p in points]
        for lookup in problem.lookups:
            out[lookup.name] = [self._lookup(problem, lookup, p) for p in points]
        return pa.table(out) if out else pa.table({"__row": [p["__row"] for p in points]})

    def _label(self, problem: PitProblem, point: dict[str, Any]) -> tuple[Any, Any]:
        plan = problem.label
        assert plan is not None
        t = point["__t"]
        if plan.outcome is None:
            assert plan.column is not None
            return point[plan.column], t + plan.horizon_us
        first_point, first_outcome = plan.keys[0]
        hits = [
            (row["__e"], row["__t"], row[plan.column] if plan.column else None)
            for row in _rows_with(problem.table(plan.outcome), first_outcome, point[first_point])
            if all(point[a] is not None and point[a] == row[b] for a, b in plan.keys)
            and row["__t"] is not None
            and (plan.known_by_us is None or row["__t"] <= plan.known_by_us)
        ]
        return outcome_label(plan.kind, plan.horizon_us, t, hits, absent=plan.absent)

    def _window(
        self,
        problem: PitProblem,
        window: Window,
        point: dict[str, Any],
        labels: dict[int, tuple[Any, Any]],
    ) -> Any:
        own = window.source == problem.own
        t, key = point["__t"], point[window.key]
        members: list[dict[str, Any]] = []
        if key is not None:
            for row in _rows_with(problem.table(window.source), window.source_key, key):
                if window.filter is not None and not row[window.filter]:
                    continue
                if in_window(window, own=own, t=t, o=point["__o"], row_t=row["__t"],
                             row_o=row["__o"], is_point=own and row["__row"] == point["__row"]):
                    members.append(row)
        if window.outcome:
            value = outcome_aggregate(window.agg, [labels[r["__row"]] for r in members], t)
        elif window.agg in RECENCY:
            value = recency(window.agg, [
                (r["__t"], r["__o"], None if window.value is None else r[window.value])
                for r in members if window.value is None or r[window.value] is not None], t)
        else:
            if window.value is None:
                values: list[Any] = []
            else:
                values = [r[window.value] for r in members if r[window.value] is not None]
            count = len(members) if window.value is None else len(values)
            value = _aggregate(window.agg, values, count)
        return window.fill if value is None else value

    def _lookup(self, problem: PitProblem, lookup: LookupPlan, point: dict[str, Any]) -> Any:
        t, key = point["__t"], point[lookup.key]
        best: tuple[int, int] | None = None
        value: Any = None
        if key is not None:
            for row in _rows_with(problem.table(lookup.source), lookup.on, key):
                known = row["__t"]
                if known is not None and known > t:
                    continue
                rank = lookup_rank(known, row["__o"])
                if best is None or rank > best:
                    best, value = rank, row[lookup.column]
        return lookup.fill if value is None else value
