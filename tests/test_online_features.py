"""Online features: the definitions of data/pit.py, one event at a time."""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from tests.online_world import make_world
from tests.redis_server import redis_url
from valuechain.data.plan import make_plan
from valuechain.errors import DataError
from valuechain.expressions import parse_expression
from valuechain.serve.features import OnlineFeatures
from valuechain.serve.parity import parity
from valuechain.serve.redis_state import RedisState
from valuechain.serve.rowexpr import DuckDBRow, compile_expression
from valuechain.serve.state import MemoryState
from valuechain.spec import load_spec

__all__ = ["redis_url"]  # the fixture, imported for the tests below


# -- the worked example of docs/point-in-time.md, applied through the public API -------------
def _example(folder: Path) -> Path:
    data = folder / "data"
    data.mkdir(parents=True)
    ts = [datetime(2025, 3, 2, 9), datetime(2025, 3, 2, 20), datetime(2025, 3, 3, 10),
          datetime(2025, 3, 9, 15), datetime(2025, 3, 10, 12), datetime(2025, 3, 10, 12)]
    pq.write_table(pa.table({
        "transaction_id": [1, 2, 3, 4, 5, 6], "ts": ts,
        "customer_id": ["C1", "C2", "C1", "C1", "C1", "C1"], "terminal_id": ["T1"] * 6,
        "amount": [40.0, 25.0, 900.0, 15.0, 60.0, 80.0]}), data / "transactions.parquet")
    pq.write_table(pa.table({
        "chargeback_id": [101, 102], "transaction_id": [3, 4],
        "reported_at": [datetime(2025, 3, 8, 10), datetime(2025, 3, 12, 9)]}),
        data / "chargebacks.parquet")
    pq.write_table(pa.table({
        "customer_id": ["C1", "C1", "C2"], "risk_tier": ["low", "high", "low"],
        "valid_from": [datetime(2025, 1, 1), datetime(2025, 3, 8, 10), datetime(2025, 1, 1)]}),
        data / "customer_profiles.parquet")
    spec = {
        "version": 1, "project": {"name": "pit-example"},
        "decision": {"statement": "s", "owner": "o", "moment": "m",
                     "actions": ["approve", "review"]},
        "decision_points": {"source": "transactions"},
        "sources": {
            "transactions": {"path": "data/transactions.parquet", "keys": ["transaction_id"],
                             "event_time": "ts"},
            "chargebacks": {"path": "data/chargebacks.parquet", "role": "outcome",
                            "keys": ["chargeback_id"], "event_time": "reported_at"},
            "customer_profiles": {"path": "data/customer_profiles.parquet",
                                  "role": "dimension", "keys": ["customer_id"],
                                  "valid_from": "valid_from"}},
        "label": {"name": "is_fraud", "source": "chargebacks",
                  "keys": {"transaction_id": "transaction_id"}, "horizon": "7d"},
        "features": [
            {"name": "cust_count_1d", "aggregate": "count", "key": "customer_id",
             "window": "1d"},
            {"name": "cust_count_1d_excl", "aggregate": "count", "key": "customer_id",
             "window": "1d", "include_current": False},
            {"name": "term_count_1d_lag7d", "aggregate": "count", "key": "terminal_id",
             "window": "1d", "lag": "7d"},
            {"name": "term_fraud_rate_10d", "aggregate": "rate", "of": "label",
             "key": "terminal_id", "window": "10d"},
            {"name": "risk_tier", "lookup": {"source": "customer_profiles",
                                             "key": "customer_id", "column": "risk_tier"}}]}
    (folder / "valuechain.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return folder


def _event(tx: int, ts: str, customer: str, amount: float) -> dict[str, Any]:
    return {"transaction_id": tx, "ts": ts, "customer_id": customer, "terminal_id": "T1",
            "amount": amount}


def test_worked_example_through_the_api(tmp_path: Path) -> None:
    """The table of docs/point-in-time.md, with outcomes and profile updates sent as they
    happen (no warm-up): what a live service computes."""
    online = OnlineFeatures(make_plan(load_spec(_example(tmp_path))), MemoryState())
    online.apply_dimension("customer_profiles", {"customer_id": "C1", "risk_tier": "low",
                                                 "valid_from": "2025-01-01T00:00:00"})
    online.apply_dimension("customer_profiles", {"customer_id": "C2", "risk_tier": "low",
                                                 "valid_from": "2025-01-01T00:00:00"})
    stream = [
        ("event", _event(1, "2025-03-02T09:00:00", "C1", 40)),
        ("event", _event(2, "2025-03-02T20:00:00", "C2", 25)),
        ("event", _event(3, "2025-03-03T10:00:00", "C1", 900)),
        ("outcome", {"chargeback_id": 101, "transaction_id": 3,
                     "reported_at": "2025-03-08T10:00:00"}),
        ("dimension", {"customer_id": "C1", "risk_tier": "high",
                       "valid_from": "2025-03-08T10:00:00"}),
        ("event", _event(4, "2025-03-09T15:00:00", "C1", 15)),
        ("event", _event(5, "2025-03-10T12:00:00", "C1", 60)),
        ("event", _event(6, "2025-03-10T12:00:00", "C1", 80)),
        ("outcome", {"chargeback_id": 102, "transaction_id": 4,
                     "reported_at": "2025-03-12T09:00:00"}),
    ]
    got: dict[int, dict[str, Any]] = {}
    for kind, row in stream:
        if kind == "event":
            got[row["transaction_id"]] = online.compute(row)
            online.apply_event(row)
        elif kind == "outcome":
            online.apply_outcome("chargebacks", row)
        else:
            online.apply_dimension("customer_profiles", row)
    table = {  # tx: cust_count_1d, excl, term lag, term fraud rate, risk tier (the doc's table)
        1: (1, 0, 0, 0.0, "low"), 2: (1, 0, 0, 0.0, "low"), 3: (1, 0, 0, 0.0, "low"),
        4: (1, 0, 1, 0.25, "high"), 5: (2, 1, 2, 0.2, "high"), 6: (3, 2, 2, 1 / 6, "high")}
    for tx, expected in table.items():
        assert tuple(got[tx].values()) == pytest.approx(expected), tx
    # after the late chargeback of payment 4 is reported, a new payment sees it: members
    # 2-6 and itself (payment 1 left the window), positives known 3 and 4
    later = online.compute(_event(7, "2025-03-12T10:00:00", "C1", 5))
    assert later["term_fraud_rate_10d"] == pytest.approx(2 / 6)


def test_outcome_and_dimension_rows_are_checked(tmp_path: Path) -> None:
    online = OnlineFeatures(make_plan(load_spec(_example(tmp_path))), MemoryState())
    with pytest.raises(DataError, match="missing field 'valid_from'"):
        online.apply_dimension("customer_profiles", {"customer_id": "C1", "risk_tier": "x"})
    with pytest.raises(DataError, match="field 'customer_id' must be a string"):
        online.apply_dimension("customer_profiles", {"customer_id": 1, "risk_tier": "x",
                                                     "valid_from": None})
    with pytest.raises(DataError, match="missing field 'transaction_id'"):
        online.apply_outcome("chargebacks", {"chargeback_id": 1,
                                             "reported_at": "2025-03-02T09:00:00"})
    with pytest.raises(DataError, match="not in the spec"):
        online.apply_outcome("refunds", {})
    with pytest.raises(DataError, match="not a dimension"):
        online.apply_dimension("chargebacks", {})
    with pytest.raises(DataError, match="send them to `apply_event`"):
        online.apply_outcome("transactions", {})


def test_compute_is_pure_and_apply_idempotent(tmp_path: Path) -> None:
    online = OnlineFeatures(make_plan(load_spec(_example(tmp_path))), MemoryState())
    first = _event(1, "2025-03-02T09:00:00", "C1", 40)
    second = _event(2, "2025-03-02T10:00:00", "C1", 41)
    assert online.compute(second)["cust_count_1d"] == 1
    assert online.compute(second)["cust_count_1d"] == 1  # nothing was written
    online.apply_event(first)
    online.apply_event(first)  # a retry
    assert online.compute(second)["cust_count_1d"] == 2
    online.apply_event(second)
    # an applied event is not counted twice by its own compute
    assert online.compute(second)["cust_count_1d"] == 2


# -- validation of the decision event ---------------------------------------------------------
@pytest.mark.parametrize(("change", "message"), [
    ({"terminal_id": 12}, "field 'terminal_id' must be a string"),
    ({"transaction_id": 1.5}, "field 'transaction_id' must be an integer"),
    ({"transaction_id": None}, "field 'transaction_id' is null"),
    ({"ts": "yesterday"}, "field 'ts' is 'yesterday', not an ISO 8601 time"),
    ({"ts": "2025-03-02T09:00:00+02:00"}, "with a UTC offset, but source 'transactions'"),
    ({"customer_id": 7}, "field 'customer_id' must be a string"),
])
def test_check_event_names_the_field(tmp_path: Path, change: dict[str, Any],
                                     message: str) -> None:
    online = OnlineFeatures(make_plan(load_spec(_example(tmp_path))), MemoryState())
    with pytest.raises(DataError, match=message):
        online.check_event({**_event(1, "2025-03-02T09:00:00", "C1", 40), **change})


def test_check_event_missing_field_and_normalisation(tmp_path: Path) -> None:
    online = OnlineFeatures(make_plan(load_spec(_example(tmp_path))), MemoryState())
    event = _event(1, "2025-03-02T09:00:00Z", "C1", 40)
    normal = online.check_event(event)
    assert normal["ts"] == datetime(2025, 3, 2, 9) and normal["amount"] == 40.0
    del event["customer_id"]
    with pytest.raises(DataError, match="missing field 'customer_id'"):
        online.check_event(event)
    assert "amount" not in online.required  # no feature reads it


# -- parity on a small world with every rule ----------------------------------------------------
def _differences(result: Any) -> list[tuple[str, int, Any]]:
    return [(f.name, f.differing, f.examples[:2]) for f in result.features if f.differing]


@pytest.mark.parametrize(("seed", "since", "text_keys"), [
    (11, datetime(2025, 2, 1), False), (5, datetime(2025, 3, 9, 7), False),
    (7, datetime(2025, 3, 4), True)])
def test_parity_exact_on_handcrafted_world(tmp_path: Path, seed: int, since: datetime,
                                           text_keys: bool) -> None:
    """Ties (ordered by integer or text keys), late outcomes, backdated dimension updates,
    nulls, lags, filters, another source, outcome-derived windows: replayed online (warmed
    to `since` first) equals the offline build on every feature of every decision."""
    result = parity(load_spec(make_world(tmp_path, seed=seed, text_keys=text_keys)),
                    since=since)
    assert result.decisions > 150
    assert result.only_offline == result.only_online == 0
    assert _differences(result) == []
    assert result.exact
    if since > datetime(2025, 3, 1):
        assert result.warm.rows["payments"] > 0 and result.warm.rows["chargebacks"] > 0


def test_parity_exact_with_time_zone_aware_data(tmp_path: Path) -> None:
    """Every time column as a UTC instant (TIMESTAMP WITH TIME ZONE): events carry offsets,
    hour() is computed as the build computes it."""
    import pyarrow.compute as pc

    folder = make_world(tmp_path, seed=2, payments=250)
    for file in (folder / "data").glob("*.parquet"):
        table = pq.read_table(file)
        for i, column in enumerate(table.schema):
            if pa.types.is_timestamp(column.type):
                table = table.set_column(i, column.name, pc.assume_timezone(
                    table.column(i), "UTC"))
        pq.write_table(table, file)
    plan = make_plan(load_spec(folder))
    online = OnlineFeatures(plan, MemoryState())
    assert online.aware
    with pytest.raises(DataError, match="without a UTC offset"):
        online.check_event({"payment_id": 1, "ts": "2025-03-02T09:00:00", "customer_id": 1,
                            "terminal_id": 10, "amount": 1.0, "channel": "web",
                            "is_web": 1})
    normal = online.check_event({"payment_id": 1, "ts": "2025-03-02T10:00:00+01:00",
                                 "customer_id": 1, "terminal_id": 10, "amount": 1.0,
                                 "channel": "web", "is_web": 1})
    assert online.event_time_us(normal) == online.event_time_us(
        {"ts": datetime.fromisoformat("2025-03-02T09:00:00+00:00")})
    result = parity(load_spec(folder), since=datetime.fromisoformat(
        "2025-03-08T00:00:00+00:00"))
    assert _differences(result) == [] and result.exact and result.decisions > 100


@pytest.mark.parametrize("label", ["column", "amount"])
def test_parity_exact_with_other_labels(tmp_path: Path, label: str) -> None:
    folder = make_world(tmp_path, charged_twice=False, payments=250)
    spec = yaml.safe_load((folder / "valuechain.yaml").read_text())
    spec["label"] = ({"name": "flagged", "column": "flag", "horizon": "2d"} if label == "column"
                     else {"name": "loss", "kind": "amount", "column": "amount",
                           "source": "chargebacks", "keys": {"payment_id": "payment_id"},
                           "horizon": "10d"})
    (folder / "valuechain.yaml").write_text(yaml.safe_dump(spec))
    result = parity(load_spec(folder), since=datetime(2025, 3, 6))
    assert _differences(result) == [] and result.exact and result.decisions > 100


def test_amount_label_counts_outcomes_as_they_are_reported(tmp_path: Path) -> None:
    """The one documented difference: offline, an amount label is known when its *last*
    outcome is reported; online, a decision with two chargebacks reported at different times
    counts the first as soon as it is reported (the build cannot be reproduced causally)."""
    folder = make_world(tmp_path, charged_twice=True, payments=250)
    spec = yaml.safe_load((folder / "valuechain.yaml").read_text())
    spec["label"] = {"name": "loss", "kind": "amount", "column": "amount",
                     "source": "chargebacks", "keys": {"payment_id": "payment_id"},
                     "horizon": "10d"}
    (folder / "valuechain.yaml").write_text(yaml.safe_dump(spec))
    result = parity(load_spec(folder), since=datetime(2025, 2, 1))
    differing = {f.name for f in result.features if f.differing}
    assert differing and differing <= {"t_fraud_rate_8d", "t_fraud_count_8d",
                                       "c_fraud_sum_6d_lag1d", "c_fraud_mean_6d"}
    assert all(f.differing <= 3 for f in result.features)


# -- backends ----------------------------------------------------------------------------------
def test_memory_and_redis_give_identical_features(tmp_path: Path, redis_url: str) -> None:
    plan = make_plan(load_spec(make_world(tmp_path, seed=3)))
    states = [MemoryState(tmp_path / "state.sqlite"), RedisState(redis_url, "identical")]
    onlines = [OnlineFeatures(plan, s) for s in states]
    until = datetime(2025, 3, 8)
    warmed = [o.warm(until) for o in onlines]
    assert warmed[0].rows == warmed[1].rows and warmed[0].entries == warmed[1].entries
    from valuechain.data.sources import datetime_to_us

    stream = list(onlines[0].history(datetime_to_us(until), datetime_to_us(
        datetime(2025, 3, 21))))
    assert sum(item.kind == "event" for item in stream) > 100
    for item in stream:
        if item.kind == "event":
            memory, redis = (o.compute(item.row) for o in onlines)
            assert memory == redis  # bit for bit, not approximately
        for o in onlines:
            o.apply(item)
    states[1].clear()


def test_state_persists_across_reopen(tmp_path: Path) -> None:
    plan = make_plan(load_spec(make_world(tmp_path / "w", seed=3)))
    path = tmp_path / "state.sqlite"
    online = OnlineFeatures(plan, MemoryState(path))
    online.warm(datetime(2025, 3, 12))
    event = {"payment_id": 999_999, "ts": "2025-03-12T01:00:00", "customer_id": 2,
             "terminal_id": 10, "amount": 12.5, "channel": "web", "is_web": 1}
    before = online.compute(event)
    online.apply_event(event)
    online.state.close()
    reopened = OnlineFeatures(plan, MemoryState(path))
    assert reopened.state.get_meta("warmed_until") is not None
    assert reopened.compute(event) == before
    assert reopened.compute({**event, "payment_id": 1_000_000})["c_count_1d"] == (
        before["c_count_1d"] + 1)


# -- row expressions: compiled = DuckDB ----------------------------------------------------------
@pytest.mark.parametrize("text", [
    "amount * 2 + 1", "amount / n", "CAST(amount > 100 AS INTEGER)", "ln(amount + 1)",
    "CAST(amount AS INTEGER)", "CASE WHEN channel = 'web' THEN 1 WHEN amount > 5 THEN 2 END",
    "coalesce(amount, n, 0)", "channel IN ('web', 'app')", "NOT (amount > 3 OR n = 0)",
    "amount IS NULL", "abs(n - amount)", "hour(ts)", "-amount", "sqrt(amount)",
    "isodow(ts) * 100 + dayofweek(ts) * 10 + minute(ts) + month(ts) + day(ts) + year(ts)",
    "amount > 2 AND channel <> 'pos'", "amount % 3", "upper(channel)",
])
def test_compiled_expressions_agree_with_duckdb(text: str) -> None:
    expr = parse_expression(text, where="test")
    types = {"amount": pa.float64(), "n": pa.int64(), "channel": pa.string(),
             "ts": pa.timestamp("us")}
    fast, slow = compile_expression(expr, types), DuckDBRow(expr, types)
    for amount in (None, 0.0, 2.5, -2.5, 150.0):
        for n in (None, 0, 3):
            for channel in (None, "web"):
                row = {"amount": amount, "n": n, "channel": channel,
                       "ts": datetime(2025, 1, 4 + (n or 0), 5, 30)}  # Sat, Sun, Tue
                try:
                    want = slow(row)
                except DataError:
                    continue  # DuckDB refuses it (e.g. x % 0); nothing to compare
                got = fast(row)
                if isinstance(want, float) and math.isnan(want):
                    assert isinstance(got, float) and math.isnan(got), (text, row)
                else:
                    assert (got == want and type(got) is type(want)) or (
                        isinstance(want, float) and got == pytest.approx(want)), (text, row,
                                                                                  got, want)
