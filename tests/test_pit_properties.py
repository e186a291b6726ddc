"""The DuckDB engine against the slow reference, on random event streams.

Streams have frequent ties, out-of-order rows, nulls in keys and values, empty windows,
lags, filters, outcome-derived windows, other sources and as-of lookups.
"""

from __future__ import annotations

import math
from typing import Any

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from valuechain.data.engines import DuckDBKernel as DuckDBEngine
from valuechain.data.pit import LabelPlan, LookupPlan, PitProblem, Window
from valuechain.data.pit import ReferenceKernel as ReferenceEngine

TIMES = st.integers(min_value=0, max_value=40)
KEYS = st.one_of(st.none(), st.integers(min_value=0, max_value=3))
VALUES = st.one_of(st.none(), st.integers(min_value=-5, max_value=5).map(float))


@st.composite
def events(draw: Any, n_min: int = 0, n_max: int = 25) -> dict[str, list[Any]]:
    n = draw(st.integers(min_value=n_min, max_value=n_max))
    order = draw(st.permutations(list(range(n))))  # tie order unrelated to row order
    return {
        "__t": draw(st.lists(TIMES, min_size=n, max_size=n)),
        "__o": list(order),
        "k": draw(st.lists(KEYS, min_size=n, max_size=n)),
        "v": draw(st.lists(VALUES, min_size=n, max_size=n)),
        "f": draw(st.lists(st.booleans(), min_size=n, max_size=n)),
        "y": draw(st.lists(st.sampled_from([0, 0, 1]), min_size=n, max_size=n)),
    }


@st.composite
def window_defs(draw: Any, source: str, own: bool, outcome_ok: bool) -> Window:
    outcome = outcome_ok and draw(st.booleans())
    agg = draw(st.sampled_from(["count", "sum", "rate", "mean"] if outcome else
                               ["count", "sum", "mean", "min", "max", "std",
                                "distinct_count", "rate"]))
    value = None if outcome or (agg == "count" and draw(st.booleans())) else (
        "y" if agg == "rate" else "v")
    return Window(
        name="w",
        source=source,
        key="k",
        agg=agg,
        value=value,
        window_us=draw(st.integers(min_value=1, max_value=20)),
        lag_us=draw(st.sampled_from([0, 0, 1, 3, 7])),
        include_current=draw(st.booleans()) if own else True,
        filter=draw(st.sampled_from([None, "f"])),
        outcome=outcome,
        fill=draw(st.sampled_from([None, -1.0])),
    )


def assert_same(left: pa.Table, right: pa.Table) -> None:
    assert left.column_names == right.column_names
    for name in left.column_names:
        a, b = left.column(name).to_pylist(), right.column(name).to_pylist()
        assert len(a) == len(b)
        for row, (x, y) in enumerate(zip(a, b, strict=True)):
            if x is None or y is None:
                assert x is None and y is None, (name, row, x, y)
            else:
                assert math.isclose(float(x), float(y), rel_tol=1e-9, abs_tol=1e-9), (
                    name, row, x, y)


def _named(windows: list[Window]) -> tuple[Window, ...]:
    return tuple(
        Window(**{**w.__dict__, "name": f"w{i}"}) for i, w in enumerate(windows)
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), stream=events(n_min=1))
def test_own_source_windows_and_column_labels(data: Any, stream: dict[str, list[Any]]) -> None:
    n = len(stream["__t"])
    # Realistic epoch-microsecond times exercise the engines' composite sort codes.
    origin = data.draw(st.sampled_from([0, -50, 1_700_000_000_000_000]))
    stream = {**stream, "__t": [t + origin for t in stream["__t"]]}
    points = pa.table({"__row": list(range(n)), **stream})
    windows = data.draw(st.lists(window_defs("tx", own=True, outcome_ok=True),
                                 min_size=1, max_size=4))
    horizon = data.draw(st.integers(min_value=1, max_value=15))
    problem = PitProblem(points=points, tables={}, own="tx", windows=_named(windows),
                         label=LabelPlan(kind="binary", horizon_us=horizon, column="y"))
    assert_same(DuckDBEngine(threads=1).compute(problem), ReferenceEngine().compute(problem))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), stream=events(n_min=1), other=events(), outcomes=events(),
       kind=st.sampled_from(["binary", "amount"]))
def test_other_sources_outcome_labels_and_lookups(
    data: Any, stream: dict[str, list[Any]], other: dict[str, list[Any]],
    outcomes: dict[str, list[Any]], kind: str,
) -> None:
    n = len(stream["__t"])
    points = pa.table({"__row": list(range(n)), **stream})
    other_t = pa.table(other, schema=pa.schema([
        ("__t", pa.int64()), ("__o", pa.int64()), ("k", pa.int64()), ("v", pa.float64()),
        ("f", pa.bool_()), ("y", pa.int64())]))
    # Outcomes: event time __e, availability __t at or after it.
    delays = data.draw(st.lists(st.integers(min_value=0, max_value=6),
                                min_size=len(outcomes["__t"]), max_size=len(outcomes["__t"])))
    outcome_t = pa.table({
        "__e": pa.array(outcomes["__t"], pa.int64()),
        "__t": pa.array([e + d for e, d in zip(outcomes["__t"], delays, strict=True)],
                        pa.int64()),
        "__o": pa.array(outcomes["__o"], pa.int64()),
        "k": pa.array(outcomes["k"], pa.int64()),
        "v": pa.array(outcomes["v"], pa.float64()),
    })
    dim = data.draw(events())
    static = data.draw(st.booleans())
    dim_t = pa.table({
        "__t": pa.array([None] * len(dim["__t"]) if static else dim["__t"], pa.int64()),
        "__o": pa.array(dim["__o"], pa.int64()),
        "k": pa.array(dim["k"], pa.int64()),
        "v": pa.array(dim["v"], pa.float64()),
    })
    windows = data.draw(st.lists(window_defs("other", own=False, outcome_ok=False),
                                 min_size=1, max_size=3))
    own_windows = data.draw(st.lists(window_defs("tx", own=True, outcome_ok=True),
                                     min_size=0, max_size=2))
    problem = PitProblem(
        points=points,
        tables={"other": other_t, "outcomes": outcome_t, "dim": dim_t},
        own="tx",
        windows=_named(windows + own_windows),
        lookups=(LookupPlan(name="lk", source="dim", key="k", on="k", column="v",
                            fill=data.draw(st.sampled_from([None, 0.0]))),),
        label=LabelPlan(kind=kind, horizon_us=data.draw(st.integers(1, 15)),  # type: ignore[arg-type]
                        outcome="outcomes", keys=(("k", "k"),),
                        column="v" if kind == "amount" else None),
    )
    assert_same(DuckDBEngine(threads=1).compute(problem), ReferenceEngine().compute(problem))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), other=events())
def test_scheduled_points_see_every_event_up_to_t(data: Any, other: dict[str, list[Any]]) -> None:
    # Scheduled points (no own source): events at exactly t are known at t.
    n = data.draw(st.integers(min_value=1, max_value=12))
    points = pa.table({
        "__row": list(range(n)),
        "__t": data.draw(st.lists(TIMES, min_size=n, max_size=n)),
        "__o": list(range(n)),
        "k": data.draw(st.lists(KEYS, min_size=n, max_size=n)),
    })
    other_t = pa.table(other, schema=pa.schema([
        ("__t", pa.int64()), ("__o", pa.int64()), ("k", pa.int64()), ("v", pa.float64()),
        ("f", pa.bool_()), ("y", pa.int64())]))
    windows = data.draw(st.lists(window_defs("other", own=False, outcome_ok=False),
                                 min_size=1, max_size=3))
    problem = PitProblem(points=points, tables={"other": other_t}, own=None,
                         windows=_named(windows))
    assert_same(DuckDBEngine(threads=1).compute(problem), ReferenceEngine().compute(problem))


def test_tied_events_see_only_those_before_them() -> None:
    points = pa.table({"__row": [0, 1, 2], "__t": [5, 5, 5], "__o": [2, 0, 1],
                       "k": [1, 1, 1], "v": [1.0, 10.0, 100.0]})
    problem = PitProblem(points=points, tables={}, own="tx", windows=(
        Window(name="s", source="tx", key="k", agg="sum", value="v", window_us=3),))
    for engine in (DuckDBEngine(), ReferenceEngine()):
        assert engine.compute(problem).column("s").to_pylist() == [111.0, 10.0, 110.0]


def test_lagged_window_is_left_open_right_closed() -> None:
    # (t - lag - w, t - lag] with t = 10, lag = 3, w = 4 -> 3 < a <= 7: times 4, 5, 7.
    points = pa.table({"__row": list(range(6)), "__t": [3, 4, 5, 7, 8, 10],
                       "__o": list(range(6)), "k": [1] * 6, "v": [1.0] * 6})
    problem = PitProblem(points=points, tables={}, own="tx", windows=(
        Window(name="n", source="tx", key="k", agg="count", window_us=4, lag_us=3),))
    for engine in (DuckDBEngine(), ReferenceEngine()):
        assert engine.compute(problem).column("n").to_pylist()[-1] == 3
