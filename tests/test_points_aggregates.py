"""Recency aggregates: `since_first`, `since_last` (float days to t) and `last` (the value of
the latest member). Hand-computed cases, the DuckDB engine against the reference on
Hypothesis worlds (ties, lags, filters, include_current, late availability, nulls, zones),
and the online path against the offline build (parity)."""

from __future__ import annotations

import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.online_world import make_world
from valuechain.data.engines.base import get_engine
from valuechain.data.plan import EventPointsPlan, LabelRule, WindowPlan
from valuechain.errors import DataError
from valuechain.expressions import parse_expression
from valuechain.serve.parity import parity
from valuechain.spec import load_spec
from valuechain.spec.models import AggregateFeature
from valuechain.testing import (
    HOUR,
    ORIGINS,
    WHERES,
    _as_of,
    _events,
    _ts,
    _values,
    _World,
    _world,
    compare,
)

DAY = 24 * HOUR
RECENCY = ("since_first", "since_last", "last")


def _tx(world: _World, rows: list[tuple[int, int, float | None, str | None]]) -> None:
    """Rows (id, hour, v, s) of the decision source `tx`, all with key k = 1."""
    world.write("tx", pa.table({
        "id": pa.array([r[0] for r in rows], pa.int64()),
        "ts": _ts([world.origin + r[1] * 3600 for r in rows], world.zone),
        "k": pa.array([1] * len(rows), pa.int64()),
        "v": pa.array([r[2] for r in rows], pa.float64()),
        "s": pa.array([r[3] for r in rows], pa.string()),
        "y": pa.array([0] * len(rows), pa.int64())}), keys=("id",), event_time="ts")


def _window(agg: str, *, of: str | None = None, hours: int = 48, lag: int = 0,
            include_current: bool = True, where: str | None = None,
            fill: float | None = None) -> WindowPlan:
    return WindowPlan(name="w", source="tx", key="k", agg=agg,  # type: ignore[arg-type]
                      window_us=hours * HOUR, lag_us=lag * HOUR, of=of,
                      include_current=include_current, fill=fill,
                      where=None if where is None else parse_expression(where, where="where"))


@pytest.fixture
def world() -> Any:
    folder = Path(tempfile.mkdtemp(prefix="vc-recency-"))
    yield _World(folder=folder, zone=None, origin=ORIGINS[2])
    shutil.rmtree(folder, ignore_errors=True)


# ids 1..5: hours 0, 12, 12 (tie: id 3 after id 2), 30, 30 (tie); v and s with nulls
ROWS = [(1, 0, 5.0, "a"), (2, 12, 7.0, None), (3, 12, None, "c"), (4, 30, 1.0, "d"),
        (5, 30, None, None)]


@pytest.mark.parametrize(("window", "expected"), [
    # the decision itself is a member: since_last 0; since_first from hour 0
    (_window("since_last"), [0.0] * 5),
    (_window("since_first"), [0.0, 0.5, 0.5, 1.25, 1.25]),
    # without the decision itself: the tied event before it counts (id 3 sees id 2)
    (_window("since_last", include_current=False), [None, 0.5, 0.0, 0.75, 0.0]),
    # with `of`: only members whose value is not null
    (_window("since_last", of="v", include_current=False), [None, 0.5, 0.0, 0.75, 0.0]),
    (_window("since_last", of="v"), [0.0, 0.0, 0.0, 0.0, 0.0]),
    (_window("last", of="v"), [5.0, 7.0, 7.0, 1.0, 1.0]),
    (_window("last", of="v", include_current=False), [None, 5.0, 7.0, 7.0, 1.0]),
    (_window("last", of="s"), ["a", "a", "c", "d", "d"]),
    # a 24 h window: hour 0 has left it at hour 30; a lag of 12 h: (t - 36h, t - 12h]
    (_window("since_first", hours=24), [0.0, 0.5, 0.5, 0.75, 0.75]),
    (_window("since_last", lag=12, fill=-1.0), [-1.0, 0.5, 0.5, 0.75, 0.75]),
    (_window("last", of="v", lag=12, fill=-1.0), [-1.0, 5.0, 5.0, 7.0, 7.0]),
    # a filter: only rows with v > 2
    (_window("since_last", where="v > 2", include_current=False),
     [None, 0.5, 0.0, 0.75, 0.75]),
])
def test_hand_computed(world: _World, window: WindowPlan, expected: list[Any]) -> None:
    _tx(world, ROWS)
    plan = world.plan(EventPointsPlan(source="tx", keys=("id",)), windows=[window],
                      label=LabelRule(name="label", kind="binary", column="y",
                                      horizon_us=HOUR),
                      as_of=datetime.fromtimestamp(world.origin + 100 * 3600))
    for engine in ("reference", "duckdb"):
        got = _values(lambda e=engine: get_engine(e), plan, "w0")  # type: ignore[misc]
        assert got == expected, engine


def test_fill_on_a_text_last_is_refused(world: _World) -> None:
    _tx(world, ROWS)
    plan = world.plan(EventPointsPlan(source="tx", keys=("id",)),
                      windows=[_window("last", of="s", fill=0.0)],
                      label=LabelRule(name="label", kind="binary", column="y", horizon_us=HOUR))
    with pytest.raises(DataError, match="remove `fill`"):
        get_engine("duckdb").execute(plan)


def test_spec_needs_of_for_last_only() -> None:
    base = {"name": "x", "key": "k", "window": "7d"}
    assert AggregateFeature.model_validate({**base, "aggregate": "since_last"}).of is None
    with pytest.raises(ValueError, match="needs `of`"):
        AggregateFeature.model_validate({**base, "aggregate": "last"})


def _recency_window(data: Any, source: str, *, own: bool) -> WindowPlan:
    agg = data.draw(st.sampled_from(RECENCY))
    of = (data.draw(st.sampled_from(["v", "s", "k"])) if agg == "last"
          else data.draw(st.sampled_from([None, None, "v"])))
    where = data.draw(st.sampled_from(WHERES))
    return WindowPlan(
        name="w", source=source, key="k", agg=agg, of=of,
        window_us=data.draw(st.integers(1, 20)) * HOUR,
        lag_us=data.draw(st.sampled_from([0, 0, 1, 3, 7])) * HOUR,
        include_current=data.draw(st.booleans()) if own else True,
        where=None if where is None else parse_expression(where, where="where"),
        fill=None if of == "s" else data.draw(st.sampled_from([None, -1.0])))


@settings(max_examples=25, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_duckdb_matches_the_reference(data: Any) -> None:
    folder = Path(tempfile.mkdtemp(prefix="vc-recency-"))
    try:
        world = _world(data, folder)
        world.write("tx", _events(data, world, 1, 20), keys=("id",), event_time="ts")
        late = data.draw(st.booleans(), label="other has available_at")
        world.write("other", _events(data, world, 0, 20, name="other", extra_time=late,
                                     null_times=True),
                    keys=("id",), event_time="ts", available_at="seen" if late else None)
        windows = ([_recency_window(data, "tx", own=True)
                    for _ in range(data.draw(st.integers(0, 2)))]
                   + [_recency_window(data, "other", own=False)
                      for _ in range(data.draw(st.integers(1, 2)))])
        plan = world.plan(EventPointsPlan(source="tx", keys=("id",)), windows=windows,
                          label=LabelRule(name="label", kind="binary", column="y",
                                          horizon_us=data.draw(st.integers(1, 15)) * HOUR),
                          as_of=_as_of(data, world))
        compare(plan, get_engine({"type": "duckdb", "threads": 1}).execute(plan),
                get_engine("reference").execute(plan), f"plan: {plan}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_online_features_equal_the_offline_build(tmp_path: Path) -> None:
    """The online path computes the recency aggregates with the same definitions."""
    folder = make_world(tmp_path, payments=250)
    spec = yaml.safe_load((folder / "valuechain.yaml").read_text())
    spec["features"] += [
        {"name": "c_since_first_3d", "aggregate": "since_first", "key": "customer_id",
         "window": "3d"},
        {"name": "c_since_last_3d_excl", "aggregate": "since_last", "key": "customer_id",
         "window": "3d", "include_current": False, "fill": -1},
        {"name": "c_last_amount_2d", "aggregate": "last", "of": "amount",
         "key": "customer_id", "window": "2d", "include_current": False},
        {"name": "c_last_channel_2d_lag1d", "aggregate": "last", "of": "channel",
         "key": "customer_id", "window": "2d", "lag": "1d"},
        {"name": "c_since_last_web_5d", "aggregate": "since_last", "key": "customer_id",
         "window": "5d", "where": "channel = 'web'", "include_current": False},
        {"name": "c_since_login_2d", "aggregate": "since_last", "key": "customer_id",
         "window": "2d", "source": "logins"},
        {"name": "c_last_login_ok_2d", "aggregate": "last", "of": "success",
         "key": "customer_id", "window": "2d", "lag": "1d", "source": "logins"}]
    (folder / "valuechain.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    result = parity(load_spec(folder), since=datetime(2025, 3, 6))
    assert [(f.name, f.differing, f.examples[:2]) for f in result.features
            if f.differing] == []
    assert result.exact and result.decisions > 100
