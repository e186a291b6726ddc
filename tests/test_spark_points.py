"""The Spark engine on what POINTS added: recency aggregates (since_first, since_last, last)
and the ``absent`` label, hand-computed cases and properties against the reference."""

from __future__ import annotations

import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from valuechain.data.engines import get_engine
from valuechain.data.plan import EventPointsPlan, LabelRule
from valuechain.testing import HOUR, _as_of, _events, _values, _World, _world, compare

from . import test_points_aggregates as recency_cases
from . import test_points_label as absent_cases

SPARK = {"type": "spark", "master": "local[2]", "shuffle_partitions": 2}
CASES = recency_cases.test_hand_computed.pytestmark[0].args[1]


def test_recency_hand_computed_in_one_plan(world: _World) -> None:
    """Every hand-computed recency case of tests/test_points_aggregates.py, in one plan."""
    recency_cases._tx(world, recency_cases.ROWS)
    windows = [w for w, _ in CASES]
    plan = world.plan(EventPointsPlan(source="tx", keys=("id",)), windows=windows,
                      label=LabelRule(name="label", kind="binary", column="y",
                                      horizon_us=HOUR),
                      as_of=datetime.fromtimestamp(world.origin + 100 * 3600))
    for i, (_, expected) in enumerate(CASES):
        got = _values(lambda: get_engine(SPARK), plan, f"w{i}")
        assert got == expected, (i, CASES[i][0])


@settings(max_examples=3, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_recency_matches_the_reference(data: Any) -> None:
    folder = Path(tempfile.mkdtemp(prefix="vc-spark-recency-"))
    try:
        world = _world(data, folder)
        world.write("tx", _events(data, world, 1, 20), keys=("id",), event_time="ts")
        late = data.draw(st.booleans(), label="other has available_at")
        world.write("other", _events(data, world, 0, 20, name="other", extra_time=late,
                                     null_times=True),
                    keys=("id",), event_time="ts", available_at="seen" if late else None)
        windows = ([recency_cases._recency_window(data, "tx", own=True) for _ in range(2)]
                   + [recency_cases._recency_window(data, "other", own=False)
                      for _ in range(2)])
        plan = world.plan(EventPointsPlan(source="tx", keys=("id",)), windows=windows,
                          label=LabelRule(name="label", kind="binary", column="y",
                                          horizon_us=data.draw(st.integers(1, 15)) * HOUR),
                          as_of=_as_of(data, world))
        compare(plan, get_engine(SPARK).execute(plan), get_engine("reference").execute(plan),
                f"plan: {plan}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_absent_label_hand_computed(world: _World, monkeypatch: pytest.MonkeyPatch) -> None:
    """tests/test_points_label.py's hand-computed absence and maturity, on Spark."""
    real = absent_cases.get_engine
    monkeypatch.setattr(absent_cases, "get_engine",
                        lambda name: real(SPARK) if name == "duckdb" else real(name))
    absent_cases.test_hand_computed_absence_and_maturity(world)


@pytest.fixture
def world() -> Any:
    folder = Path(tempfile.mkdtemp(prefix="vc-spark-points-"))
    yield _World(folder=folder, zone=None, origin=recency_cases.ORIGINS[2])
    shutil.rmtree(folder, ignore_errors=True)
