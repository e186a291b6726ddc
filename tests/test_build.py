"""The build stage end to end: frame, manifest, maturity, caching, time zones, engines."""

from __future__ import annotations

import json
import math
import shutil
from datetime import datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from valuechain.cli import app
from valuechain.data.build import build_frame
from valuechain.data.sources import fingerprint
from valuechain.errors import DataError, SpecError
from valuechain.spec import load_spec

from .conftest import ROOT, SHARED_DATA


def test_build_json_output_and_frame_layout(fraud_project: Path) -> None:
    result = CliRunner().invoke(app, ["build", "--spec", str(fraud_project), "--json",
                                      "--force"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    rows = out["rows"]
    assert rows["total"] == 20_000
    assert rows["mature"] + rows["immature"] == rows["total"]
    assert 0 < rows["positive"] < rows["mature"]
    frame = pq.read_table(out["frame"])
    spec = load_spec(fraud_project).spec
    assert frame.num_rows == rows["mature"]
    # the decision id, ids (keys, then `keep` columns) and the time column
    assert frame.column_names[:5] == ["decision_id", "transaction_id", "customer_id",
                                      "card_id", "ts"]
    assert frame.schema.field("decision_id").type == pa.string()
    assert frame.column("decision_id").null_count == 0
    assert frame.column("decision_id").to_pylist() == [
        str(v) for v in frame.column("transaction_id").to_pylist()]
    assert out["fingerprint"] == fingerprint([Path(out["frame"])])
    for feature in spec.features:
        assert feature.name in frame.column_names
    assert spec.label.name in frame.column_names
    manifest = json.loads(Path(out["manifest"]).read_text())
    assert manifest["frame"]["fingerprint"] == out["fingerprint"]
    assert manifest["frame"]["id_column"] == "decision_id"
    assert manifest["frame"]["columns"][0] == "decision_id"
    assert manifest["engine"] == "duckdb" and manifest["engine_config"]["type"] == "duckdb"
    assert manifest["spec"]["hash"] == load_spec(fraud_project).hash
    assert manifest["sources"]["transactions"]["rows"] == 20_000
    assert len(manifest["sources"]["transactions"]["fingerprint"]) == 32
    assert [f["name"] for f in manifest["features"]] == [f.name for f in spec.features]


def test_immature_rows_are_exactly_those_within_the_horizon(fraud_project: Path) -> None:
    result = build_frame(load_spec(fraud_project))
    as_of = pd.Timestamp(result.manifest["as_of"])
    frame = pq.read_table(result.frame).to_pandas()
    assert (frame["ts"] + pd.Timedelta(days=60) <= as_of).all()
    all_ts = pd.read_parquet(fraud_project / "data" / "transactions.parquet")["ts"]
    assert result.rows.immature == int((all_ts + pd.Timedelta(days=60) > as_of).sum())


def test_rebuild_reuses_cache_and_as_of_override(fraud_project: Path) -> None:
    loaded = load_spec(fraud_project)
    first = build_frame(loaded)
    again = build_frame(loaded)
    assert again.cached and again.rows == first.rows
    assert again.fingerprint == first.fingerprint == fingerprint([first.frame])
    earlier = build_frame(loaded, as_of=datetime(2025, 6, 1))
    assert not earlier.cached
    assert earlier.rows.mature < first.rows.mature
    assert earlier.manifest["as_of"].startswith("2025-06-01")


def test_duckdb_and_reference_agree_on_the_demo_world(tmp_path: Path) -> None:
    from valuechain.demo.fraud import generate_fraud

    shutil.copy(ROOT / "examples" / "fraud" / "valuechain.yaml", tmp_path / "valuechain.yaml")
    generate_fraud(tmp_path / "data", rows=3_000, seed=11, days=120)
    loaded = load_spec(tmp_path)
    fast = pq.read_table(build_frame(loaded, engine="duckdb").frame).to_pandas()
    slow = pq.read_table(build_frame(loaded, engine="reference").frame).to_pandas()
    assert list(fast.columns) == list(slow.columns)
    assert len(fast) == len(slow) > 0
    for column in fast.columns:
        a, b = fast[column].tolist(), slow[column].tolist()
        for x, y in zip(a, b, strict=True):
            if isinstance(x, float) and isinstance(y, float):
                assert (math.isnan(x) and math.isnan(y)) or math.isclose(x, y, rel_tol=1e-9,
                                                                         abs_tol=1e-9), column
            else:
                assert x == y or (pd.isna(x) and pd.isna(y)), column


def _tz_project(tmp_path: Path, tz: str | None, times: list[pd.Timestamp]) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    ts = pa.array(times, pa.timestamp("us", tz=tz))
    pq.write_table(pa.table({"id": list(range(len(times))), "ts": ts,
                             "cust": [1] * len(times), "y": [0] * len(times)}),
                   tmp_path / "tx.parquet")
    spec = {
        "project": {"name": "tz"},
        "decision": {"statement": "s", "owner": "o", "moment": "m", "actions": ["a", "b"]},
        "decision_points": {"source": "tx"},
        "sources": {"tx": {"path": "tx.parquet", "keys": ["id"], "event_time": "ts"}},
        "label": {"column": "y", "horizon": "1h"},
        "features": [{"name": "n_24h", "aggregate": "count", "key": "cust", "window": "1d"}],
    }
    (tmp_path / "valuechain.yaml").write_text(yaml.safe_dump(spec))
    return tmp_path


def test_windows_are_exact_durations_across_a_dst_change(tmp_path: Path) -> None:
    # Europe/Paris springs forward on 2025-03-30. 01:00 on the 31st is 23h30 after 00:30 on
    # the 30th in real time (inside a 1-day window) but 24h30 on the wall clock (outside).
    local = [pd.Timestamp("2025-03-30 00:30", tz="Europe/Paris"),
             pd.Timestamp("2025-03-30 23:45", tz="Europe/Paris"),
             pd.Timestamp("2025-03-31 01:00", tz="Europe/Paris"),
             pd.Timestamp("2025-04-02 00:00", tz="Europe/Paris")]
    later = datetime.fromisoformat("2026-01-01T00:00:00+00:00")
    aware = build_frame(load_spec(_tz_project(tmp_path / "a", "Europe/Paris", local)),
                        as_of=later)
    n_aware = pq.read_table(aware.frame).column("n_24h").to_pylist()
    utc_naive = [t.tz_convert("UTC").tz_localize(None) for t in local]
    naive = build_frame(load_spec(_tz_project(tmp_path / "b", None, utc_naive)),
                        as_of=later.replace(tzinfo=None))
    n_naive = pq.read_table(naive.frame).column("n_24h").to_pylist()
    assert n_aware == n_naive
    assert n_aware == [1, 2, 3, 1]  # wall-clock windows would give [1, 2, 2, 1]


@pytest.mark.slow
def test_handbook_features_reproduced_to_1e9_on_every_row(tmp_path: Path) -> None:
    data = SHARED_DATA / "fraud_handbook" / "transactions.parquet"
    if not data.exists():
        pytest.skip(f"{data} is not present")
    from .handbook_oracle import handbook_features

    project = tmp_path / "handbook"
    project.mkdir()
    spec = yaml.safe_load((ROOT / "examples" / "fraud-handbook" / "valuechain.yaml").read_text())
    spec["sources"]["transactions"]["path"] = str(data)
    (project / "valuechain.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    result = build_frame(load_spec(project), as_of=datetime(2030, 1, 1))  # keep every row
    ours = pq.read_table(result.frame).to_pandas().set_index("TRANSACTION_ID").sort_index()
    expected = handbook_features(pd.read_parquet(data)).set_index("TRANSACTION_ID").sort_index()
    assert len(ours) == len(expected) == 1_754_155
    checked = [c for c in expected.columns if c in ours.columns]
    assert len(checked) == 15
    for column in checked:
        diff = (ours[column].astype(float) - expected[column].astype(float)).abs().max()
        assert diff <= 1e-9, (column, diff)


def test_scheduled_decision_points_every_active_customer_weekly(tmp_path: Path) -> None:
    day = 86_400_000_000
    base = 1_735_689_600_000_000  # 2025-01-01 00:00
    times = [base + d * day for d in (0, 1, 8, 9, 30)]
    pq.write_table(pa.table({
        "order_id": [1, 2, 3, 4, 5], "customer": [1, 2, 1, 1, 2],
        "ts": pa.array(times, pa.timestamp("us")), "amount": [10.0, 5.0, 20.0, 30.0, 7.0],
    }), tmp_path / "orders.parquet")
    pq.write_table(pa.table({
        "customer": [2], "cancelled_at": pa.array([base + 12 * day], pa.timestamp("us")),
    }), tmp_path / "cancels.parquet")
    spec = {
        "project": {"name": "churn"},
        "decision": {"statement": "call", "owner": "cs", "moment": "monday",
                     "actions": ["call", "skip"]},
        "decision_points": {"schedule": {"every": "7d", "start": "2025-01-06T00:00:00",
                                         "end": "2025-01-20T00:00:00", "population": "orders",
                                         "key": "customer", "active_within": "14d"}},
        "sources": {
            "orders": {"path": "orders.parquet", "keys": ["order_id"], "event_time": "ts"},
            "cancels": {"path": "cancels.parquet", "keys": ["customer"],
                        "event_time": "cancelled_at", "role": "outcome"},
        },
        "label": {"source": "cancels", "keys": {"customer": "customer"}, "horizon": "7d"},
        "features": [{"name": "spend_7d", "aggregate": "sum", "of": "amount", "key": "customer",
                      "window": "7d", "source": "orders"}],
    }
    (tmp_path / "valuechain.yaml").write_text(yaml.safe_dump(spec))
    result = build_frame(load_spec(tmp_path), as_of=datetime(2025, 3, 1))
    frame = pq.read_table(result.frame).to_pandas()
    rows = {(r.customer, r.decision_time.day): (r.spend_7d, r.label)
            for r in frame.itertuples()}
    # Jan 6: both active; Jan 13: both (customer 2's last order on Jan 2 is within 14 days);
    # Jan 20: customer 1 only (customer 2 inactive since Jan 2).
    assert rows == {(1, 6): (10.0, 0), (2, 6): (5.0, 1), (1, 13): (50.0, 0),
                    (2, 13): (0.0, 0), (1, 20): (0.0, 0)}


def _orders_project(tmp_path: Path, *, schedule: bool, tz: str | None = None,
                    extra: dict | None = None) -> Path:
    """Five orders of two customers; weekly scheduled points or one point per order."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    day = 86_400_000_000
    base = 1_735_689_600_000_000  # 2025-01-01 00:00
    times = [base + d * day for d in (0, 1, 8, 9, 30)]
    pq.write_table(pa.table({
        "order_id": [1, 2, 3, 4, 5], "customer": [1, 2, 1, 1, 2],
        "ts": pa.array(times, pa.timestamp("us", tz=tz)), "amount": [10.0, 5.0, 20.0, 30.0, 7.0],
        "y": [0, 1, 0, 0, 1],
    }), tmp_path / "orders.parquet")
    pq.write_table(pa.table({
        "customer": [2], "cancelled_at": pa.array([base + 12 * day], pa.timestamp("us", tz=tz)),
    }), tmp_path / "cancels.parquet")
    start = "2025-01-06T00:00:00" + ("+00:00" if tz else "")
    spec: dict = {
        "project": {"name": "ids"},
        "decision": {"statement": "call", "owner": "cs", "moment": "monday",
                     "actions": ["call", "skip"]},
        "decision_points": ({"schedule": {"every": "7d", "start": start,
                                          "population": "orders", "key": "customer"}}
                            if schedule else {"source": "orders"}),
        "sources": {
            "orders": {"path": "orders.parquet", "keys": ["order_id"], "event_time": "ts"},
            "cancels": {"path": "cancels.parquet", "keys": ["customer"],
                        "event_time": "cancelled_at", "role": "outcome"},
        },
        "label": ({"source": "cancels", "keys": {"customer": "customer"}, "horizon": "7d"}
                  if schedule else {"column": "y", "horizon": "1d"}),
        "features": [{"name": "spend_7d", "aggregate": "sum", "of": "amount", "key": "customer",
                      "window": "7d", "source": "orders"}],
        **(extra or {}),
    }
    (tmp_path / "valuechain.yaml").write_text(yaml.safe_dump(spec))
    return tmp_path


def test_scheduled_decision_ids_are_key_at_time_and_unique(tmp_path: Path) -> None:
    result = build_frame(load_spec(_orders_project(tmp_path, schedule=True)),
                         as_of=datetime(2025, 3, 1))
    frame = pq.read_table(result.frame)
    assert frame.column_names[0] == "decision_id"
    ids = frame.column("decision_id").to_pylist()
    assert ids[:2] == ["1@2025-01-06T00:00:00", "2@2025-01-06T00:00:00"]
    assert "1@2025-01-13T00:00:00" in ids
    assert len(set(ids)) == len(ids) == frame.num_rows
    for row in frame.to_pylist():
        assert row["decision_id"] == (f"{row['customer']}@"
                                      f"{row['decision_time'].strftime('%Y-%m-%dT%H:%M:%S')}")


def test_aware_scheduled_ids_carry_the_utc_offset(tmp_path: Path) -> None:
    result = build_frame(load_spec(_orders_project(tmp_path, schedule=True, tz="UTC")),
                         as_of=datetime.fromisoformat("2025-03-01T00:00:00+00:00"))
    ids = pq.read_table(result.frame).column("decision_id").to_pylist()
    assert ids[0] == "1@2025-01-06T00:00:00+00:00"


@pytest.mark.parametrize("schedule", [False, True])
def test_decision_ids_are_stable_across_rebuilds_with_another_as_of(
        tmp_path: Path, schedule: bool) -> None:
    loaded = load_spec(_orders_project(tmp_path, schedule=schedule))
    late = pq.read_table(build_frame(loaded, as_of=datetime(2025, 6, 1)).frame).to_pandas()
    early = pq.read_table(build_frame(loaded, as_of=datetime(2025, 1, 20)).frame).to_pandas()
    assert 0 < len(early) < len(late)
    assert set(early["decision_id"]) < set(late["decision_id"])
    key = "customer" if schedule else "order_id"
    time_col = "decision_time" if schedule else "ts"
    merged = early.merge(late, on="decision_id", suffixes=("_e", "_l"), validate="one_to_one")
    assert (merged[f"{key}_e"] == merged[f"{key}_l"]).all()
    assert (merged[f"{time_col}_e"] == merged[f"{time_col}_l"]).all()
    assert (merged["spend_7d_e"] == merged["spend_7d_l"]).all()


def test_composite_keys_are_joined_by_a_bar(tmp_path: Path) -> None:
    project = _orders_project(tmp_path, schedule=False)
    spec = yaml.safe_load((project / "valuechain.yaml").read_text())
    spec["sources"]["orders"]["keys"] = ["customer", "order_id"]
    (project / "valuechain.yaml").write_text(yaml.safe_dump(spec))
    frame = pq.read_table(build_frame(load_spec(project), as_of=datetime(2026, 1, 1)).frame)
    assert sorted(frame.column("decision_id").to_pylist()) == ["1|1", "1|3", "1|4", "2|2", "2|5"]


@pytest.mark.parametrize("where", ["feature", "keep", "label"])
def test_decision_id_is_a_reserved_name(tmp_path: Path, where: str) -> None:
    project = _orders_project(tmp_path, schedule=False)
    spec = yaml.safe_load((project / "valuechain.yaml").read_text())
    if where == "feature":
        spec["features"].append({"name": "decision_id", "expr": "amount"})
    elif where == "keep":
        spec["decision_points"]["keep"] = ["decision_id"]
    else:
        spec["label"]["name"] = "decision_id"
    (project / "valuechain.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(SpecError) as err:
        build_frame(load_spec(project))
    assert "'decision_id' is reserved" in str(err.value)
    assert "valuechain.yaml, line" in str(err.value)


def test_sources_under_a_folder_with_a_quote_build(tmp_path: Path) -> None:
    project = _orders_project(tmp_path / "o'brien" / 'say "hi"', schedule=False)
    result = build_frame(load_spec(project), as_of=datetime(2026, 1, 1))
    assert result.rows.total == 5
    csv_project = tmp_path / "o'brien" / "csv"
    _orders_project(csv_project, schedule=False)
    pd.read_parquet(csv_project / "orders.parquet").to_csv(csv_project / "orders.csv",
                                                           index=False)
    spec = yaml.safe_load((csv_project / "valuechain.yaml").read_text())
    spec["sources"]["orders"]["path"] = "orders.csv"
    (csv_project / "valuechain.yaml").write_text(yaml.safe_dump(spec))
    assert build_frame(load_spec(csv_project), as_of=datetime(2026, 1, 1)).rows.total == 5


def test_engine_settings_from_the_spec_and_the_cache_key(tmp_path: Path) -> None:
    project = _orders_project(tmp_path, schedule=False, extra={
        "engine": {"type": "duckdb", "threads": 2, "memory_limit": "1GB"}})
    loaded = load_spec(project)
    first = build_frame(loaded)
    assert first.manifest["engine_config"] == {"type": "duckdb", "threads": 2,
                                               "memory_limit": "1GB"}
    assert build_frame(loaded).cached
    assert build_frame(loaded, engine="duckdb").cached  # same type: the spec's options
    other = build_frame(loaded, engine={"type": "duckdb", "threads": 1})
    assert not other.cached and other.fingerprint == first.fingerprint
    ref = build_frame(loaded, engine="reference")
    assert not ref.cached and ref.manifest["engine"] == "reference"
    assert ref.fingerprint == first.fingerprint  # same frame, byte for byte


@pytest.mark.parametrize(("engine", "needle"), [
    ({"type": "duckdb", "thread": 2}, "thread: Extra inputs are not permitted"),
    ({"type": "duckdb", "memory_limit": "lots"}, "memory_limit"),
    ({"type": "polars"}, "unknown engine 'polars'"),
    ({"type": "spark", "masters": "local[2]"}, "masters: Extra inputs are not permitted"),
])
def test_bad_engine_settings_name_the_field(tmp_path: Path, engine: dict, needle: str) -> None:
    project = _orders_project(tmp_path, schedule=False, extra={"engine": engine})
    with pytest.raises(SpecError) as err:
        build_frame(load_spec(project))
    assert "field `engine`" in str(err.value) and needle in str(err.value)


def test_cli_engine_option_and_unknown_class_path(tmp_path: Path) -> None:
    project = _orders_project(tmp_path, schedule=False)
    result = CliRunner().invoke(app, ["build", "--spec", str(project), "--json",
                                      "--engine", "reference"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["engine"] == "reference"
    bad = CliRunner().invoke(app, ["build", "--spec", str(project), "--engine",
                                   "nowhere.module:Engine"])
    assert bad.exit_code == 2 and "cannot be imported" in bad.output


def test_duplicate_keys_are_a_data_error(tmp_path: Path) -> None:
    project = _orders_project(tmp_path, schedule=False)
    table = pq.read_table(project / "orders.parquet")
    pq.write_table(table.set_column(0, "order_id", pa.array([1, 1, 2, 3, 4])),
                   project / "orders.parquet")
    with pytest.raises(DataError, match="do not identify one row"):
        build_frame(load_spec(project))


@pytest.mark.parametrize(("feature", "field"), [
    ({"name": "big", "expr": "amout > 5"}, "features.1.expr"),
    ({"name": "n_f", "aggregate": "count", "key": "customer", "window": "1d",
      "where": "amout > 5"}, "features.1.where"),
])
def test_unknown_column_in_an_expression_names_the_field(tmp_path: Path, feature: dict,
                                                         field: str) -> None:
    project = _orders_project(tmp_path, schedule=False)
    spec = yaml.safe_load((project / "valuechain.yaml").read_text())
    spec["features"].append(feature)
    (project / "valuechain.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(SpecError) as err:
        build_frame(load_spec(project))
    text = str(err.value)
    assert f"field `{field}`" in text and "'amout'" in text and "'amount'" in text


def test_as_of_must_match_the_datas_time_zone_kind(tmp_path: Path) -> None:
    loaded = load_spec(_orders_project(tmp_path, schedule=False, tz="UTC"))
    with pytest.raises(SpecError) as err:
        build_frame(loaded, as_of=datetime(2025, 6, 1))
    assert "the `as_of` argument" in str(err.value) and "with an offset" in str(err.value)


def test_check_reports_the_engine_and_refuses_bad_settings(tmp_path: Path) -> None:
    from valuechain.data.validate import check_project

    good = check_project(load_spec(_orders_project(tmp_path / "a", schedule=False, extra={
        "engine": {"type": "duckdb", "threads": 2}})))
    engine = next(c for c in good.data_checks if c.name == "engine")
    assert engine.passed and "'duckdb'" in engine.message and "'threads': 2" in engine.message
    bad = check_project(load_spec(_orders_project(tmp_path / "b", schedule=False, extra={
        "engine": {"type": "duckdb", "treads": 2}})))
    engine = next(c for c in bad.data_checks if c.name == "engine")
    assert not engine.passed and "treads" in engine.message and "field `engine`" in engine.message
    assert all(c.passed for c in bad.data_checks if c.name != "engine")
