"""The engine conformance suite: does an engine build the same frame as the reference?

An engine (:mod:`valuechain.data.engines`) executes a :class:`~valuechain.data.plan.Plan`
from the source files. :func:`check_engine` writes small worlds to Parquet and CSV files,
makes plans over them, runs the engine and the ``reference`` engine on each, and compares
the finished frames (every decision id, feature and label within 1e-9, the row counts, the
extraction time). Worlds are generated with Hypothesis: frequent ties, tie orders unrelated
to row order, out-of-order rows, null keys and values, empty windows, lags, filters,
``include_current``, outcome-derived windows, other sources with late availability, outcome
labels (binary and amount), as-of lookups, scheduled decision points, naive and aware
times (Europe/Paris across a DST change) and epoch-scale and pre-1970 times. Explicit small
cases with hand-computed values follow. Every check has a name, and a failure says which
check failed, for which engine, and on which example.

Use it as scikit-learn's ``check_estimator``::

    from valuechain.testing import check_engine
    check_engine(lambda: MyEngine(MyEngine.Config(type="mine")))

or parametrise a test over the checks (one test per check)::

    @pytest.mark.parametrize("check", engine_checks(), ids=lambda c: c.name)
    def test_my_engine(check):
        check.run(lambda: MyEngine(MyEngine.Config(type="mine")))

Hypothesis is needed (the ``dev`` extra).

>>> [c.name for c in engine_checks()][:3]
['own_source_windows', 'other_sources_labels_lookups', 'scheduled_points']
"""

from __future__ import annotations

import math
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from valuechain.data.build import finish_frame
from valuechain.data.engines.base import Engine, EngineOutput, get_engine
from valuechain.data.plan import (
    EventPointsPlan,
    LabelRule,
    Locator,
    LookupFeaturePlan,
    Plan,
    RowFeaturePlan,
    SchedulePlan,
    SourceRef,
    WindowPlan,
)
from valuechain.expressions import parse_expression

__all__ = ["EngineCheck", "check_engine", "engine_checks"]

EngineFactory = Callable[[], Engine]
HOUR = 3_600_000_000
# Origins (seconds since the epoch): the epoch, before it, the handbook's 2018, and the
# night Europe/Paris springs forward (2025-03-30 01:00 UTC).
ORIGINS = (0, -7_200, 1_522_540_800, 1_743_289_200 - 10 * 3600)
ZONES = (None, "UTC", "Europe/Paris")
OWN_AGGS = ("count", "sum", "mean", "min", "max", "std", "distinct_count", "rate")
ROW_EXPRS = ("v * 2 + 1", "CASE WHEN v > 0 THEN 1 ELSE 0 END", "coalesce(v, 0) + k",
             "CAST(f AS INTEGER)", "abs(v) - 1", "ln(abs(v) + 1)",
             "CASE WHEN s IN ('a', 'b') THEN v END", "CAST(NOT f OR v <= -2 AS INTEGER)")
BOOL_EXPRS = ("v IS NULL", "s = 'a'", "NOT f OR v <= -2")  # no `fill` on these
WHERES = (None, "f", "v > 0", "s = 'a' OR v IS NULL", "NOT f AND k <> 2")


@dataclass(frozen=True)
class EngineCheck:
    """One named conformance check; ``run(factory)`` raises AssertionError on failure."""

    name: str
    description: str
    body: Callable[[EngineFactory, int | None], None] = field(repr=False)

    def run(self, factory: EngineFactory, max_examples: int | None = None) -> None:
        """Run the check on engines made by ``factory`` (``max_examples`` caps Hypothesis)."""
        try:
            self.body(factory, max_examples)
        except ImportError:
            raise
        except Exception as err:
            name = getattr(factory(), "name", "?")
            raise AssertionError(f"conformance check '{self.name}' failed for engine "
                                 f"'{name}': {type(err).__name__}: {err}") from err


def engine_checks() -> list[EngineCheck]:
    """Every conformance check, in order.

    Examples
    --------
    >>> len(engine_checks())
    10
    """
    return list(_CHECKS)


def check_engine(factory: EngineFactory, *, max_examples: int | None = None,
                 skip: Sequence[str] = ()) -> None:
    """Run every conformance check on engines made by ``factory``.

    Parameters
    ----------
    factory : callable
        Returns a fresh engine, e.g. ``lambda: get_engine({"type": "duckdb", "threads": 1})``.
    max_examples : int, optional
        Cap on Hypothesis examples per property check (default: each check's own count).
    skip : sequence of str
        Names of checks not to run.

    Raises
    ------
    AssertionError
        Naming the first check that failed, the engine and the difference.

    Examples
    --------
    >>> from valuechain.data.engines import get_engine
    >>> check_engine(lambda: get_engine({"type": "duckdb", "threads": 1}), max_examples=3)
    """
    for check in _CHECKS:
        if check.name not in skip:
            check.run(factory, max_examples)


# -- comparing -------------------------------------------------------------------------------
def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    if isinstance(a, (int, float, bool, np.number)) and isinstance(b, (int, float, bool,
                                                                        np.number)):
        return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)
    return bool(a == b)


def _finished(plan: Plan, out: EngineOutput) -> tuple[pa.Table, Any]:
    if not isinstance(out, EngineOutput):
        raise AssertionError(f"execute() returned {type(out).__name__}, not an EngineOutput")
    times = np.asarray(out.frame.column("__t").to_numpy(), dtype=np.int64) \
        if "__t" in out.frame.column_names else np.zeros(0, dtype=np.int64)
    if len(times) > 1 and bool(np.any(np.diff(times) < 0)):
        raise AssertionError("rows are not in decision-time order")
    return finish_frame(plan, out)


def compare(plan: Plan, got: EngineOutput, want: EngineOutput, context: str = "") -> None:
    """Assert two engine outputs finish to the same frame (1e-9 on numbers)."""
    assert got.aware == want.aware, f"aware={got.aware}, reference {want.aware}. {context}"
    assert got.as_of_us == want.as_of_us, (
        f"as_of_us={got.as_of_us}, reference {want.as_of_us}. {context}")
    assert got.dropped_no_time == want.dropped_no_time, context
    assert {k: dict(v) for k, v in got.dropped.items()} == {
        k: dict(v) for k, v in want.dropped.items()}, (
        f"dropped {dict(got.dropped)}, reference {dict(want.dropped)}. {context}")
    assert (got.label_delay_us, got.label_delay_basis) == (
        want.label_delay_us, want.label_delay_basis), (
        f"outcome delay ({got.label_delay_us}, {got.label_delay_basis!r}), reference "
        f"({want.label_delay_us}, {want.label_delay_basis!r}). {context}")
    frame, counts = _finished(plan, got)
    ref_frame, ref_counts = _finished(plan, want)
    assert counts == ref_counts, f"row counts {counts}, reference {ref_counts}. {context}"
    assert frame.column_names == ref_frame.column_names, (
        f"columns {frame.column_names}, reference {ref_frame.column_names}. {context}")
    ids = frame.column("decision_id").to_pylist()
    ref_ids = ref_frame.column("decision_id").to_pylist()
    assert sorted(ids) == sorted(ref_ids), f"decision ids differ. {context}"
    order = {d: i for i, d in enumerate(ids)}
    rows = frame.to_pylist()
    for ref_row in ref_frame.to_pylist():
        row = rows[order[ref_row["decision_id"]]]
        for name, expected in ref_row.items():
            assert _same(row[name], expected), (
                f"column '{name}' of decision {ref_row['decision_id']!r}: {row[name]!r}, "
                f"reference {expected!r}. {context}")


# -- worlds ----------------------------------------------------------------------------------
def _ts(seconds: Sequence[int | None], zone: str | None) -> pa.Array:
    micros = [None if s is None else s * 1_000_000 for s in seconds]
    return pa.array(micros, pa.timestamp("us", tz=zone))


def _moment(seconds: int, zone: str | None) -> datetime:
    value = datetime.fromtimestamp(seconds, UTC)
    return value if zone else value.replace(tzinfo=None)


@dataclass
class _World:
    folder: Path
    zone: str | None
    origin: int
    sources: dict[str, SourceRef] = field(default_factory=dict)

    def write(self, name: str, table: pa.Table, fmt: str = "parquet", **ref: Any) -> None:
        if fmt == "csv":
            path = self.folder / f"{name}.csv"
            pacsv.write_csv(table, path)
        elif fmt == "dir":
            path = self.folder / name
            path.mkdir()
            half = table.num_rows // 2
            pq.write_table(table.slice(0, half), path / "part-0.parquet")
            pq.write_table(table.slice(half), path / "part-1.parquet")
            fmt = "parquet"
        else:
            path = self.folder / f"{name}.parquet"
            pq.write_table(table, path)
        self.sources[name] = SourceRef(name=name, format=fmt,  # type: ignore[arg-type]
                                       path=path, written=path.name, **ref)

    def plan(self, points: EventPointsPlan | SchedulePlan, *, rows: Sequence[str] = (),
             windows: Sequence[WindowPlan] = (), lookups: Sequence[LookupFeaturePlan] = (),
             label: LabelRule, as_of: datetime | None = None,
             fills: Sequence[float | None] = ()) -> Plan:
        row_plans = tuple(
            RowFeaturePlan(name=f"x{i}", expr=parse_expression(text, where=f"row {i}"),
                           fill=fills[i] if i < len(fills) else None, index=i)
            for i, text in enumerate(rows))
        named = tuple(replace(w, name=f"w{i}", index=len(rows) + i)
                      for i, w in enumerate(windows))
        looks = tuple(replace(lk, name=f"l{i}") for i, lk in enumerate(lookups))
        return Plan(locator=Locator("conformance"), sources=dict(self.sources), points=points,
                    row_features=row_plans, windows=named, lookups=looks, label=label,
                    as_of=as_of, feature_names=tuple(
                        [p.name for p in row_plans] + [w.name for w in named]
                        + [lk.name for lk in looks]))


def _run_pair(factory: EngineFactory, plan: Plan, context: str) -> None:
    want = get_engine("reference").execute(plan)
    got = factory().execute(plan)
    compare(plan, got, want, context)


def _given(body: Callable[..., None], examples: int) -> Callable[[EngineFactory, int | None],
                                                                   None]:
    """Wrap a Hypothesis ``body(factory, data)`` as a check body with its example count."""

    def run(factory: EngineFactory, max_examples: int | None) -> None:
        # Needs Hypothesis (valuechain's `dev` extra); without it the import error propagates.
        from hypothesis import HealthCheck, Phase, given, settings
        from hypothesis import strategies as st

        count = examples if max_examples is None else min(examples, max_examples)

        # No shrinking: each example writes files and runs two engines; the failing plan
        # is printed whole instead.
        @settings(max_examples=count, deadline=None, database=None,
                  phases=(Phase.explicit, Phase.generate),
                  suppress_health_check=list(HealthCheck))
        @given(data=st.data())
        def prop(data: Any) -> None:
            folder = Path(tempfile.mkdtemp(prefix="vc-conformance-"))
            try:
                body(factory, data, folder)
            finally:
                shutil.rmtree(folder, ignore_errors=True)

        prop()

    return run


def _strategies() -> Any:
    from hypothesis import strategies as st
    return st


def _events(data: Any, world: _World, n_min: int, n_max: int, *, key_max: int = 3,
            name: str = "tx", extra_time: bool = False, null_times: bool = False) -> pa.Table:
    st = _strategies()
    n = data.draw(st.integers(n_min, n_max), label=f"{name} rows")
    ids = data.draw(st.permutations(list(range(n))), label=f"{name} ids")
    spread = data.draw(st.sampled_from([4, 12, 40]), label=f"{name} spread (hours)")
    hours = data.draw(st.lists(st.integers(0, spread), min_size=n, max_size=n))
    halves = data.draw(st.lists(st.sampled_from([0, 0, 0, 1800]), min_size=n, max_size=n))
    seconds = [world.origin + h * 3600 + s for h, s in zip(hours, halves, strict=True)]
    columns: dict[str, Any] = {
        "id": pa.array([i * 3 + 1 for i in ids], pa.int64()),
        "ts": _ts(seconds, world.zone),
        "k": pa.array(data.draw(st.lists(st.one_of(st.none(), st.integers(0, key_max)),
                                         min_size=n, max_size=n)), pa.int64()),
        "v": pa.array(data.draw(st.lists(st.one_of(st.none(), st.integers(-5, 5).map(float)),
                                         min_size=n, max_size=n)), pa.float64()),
        "f": pa.array(data.draw(st.lists(st.booleans(), min_size=n, max_size=n)), pa.bool_()),
        "y": pa.array(data.draw(st.lists(st.sampled_from([0, 0, 1]), min_size=n, max_size=n)),
                      pa.int64()),
        "s": pa.array(data.draw(st.lists(st.sampled_from(["a", "b", "c", None]), min_size=n,
                                         max_size=n)), pa.string()),
    }
    if extra_time:
        delays = data.draw(st.lists(st.sampled_from([0, 0, 3600, 7200, 5400, 30 * 3600]),
                                    min_size=n, max_size=n))
        seen: list[int | None] = [s + d for s, d in zip(seconds, delays, strict=True)]
        if null_times and n:
            # Rows without an event or availability time: left out and counted everywhere.
            for i in data.draw(st.lists(st.integers(0, n - 1), max_size=2), label="null seen"):
                seen[i] = None
            blank = data.draw(st.lists(st.integers(0, n - 1), max_size=2), label="null ts")
            columns["ts"] = _ts([None if i in blank else s for i, s in enumerate(seconds)],
                                world.zone)
        columns["seen"] = _ts(seen, world.zone)
    return pa.table(columns)


def _window(data: Any, source: str, *, own: bool, outcome_ok: bool) -> WindowPlan:
    st = _strategies()
    outcome = outcome_ok and data.draw(st.booleans())
    agg = data.draw(st.sampled_from(("count", "sum", "rate", "mean") if outcome else OWN_AGGS))
    of = None if outcome or (agg == "count" and data.draw(st.booleans())) else (
        "y" if agg == "rate" else data.draw(st.sampled_from(["v", "v", "k"])))
    where = data.draw(st.sampled_from(WHERES))
    return WindowPlan(
        name="w", source=source, key="k", agg=agg, of=of, outcome=outcome,
        window_us=data.draw(st.integers(1, 20)) * HOUR,
        lag_us=data.draw(st.sampled_from([0, 0, 1, 3, 7])) * HOUR,
        include_current=data.draw(st.booleans()) if own else True,
        where=None if where is None else parse_expression(where, where="where"),
        fill=data.draw(st.sampled_from([None, -1.0])))


def _world(data: Any, folder: Path, zones: Sequence[str | None] = ZONES) -> _World:
    st = _strategies()
    return _World(folder=folder, zone=data.draw(st.sampled_from(list(zones)), label="zone"),
                  origin=data.draw(st.sampled_from(ORIGINS), label="origin"))


def _as_of(data: Any, world: _World) -> datetime | None:
    st = _strategies()
    hours = data.draw(st.sampled_from([None, 20, 45, 200]), label="as_of hours")
    return None if hours is None else _moment(world.origin + hours * 3600, world.zone)


# -- property checks -------------------------------------------------------------------------
def _own_source(factory: EngineFactory, data: Any, folder: Path) -> None:
    st = _strategies()
    world = _world(data, folder)
    world.write("tx", _events(data, world, 1, 25), keys=("id",), event_time="ts")
    rows = data.draw(st.lists(st.sampled_from(ROW_EXPRS), max_size=3, unique=True))
    if world.zone is None and data.draw(st.booleans()):
        rows = [*rows, "hour(ts)"]
    fills = [data.draw(st.sampled_from([None, 0.5])) for _ in rows]
    bools = data.draw(st.lists(st.sampled_from(BOOL_EXPRS), max_size=2, unique=True))
    n_windows = data.draw(st.integers(1, 4), label="windows")
    plan = world.plan(
        EventPointsPlan(source="tx", keys=("id",), keep=("s",) if data.draw(st.booleans())
                        else ()),
        rows=[*rows, *bools], fills=fills,
        windows=[_window(data, "tx", own=True, outcome_ok=True) for _ in range(n_windows)],
        label=LabelRule(name="label", kind="binary", column="y",
                        horizon_us=data.draw(st.integers(1, 15)) * HOUR),
        as_of=_as_of(data, world))
    _run_pair(factory, plan, f"plan: {plan}")


def _other_sources(factory: EngineFactory, data: Any, folder: Path) -> None:
    st = _strategies()
    world = _world(data, folder)
    world.write("tx", _events(data, world, 1, 20), keys=("id",), event_time="ts")
    late = data.draw(st.booleans(), label="other has available_at")
    world.write("other", _events(data, world, 0, 20, name="other", extra_time=late,
                                 null_times=True),
                keys=("id",), event_time="ts", available_at="seen" if late else None)
    outcomes = _events(data, world, 0, 15, name="outcomes", extra_time=True, null_times=True)
    declared = data.draw(st.sampled_from([None, None, 0, 2, 40]), label="reporting_delay h")
    world.write("outcomes", outcomes, keys=("id",), event_time="ts", available_at="seen",
                role="outcome",
                reporting_delay_us=None if declared is None else declared * HOUR)
    dim = _events(data, world, 0, 12, name="dim")
    static = data.draw(st.booleans(), label="static dimension")
    if static:
        dim = dim.drop_columns(["ts"])
    world.write("dim", dim, keys=("id",), valid_from=None if static else "ts",
                role="dimension")
    kind = data.draw(st.sampled_from(["binary", "amount"]), label="label kind")
    n_other = data.draw(st.integers(1, 3))
    n_own = data.draw(st.integers(0, 2))
    plan = world.plan(
        EventPointsPlan(source="tx", keys=("id",)),
        windows=[_window(data, "other", own=False, outcome_ok=False) for _ in range(n_other)]
        + [_window(data, "tx", own=True, outcome_ok=True) for _ in range(n_own)],
        lookups=[LookupFeaturePlan(name="l", source="dim", key="k", on="k", column="v",
                                   fill=data.draw(st.sampled_from([None, 0.0])))],
        label=LabelRule(name="label", kind=kind,  # type: ignore[arg-type]
                        horizon_us=data.draw(st.integers(1, 15)) * HOUR, source="outcomes",
                        keys=(("k", "k"),), column="v" if kind == "amount" else None),
        as_of=_as_of(data, world))
    _run_pair(factory, plan, f"plan: {plan}")


def _scheduled(factory: EngineFactory, data: Any, folder: Path) -> None:
    st = _strategies()
    world = _world(data, folder)
    world.write("tx", _events(data, world, 1, 20), keys=("id",), event_time="ts")
    world.write("outcomes", _events(data, world, 0, 12, name="outcomes", extra_time=True,
                                    null_times=True),
                keys=("id",), event_time="ts", available_at="seen", role="outcome")
    start = world.origin + data.draw(st.integers(-3, 20)) * 3600
    end = data.draw(st.sampled_from([None, 30, 45]))
    active = data.draw(st.sampled_from([None, 5, 12]))
    points = SchedulePlan(
        population="tx", key="k", start=_moment(start, world.zone),
        every_us=data.draw(st.sampled_from([3, 5, 24])) * HOUR,
        end=None if end is None else _moment(world.origin + end * 3600, world.zone),
        active_within_us=None if active is None else active * HOUR)
    rows = data.draw(st.lists(st.sampled_from(["k * 2", "k + 0.5", "CASE WHEN k > 1 THEN 1 "
                                               "ELSE 0 END"]), max_size=2, unique=True))
    plan = world.plan(
        points, rows=rows,
        windows=[_window(data, "tx", own=False, outcome_ok=False)
                 for _ in range(data.draw(st.integers(1, 3)))],
        label=LabelRule(name="label", kind="binary", horizon_us=data.draw(st.integers(1, 15))
                        * HOUR, source="outcomes", keys=(("k", "k"),)),
        as_of=_as_of(data, world) or _moment(world.origin + 60 * 3600, world.zone))
    _run_pair(factory, plan, f"plan: {plan}")


# -- explicit cases --------------------------------------------------------------------------
def _explicit(body: Callable[[EngineFactory, Path], None]) -> Callable[
        [EngineFactory, int | None], None]:
    def run(factory: EngineFactory, max_examples: int | None) -> None:
        folder = Path(tempfile.mkdtemp(prefix="vc-conformance-"))
        try:
            body(factory, folder)
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    return run


def _values(factory: EngineFactory, plan: Plan, column: str) -> list[Any]:
    frame, _ = finish_frame(plan, factory().execute(plan))
    ids = frame.column("decision_id").to_pylist()
    values = frame.column(column).to_pylist()
    return [v for _, v in sorted(zip(ids, values, strict=True), key=lambda p: int(p[0]))]


def _simple(world: _World, seconds: Sequence[int], ids: Sequence[int], values: Sequence[float],
            keys: Sequence[int] | None = None) -> None:
    world.write("tx", pa.table({
        "id": pa.array(list(ids), pa.int64()), "ts": _ts(seconds, world.zone),
        "k": pa.array(list(keys or [1] * len(ids)), pa.int64()),
        "v": pa.array(list(values), pa.float64()), "y": pa.array([0] * len(ids), pa.int64()),
    }), keys=("id",), event_time="ts")


_FAR = datetime(2100, 1, 1)
_LABEL = LabelRule(name="label", kind="binary", column="y", horizon_us=HOUR)


def _ties(factory: EngineFactory, folder: Path) -> None:
    world = _World(folder, None, 0)
    _simple(world, [5 * 3600] * 3, [2, 0, 1], [1.0, 10.0, 100.0])
    plan = world.plan(EventPointsPlan("tx", ("id",)), label=_LABEL, as_of=_FAR, windows=[
        WindowPlan(name="s", source="tx", key="k", agg="sum", of="v", window_us=3 * HOUR)])
    got = _values(factory, plan, "w0")
    assert got == [10.0, 110.0, 111.0], f"tied events: sums {got}, expected [10, 110, 111]"


def _lag_bounds(factory: EngineFactory, folder: Path) -> None:
    world = _World(folder, None, 0)
    _simple(world, [h * 3600 for h in (3, 4, 5, 7, 8, 10)], range(6), [1.0] * 6)
    plan = world.plan(EventPointsPlan("tx", ("id",)), label=_LABEL, as_of=_FAR, windows=[
        WindowPlan(name="n", source="tx", key="k", agg="count", window_us=4 * HOUR,
                   lag_us=3 * HOUR)])
    got = _values(factory, plan, "w0")
    assert got[-1] == 3, f"(t - lag - w, t - lag] with t=10h, lag=3h, w=4h counts {got[-1]}, " \
                         "expected 3 (rows at 4h, 5h, 7h)"


def _dst(factory: EngineFactory, folder: Path) -> None:
    # Paris springs forward on 2025-03-30: 00:30 on the 30th to 01:00 on the 31st is 23h30.
    world = _World(folder, "Europe/Paris", 0)
    utc = [1_743_291_000, 1_743_371_100, 1_743_375_600, 1_743_544_800]
    _simple(world, utc, range(4), [1.0] * 4)
    plan = world.plan(EventPointsPlan("tx", ("id",)), label=_LABEL,
                      as_of=datetime(2100, 1, 1, tzinfo=UTC), windows=[
                          WindowPlan(name="n", source="tx", key="k", agg="count",
                                     window_us=24 * HOUR)])
    got = _values(factory, plan, "w0")
    assert got == [1, 2, 3, 1], f"1-day counts across DST {got}, expected [1, 2, 3, 1] " \
                                "(exact durations, not wall clock)"


def _as_of_default(factory: EngineFactory, folder: Path) -> None:
    world = _World(folder, None, 1_522_540_800)
    _simple(world, [1_522_540_800, 1_522_544_400], [1, 2], [1.0, 2.0])
    world.write("outcomes", pa.table({
        "id": [1], "k": [1], "ts": _ts([1_522_548_000], None),
        "seen": _ts([1_522_600_000], None)}), keys=("id",), event_time="ts",
        available_at="seen", role="outcome")
    plan = world.plan(EventPointsPlan("tx", ("id",)), label=LabelRule(
        name="label", kind="binary", horizon_us=HOUR, source="outcomes", keys=(("k", "k"),)))
    out = factory().execute(plan)
    assert out.as_of_us == 1_522_600_000 * 1_000_000, (
        f"as_of_us {out.as_of_us}: without as_of it is the latest time in any declared time "
        "column of any source (here the outcome's available_at)")
    assert not out.aware


def _formats(factory: EngineFactory, folder: Path) -> None:
    world = _World(folder, None, 0)
    seconds = [h * 3600 for h in (0, 1, 1, 2, 5, 6)]
    world.write("tx", pa.table({
        "id": pa.array([6, 5, 4, 3, 2, 1], pa.int64()), "ts": _ts(seconds, None),
        "k": pa.array([1, 1, 2, 1, 2, 1], pa.int64()),
        "v": pa.array([1.0, 2.0, 3.0, None, 5.0, 6.0]), "y": pa.array([0] * 6, pa.int64()),
    }), fmt="dir", keys=("id",), event_time="ts")
    world.write("other", pa.table({
        "oid": pa.array([1, 2, 3], pa.int64()), "ts": _ts([0, 3600, 7200], None),
        "k": pa.array([1, 1, 2], pa.int64()), "v": pa.array([10.0, 20.0, 30.0])}),
        fmt="csv", keys=("oid",), event_time="ts")
    plan = world.plan(EventPointsPlan("tx", ("id",)), label=_LABEL, as_of=_FAR, windows=[
        WindowPlan(name="a", source="tx", key="k", agg="sum", of="v", window_us=2 * HOUR),
        WindowPlan(name="b", source="other", key="k", agg="max", of="v", window_us=3 * HOUR)])
    _run_pair(factory, plan, "a directory of Parquet files and a CSV source")


def _composite_keys(factory: EngineFactory, folder: Path) -> None:
    world = _World(folder, None, 0)
    world.write("tx", pa.table({
        "shop": ["b", "a", "b", "a"], "n": pa.array([1, 2, 0, 1], pa.int64()),
        "ts": _ts([0, 0, 0, 3600], None), "k": pa.array([1, 1, 1, 1], pa.int64()),
        "v": pa.array([1.0, 2.0, 4.0, 8.0]), "y": pa.array([0, 0, 0, 0], pa.int64())}),
        keys=("shop", "n"), event_time="ts")
    plan = world.plan(EventPointsPlan("tx", ("shop", "n")), label=_LABEL, as_of=_FAR,
                      windows=[WindowPlan(name="s", source="tx", key="k", agg="sum", of="v",
                                          window_us=2 * HOUR)])
    frame, _ = finish_frame(plan, factory().execute(plan))
    got = dict(zip(frame.column("decision_id").to_pylist(), frame.column("w0").to_pylist(),
                   strict=True))
    # Tied at 0: keys in order a|2, b|0, b|1; a|1 at 1h sees all.
    expected = {"a|2": 2.0, "b|0": 6.0, "b|1": 7.0, "a|1": 15.0}
    assert got == expected, f"tie order by composite keys: {got}, expected {expected}"


def _outcome_delay(factory: EngineFactory, folder: Path) -> None:
    world = _World(folder, None, 0)
    _simple(world, [h * 3600 for h in (0, 2, 4, 6)], [1, 2, 3, 4], [1.0] * 4)
    h = 3600
    # tx 1: happened 0.5h, known 3.5h (3h later); tx 3: happened 4.5h, known 5.5h; an outcome
    # of tx 2 without availability time and one without event time: no outcome, counted.
    outcomes = pa.table({
        "oid": pa.array([10, 11, 12, 13], pa.int64()), "tid": pa.array([1, 3, 2, 4], pa.int64()),
        "ts": _ts([h // 2, 9 * h // 2, 5 * h // 2, None], None),
        "seen": _ts([7 * h // 2, 11 * h // 2, None, 13 * h // 2], None)})

    def run(declared: int | None, as_of_h: int) -> tuple[list[Any], Any, EngineOutput]:
        world.write("outcomes", outcomes, keys=("oid",), event_time="ts", available_at="seen",
                    role="outcome", reporting_delay_us=declared)
        plan = world.plan(EventPointsPlan("tx", ("id",)), as_of=_moment(as_of_h * 3600, None),
                          label=LabelRule(name="label", kind="binary", horizon_us=HOUR,
                                          source="outcomes", keys=(("id", "tid"),)))
        out = factory().execute(plan)
        frame, counts = finish_frame(plan, out)
        labels = dict(zip(frame.column("decision_id").to_pylist(),
                          frame.column("label").to_pylist(), strict=True))
        return [labels.get(str(i)) for i in (1, 2, 3, 4)], counts, out

    labels, counts, out = run(None, 8)
    assert (out.label_delay_us, out.label_delay_basis) == (3 * HOUR, "inferred"), (
        f"outcome delay ({out.label_delay_us}, {out.label_delay_basis!r}), expected "
        "(3h, 'inferred'): the largest available_at - event_time")
    assert labels == [1, 0, 1, None], (
        f"labels {labels} with as_of 8h, horizon 1h, delay 3h: expected [1, 0, 1, immature] "
        "(mature iff t + horizon + delay <= as_of)")
    assert (counts.mature, counts.immature, counts.immature_delay, counts.positive) == (
        3, 1, 1, 2), f"counts {counts}: expected 3 mature, 1 immature by the delay, 2 positive"
    dropped = {k: dict(v) for k, v in out.dropped.items()}
    assert dropped == {"outcomes": {"no event time ('ts')": 1,
                                    "no availability time ('seen')": 1}}, (
        f"dropped {dropped}: expected one outcome row without event time and one without "
        "availability time")
    labels, counts, out = run(0, 5)
    assert out.label_delay_basis == "declared" and out.label_delay_us == 0
    assert labels == [1, 0, 0, None], (
        f"labels {labels} with as_of 5h and a declared delay of 0: tx 3's outcome (known at "
        "5.5h) is not known by as_of and must not count: expected [1, 0, 0, immature]")


_CHECKS: tuple[EngineCheck, ...] = (
    EngineCheck("own_source_windows", "windows over the decision source: ties, nulls, lags, "
                "filters, include_current, outcome-derived, row features, column labels",
                _given(_own_source, 150)),
    EngineCheck("other_sources_labels_lookups", "windows over other sources with late "
                "availability, outcome labels (binary, amount), as-of lookups (static or "
                "versioned)", _given(_other_sources, 100)),
    EngineCheck("scheduled_points", "scheduled decision points with active_within and end, "
                "windows and outcome labels", _given(_scheduled, 60)),
    EngineCheck("tied_events", "an event sees the tied events before it in key order, never "
                "those after", _explicit(_ties)),
    EngineCheck("lagged_window_bounds", "a lagged window is (t - lag - w, t - lag]",
                _explicit(_lag_bounds)),
    EngineCheck("dst_exact_durations", "windows are exact durations across a DST change",
                _explicit(_dst)),
    EngineCheck("as_of_default", "without as_of, the latest time in the sources",
                _explicit(_as_of_default)),
    EngineCheck("source_formats", "a directory of Parquet files and a CSV source",
                _explicit(_formats)),
    EngineCheck("composite_keys", "decision ids and tie order from several key columns",
                _explicit(_composite_keys)),
    EngineCheck("outcome_delay", "labels count outcomes known by as_of; maturity waits for "
                "the outcome delay (declared or inferred); null-time outcome rows are left "
                "out and counted", _explicit(_outcome_delay)),
)
