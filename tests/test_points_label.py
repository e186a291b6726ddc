"""`label.absent`: label 1 when NO outcome event falls in (t, t + horizon] ("no purchase
within 13 weeks"), maturity unchanged. Hand-computed values, the DuckDB engine against the
reference on Hypothesis worlds (late outcomes, reporting delays, nulls, zones, schedules),
and the spec's refusals."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from valuechain.data.build import finish_frame
from valuechain.data.engines.base import get_engine
from valuechain.data.pit import outcome_label
from valuechain.data.plan import EventPointsPlan, LabelRule, SchedulePlan, make_plan
from valuechain.errors import SpecError
from valuechain.spec import load_spec
from valuechain.spec.models import Label
from valuechain.testing import (
    HOUR,
    ORIGINS,
    _as_of,
    _events,
    _moment,
    _ts,
    _window,
    _World,
    _world,
    compare,
)


@pytest.fixture
def world() -> Any:
    folder = Path(tempfile.mkdtemp(prefix="vc-absent-"))
    yield _World(folder=folder, zone=None, origin=ORIGINS[2])
    shutil.rmtree(folder, ignore_errors=True)


def _hours(world: _World, hours: list[int | None]) -> pa.Array:
    return _ts([None if h is None else world.origin + h * 3600 for h in hours], world.zone)


def test_hand_computed_absence_and_maturity(world: _World) -> None:
    # decisions of customer 1 at hours 0, 10, 20, 30 and of customer 2 at hour 0
    world.write("tx", pa.table({
        "id": pa.array([1, 2, 3, 4, 5], pa.int64()), "ts": _hours(world, [0, 10, 20, 30, 0]),
        "k": pa.array([1, 1, 1, 1, 2], pa.int64())}), keys=("id",), event_time="ts")
    # purchases of customer 1 at hours 5 and 10 (the latter tied with decision 2: not in
    # its horizon (t, t + h]), one reported late: at hour 24 (event at 22)
    world.write("purchases", pa.table({
        "pid": pa.array([1, 2, 3], pa.int64()), "k": pa.array([1, 1, 1], pa.int64()),
        "ts": _hours(world, [5, 10, 22]), "seen": _hours(world, [5, 10, 24])}),
        keys=("pid",), event_time="ts", available_at="seen", role="outcome")
    plan = world.plan(EventPointsPlan(source="tx", keys=("id",)), label=LabelRule(
        name="gone", kind="binary", horizon_us=8 * HOUR, source="purchases",
        keys=(("k", "k"),), absent=True), as_of=_moment(world.origin + 40 * 3600, None))
    for engine in ("reference", "duckdb"):
        frame, counts = finish_frame(plan, get_engine(engine).execute(plan))
        got = dict(zip(frame.column("decision_id").to_pylist(),
                       frame.column("gone").to_pylist(), strict=True))
        # 1: purchase at 5 in (0, 8]; 2: none in (10, 18]; 3: 22 in (20, 28]; 4: t + h =
        # 38 <= 40 and nothing in (30, 38]; 5: customer 2 never buys
        assert got == {"1": 0, "2": 1, "3": 0, "4": 1, "5": 1}, engine
        assert (counts.mature, counts.immature, counts.positive) == (5, 0, 3)
    # extracted at hour 36: decision 4 (30 + 8 > 36) is immature, never a positive
    early = world.plan(EventPointsPlan(source="tx", keys=("id",)), label=LabelRule(
        name="gone", kind="binary", horizon_us=8 * HOUR, source="purchases",
        keys=(("k", "k"),), absent=True), as_of=_moment(world.origin + 36 * 3600, None))
    for engine in ("reference", "duckdb"):
        frame, counts = finish_frame(early, get_engine(engine).execute(early))
        assert frame.column("decision_id").to_pylist() == ["1", "5", "2", "3"]
        assert (counts.immature, counts.positive) == (1, 2)


def test_outcome_label_definition() -> None:
    assert outcome_label("binary", 10, 0, [(10, 12, None)], absent=True) == (0, 12)
    assert outcome_label("binary", 10, 0, [(0, 0, None), (11, 11, None)], absent=True) == (
        1, 10)


@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_duckdb_matches_the_reference(data: Any) -> None:
    folder = Path(tempfile.mkdtemp(prefix="vc-absent-"))
    try:
        world = _world(data, folder)
        world.write("tx", _events(data, world, 1, 20), keys=("id",), event_time="ts")
        outcomes = _events(data, world, 0, 15, name="outcomes", extra_time=True,
                           null_times=True)
        declared = data.draw(st.sampled_from([None, 0, 2, 40]), label="reporting_delay h")
        world.write("outcomes", outcomes, keys=("id",), event_time="ts", available_at="seen",
                    role="outcome",
                    reporting_delay_us=None if declared is None else declared * HOUR)
        label = LabelRule(name="label", kind="binary", source="outcomes", keys=(("k", "k"),),
                          horizon_us=data.draw(st.integers(1, 15)) * HOUR, absent=True)
        if data.draw(st.booleans(), label="scheduled"):
            points: Any = SchedulePlan(
                population="tx", key="k",
                start=_moment(world.origin + data.draw(st.integers(-3, 10)) * 3600,
                              world.zone),
                every_us=data.draw(st.sampled_from([3, 5])) * HOUR)
            windows = [_window(data, "tx", own=False, outcome_ok=False)]
        else:
            points = EventPointsPlan(source="tx", keys=("id",))
            windows = [_window(data, "tx", own=True, outcome_ok=False)]
        plan = world.plan(points, windows=windows, label=label,
                          as_of=_as_of(data, world)
                          or _moment(world.origin + 60 * 3600, world.zone))
        want = get_engine("reference").execute(plan)
        compare(plan, get_engine({"type": "duckdb", "threads": 1}).execute(plan), want,
                f"plan: {plan}")
        # absent is the negation of the binary label on every row
        plain = get_engine("reference").execute(
            world.plan(points, windows=windows, label=LabelRule(
                name="label", kind="binary", source="outcomes", keys=(("k", "k"),),
                horizon_us=label.horizon_us), as_of=plan.as_of))
        assert [1 - y for y in plain.frame.column("__label").to_pylist()] == \
            want.frame.column("__label").to_pylist()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_spec_refusals(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="absent"):
        Label.model_validate({"column": "y", "horizon": "7d", "absent": True})
    with pytest.raises(ValueError, match="absent"):
        Label.model_validate({"source": "o", "kind": "amount", "column": "a",
                              "horizon": "7d", "absent": True})
    spec = {
        "project": {"name": "p"},
        "decision": {"statement": "s", "owner": "o", "moment": "m", "actions": ["a", "b"]},
        "decision_points": {"source": "tx"},
        "sources": {"tx": {"path": "tx.parquet", "keys": ["id"], "event_time": "ts"},
                    "buys": {"path": "b.parquet", "role": "outcome", "keys": ["bid"],
                             "event_time": "ts"}},
        "label": {"source": "buys", "horizon": "7d", "absent": True},
        "features": [{"name": "r", "aggregate": "rate", "of": "label", "key": "k",
                      "window": "30d"}]}
    (tmp_path / "valuechain.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(SpecError, match=r"absent: true"):
        make_plan(load_spec(tmp_path))
    spec["features"] = [{"name": "n", "aggregate": "count", "key": "k", "window": "30d"}]
    (tmp_path / "valuechain.yaml").write_text(yaml.safe_dump(spec))
    assert make_plan(load_spec(tmp_path)).label.absent
