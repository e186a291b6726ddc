"""Scheduled decision points from active intervals (`active_from` / `active_until`).

The rule (valuechain.data.pit.scheduled_members): an entity is a decision point at t when a
population row known at t has active_from <= t and (active_until null or > t). The DuckDB
engine is compared with the reference engine (which computes the points in Python) on
Hypothesis worlds with ties, nulls, out-of-order rows and time zones, and on hand-computed
cases.
"""

from __future__ import annotations

import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from valuechain.data.engines.base import get_engine
from valuechain.data.pit import scheduled_members
from valuechain.data.plan import LabelRule, SchedulePlan, WindowPlan
from valuechain.errors import DataError
from valuechain.testing import HOUR, _moment, _ts, _World, compare

ORIGIN = 1_743_289_200 - 10 * 3600  # the night Europe/Paris springs forward


def _population(world: _World, rows: list[tuple[Any, int | None, int | None, int | None]]
                ) -> None:
    """Rows (key, seen hour, active_from hour, active_until hour) of source `pop`."""
    def hours(i: int) -> list[int | None]:
        return [None if r[i] is None else world.origin + r[i] * 3600 for r in rows]

    world.write("pop", pa.table({
        "id": pa.array(range(len(rows)), pa.int64()),
        "k": pa.array([r[0] for r in rows], pa.int64()),
        "ts": _ts(hours(1), world.zone),
        "start": _ts(hours(2), world.zone),
        "end": _ts(hours(3), world.zone),
    }), keys=("id",), event_time="ts")
    world.write("outcomes", pa.table({
        "oid": pa.array([1], pa.int64()), "k": pa.array([1], pa.int64()),
        "ts": _ts([world.origin + 7 * 3600], world.zone)}),
        keys=("oid",), event_time="ts", role="outcome")


def _plan(world: _World, *, every: int = 1, start: int = 0, end: int | None = 12,
          within: int | None = None, active_from: str | None = "start",
          active_until: str | None = "end", as_of: int = 60) -> Any:
    points = SchedulePlan(
        population="pop", key="k", start=_moment(world.origin + start * 3600, world.zone),
        every_us=every * HOUR,
        end=None if end is None else _moment(world.origin + end * 3600, world.zone),
        active_within_us=None if within is None else within * HOUR,
        active_from=active_from, active_until=active_until)
    return world.plan(
        points, windows=[WindowPlan(name="w", source="pop", key="k", agg="count",
                                    window_us=5 * HOUR)],
        label=LabelRule(name="label", kind="binary", horizon_us=3 * HOUR, source="outcomes",
                        keys=(("k", "k"),)),
        as_of=_moment(world.origin + as_of * 3600, world.zone))


def _points(engine: str, plan: Any, world: _World) -> list[tuple[int, int]]:
    """(key, hour) of every decision point, mature or not, in frame order."""
    out = get_engine({"type": engine}).execute(plan)
    keys = out.frame.column("k").to_pylist()
    times = out.frame.column("__t").to_pylist()
    return sorted((k, (t // 1_000_000 - world.origin) // 3600) for k, t in
                  zip(keys, times, strict=True))


@pytest.fixture
def folder() -> Any:
    path = Path(tempfile.mkdtemp(prefix="vc-points-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize("zone", [None, "Europe/Paris"])
def test_hand_computed_intervals_ties_and_nulls(folder: Path, zone: str | None) -> None:
    world = _World(folder=folder, zone=zone, origin=ORIGIN)
    _population(world, [
        (1, 2, 2, 5),        # active from 2 (included) until 5 (excluded)
        (2, 0, 3, None),     # open: active from 3 on
        (3, 1, 1, 1),        # empty interval: never active
        (1, 9, 8, 10),       # second subscription of 1, known at 9 though it starts at 8
        (4, 4, None, 6),     # null active_from: never counts
        (None, 0, 0, None),  # null key: never counts
        (5, 6, 2, 7),        # out of order: known at 6 (availability), active 2..7 -> only 6
    ])
    plan = _plan(world, end=11)
    want = [(1, 2), (1, 3), (1, 4), (1, 9), (2, 3), (2, 4), (2, 5), (2, 6), (2, 7),
            (2, 8), (2, 9), (2, 10), (2, 11), (5, 6)]
    assert _points("reference", plan, world) == want
    assert _points("duckdb", plan, world) == want
    compare(plan, get_engine("duckdb").execute(plan), get_engine("reference").execute(plan))


def test_active_within_and_intervals_both_hold(folder: Path) -> None:
    world = _World(folder=folder, zone=None, origin=ORIGIN)
    _population(world, [(1, 0, 0, None), (1, 6, 6, 7), (2, 0, 0, 3)])
    # within 2h: a row seen in (t - 2, t]; active: some known row active at t
    plan = _plan(world, end=9, within=2)
    want = [(1, 0), (1, 1), (1, 6), (1, 7), (2, 0), (2, 1)]
    assert _points("reference", plan, world) == want
    assert _points("duckdb", plan, world) == want


def test_active_until_alone_starts_at_the_availability(folder: Path) -> None:
    world = _World(folder=folder, zone=None, origin=ORIGIN)
    _population(world, [(1, 2, None, 4), (2, 3, None, None)])
    plan = _plan(world, end=5, active_from=None)
    want = [(1, 2), (1, 3), (2, 3), (2, 4), (2, 5)]
    assert _points("reference", plan, world) == want
    assert _points("duckdb", plan, world) == want


def test_a_later_cancel_is_never_seen(folder: Path) -> None:
    """No leak: the points up to T do not depend on ends later than T."""
    world = _World(folder=folder, zone=None, origin=ORIGIN)
    rows = [(1, 0, 0, 30), (2, 1, 1, 12), (3, 2, 2, None)]
    _population(world, rows)
    before = [p for p in _points("duckdb", _plan(world, end=20), world) if p[1] <= 11]
    world2 = _World(folder=folder / "b", zone=None, origin=ORIGIN)
    (folder / "b").mkdir()
    _population(world2, [(k, s, f, None) for k, s, f, _ in rows])
    after = [p for p in _points("duckdb", _plan(world2, end=20), world2) if p[1] <= 11]
    assert before == after


def test_mixed_awareness_of_an_interval_column_is_refused(folder: Path) -> None:
    world = _World(folder=folder, zone="UTC", origin=ORIGIN)
    _population(world, [(1, 0, 0, None)])
    table = pa.table({"id": pa.array([0], pa.int64()), "k": pa.array([1], pa.int64()),
                      "ts": _ts([ORIGIN], "UTC"), "start": _ts([ORIGIN], None),
                      "end": _ts([None], None)})
    world.write("pop", table, keys=("id",), event_time="ts")
    with pytest.raises(DataError, match=r"active_from.*naive"):
        get_engine("duckdb").execute(_plan(world))


def test_scheduled_members_definition() -> None:
    rows = [("a", 0, 0, 10), ("b", 5, 5, None), ("c", None, 0, None)]
    assert scheduled_members([0, 10, 20], rows, intervals=True) == [
        ("a", 0), ("b", 10), ("b", 20)]
    assert scheduled_members([0, 10, 20], rows) == [
        ("a", 0), ("a", 10), ("b", 10), ("a", 20), ("b", 20)]
    assert scheduled_members([10, 0], rows, active_within_us=6, intervals=True) == [
        ("a", 0), ("b", 10)]


hours = st.one_of(st.none(), st.integers(0, 14))


@settings(max_examples=20, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_duckdb_matches_the_reference_on_random_intervals(data: Any) -> None:
    folder = Path(tempfile.mkdtemp(prefix="vc-points-"))
    try:
        zone = data.draw(st.sampled_from([None, "UTC", "Europe/Paris"]))
        world = _World(folder=folder, zone=zone, origin=ORIGIN)
        rows = data.draw(st.lists(st.tuples(
            st.one_of(st.none(), st.integers(0, 3)), st.one_of(st.none(), st.integers(0, 12)),
            hours, hours), max_size=14))
        _population(world, rows)
        plan = _plan(world, every=data.draw(st.sampled_from([1, 2, 5])),
                     start=data.draw(st.integers(-2, 6)),
                     end=data.draw(st.sampled_from([None, 10, 15])),
                     within=data.draw(st.sampled_from([None, 1, 3])),
                     active_from=data.draw(st.sampled_from(["start", None])),
                     active_until=data.draw(st.sampled_from(["end", "end", None])))
        want = get_engine("reference").execute(plan)
        got = get_engine("duckdb").execute(plan)
        compare(plan, got, want, f"rows {rows}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_spec_fields_load(tmp_path: Path) -> None:
    from valuechain.spec.models import Schedule
    sched = Schedule.model_validate({"every": "7d", "start": datetime(2024, 1, 1),
                                     "population": "subs", "key": "c",
                                     "active_from": "started_at",
                                     "active_until": "cancelled_at"})
    assert (sched.active_from, sched.active_until) == ("started_at", "cancelled_at")
