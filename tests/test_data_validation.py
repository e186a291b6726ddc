"""Wrong data is refused with a message naming the file, the column and the fix (issue 9)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from valuechain.data.build import build_frame
from valuechain.errors import DataError
from valuechain.spec import load_spec

from .test_build import _orders_project


def _set_column(path: Path, name: str, values: list) -> None:
    table = pq.read_table(path)
    i = table.column_names.index(name)
    pq.write_table(table.set_column(i, name, pa.array(values)), path)


# -- 1. label domain ---------------------------------------------------------------------
@pytest.mark.parametrize("bad", [2, -1])
def test_binary_label_outside_0_1_names_column_count_and_decision(tmp_path: Path,
                                                                   bad: int) -> None:
    project = _orders_project(tmp_path, schedule=False)
    _set_column(project / "orders.parquet", "y", [0, bad, 0, bad, 1])
    with pytest.raises(DataError) as err:
        build_frame(load_spec(project))
    message = str(err.value)
    assert "label column 'y'" in message and "orders.parquet" in message
    assert "2 mature rows" in message and "decision_id '2'" in message
    assert "Map the values to 0/1" in message


def test_null_label_on_mature_rows_names_column_and_decision(tmp_path: Path) -> None:
    project = _orders_project(tmp_path, schedule=False)
    _set_column(project / "orders.parquet", "y", [0, None, 0, 0, 1])
    with pytest.raises(DataError) as err:
        build_frame(load_spec(project))
    message = str(err.value)
    assert "label column 'y'" in message and "orders.parquet" in message
    assert "1 empty values" in message and "decision_id '2'" in message
    assert "fill them at the source" in message


def test_float_label_nan_is_refused(tmp_path: Path) -> None:
    project = _orders_project(tmp_path, schedule=False)
    _set_column(project / "orders.parquet", "y", [0.0, float("nan"), 0.0, 1.0, 1.0])
    with pytest.raises(DataError, match=r"label column 'y'.*orders.parquet"):
        build_frame(load_spec(project))


def test_a_valid_binary_label_still_builds(tmp_path: Path) -> None:
    project = _orders_project(tmp_path, schedule=False)
    _set_column(project / "orders.parquet", "y", [False, True, False, False, True])
    assert build_frame(load_spec(project)).rows.mature == 4


# -- 2. duplicate keys on every keyed source ------------------------------------------------
def _with_tiers(tmp_path: Path, customers: list[int], days: list[int]) -> Path:
    import yaml

    project = _orders_project(tmp_path, schedule=False)
    base = 1_735_689_600_000_000 - 86_400_000_000 * 10
    pq.write_table(pa.table({
        "customer": customers, "tier": [f"t{i}" for i in range(len(customers))],
        "valid_from": pa.array([base + d * 86_400_000_000 for d in days], pa.timestamp("us")),
    }), project / "tiers.parquet")
    spec = yaml.safe_load((project / "valuechain.yaml").read_text())
    spec["sources"]["tiers"] = {"path": "tiers.parquet", "role": "dimension",
                                "keys": ["customer"], "valid_from": "valid_from"}
    spec["features"].append({"name": "tier", "lookup": {"source": "tiers", "key": "customer",
                                                        "column": "tier"}})
    (project / "valuechain.yaml").write_text(yaml.safe_dump(spec))
    return project


def test_dimension_with_two_rows_for_one_key_and_version_is_refused(tmp_path: Path) -> None:
    project = _with_tiers(tmp_path, [1, 2, 2], [0, 0, 0])
    with pytest.raises(DataError) as err:
        build_frame(load_spec(project))
    message = str(err.value)
    assert "sources.tiers.keys" in message and "tiers.parquet" in message
    assert "'customer': '2'" in message and "2 rows" in message
    assert "remove the duplicates" in message and "valid_from" in message


def test_dimension_versions_with_distinct_valid_from_build(tmp_path: Path) -> None:
    project = _with_tiers(tmp_path, [1, 2, 2], [0, 0, 3])
    assert build_frame(load_spec(project)).rows.total == 5


def test_outcome_source_with_duplicate_keys_is_refused(tmp_path: Path) -> None:
    project = _orders_project(tmp_path, schedule=True)
    table = pq.read_table(project / "cancels.parquet")
    pq.write_table(pa.concat_tables([table, table]), project / "cancels.parquet")
    with pytest.raises(DataError, match=r"sources.cancels.keys.*cancels.parquet.*appears 2 "
                                        r"times.*Remove the duplicates"):
        build_frame(load_spec(project))


# -- 3. a CSV without a header row --------------------------------------------------------
def _csv_orders(tmp_path: Path, header: bool) -> Path:
    import yaml

    project = _orders_project(tmp_path, schedule=False)
    frame = pq.read_table(project / "orders.parquet").to_pandas()
    (project / "orders.parquet").unlink()
    frame.to_csv(project / "orders.csv", index=False, header=header)
    spec = yaml.safe_load((project / "valuechain.yaml").read_text())
    spec["sources"]["orders"]["path"] = "orders.csv"
    (project / "valuechain.yaml").write_text(yaml.safe_dump(spec))
    return project


def test_csv_without_a_header_row_says_so(tmp_path: Path) -> None:
    project = _csv_orders(tmp_path, header=False)
    with pytest.raises(DataError) as err:
        build_frame(load_spec(project))
    message = str(err.value)
    assert "sources.orders.path" in message and "orders.csv" in message
    assert "seems to have no header row" in message
    assert "order_id" in message and "add a header line" in message


def test_csv_with_a_header_row_builds(tmp_path: Path) -> None:
    assert build_frame(load_spec(_csv_orders(tmp_path, header=True))).rows.total == 5


# -- 4. time sanity ------------------------------------------------------------------------
def _with_reported(tmp_path: Path, opened: list, reported: list) -> Path:
    """Scheduled points; cancels with an event time and an availability time."""
    import yaml

    project = _orders_project(tmp_path, schedule=True)
    pq.write_table(pa.table({
        "customer": list(range(2, 2 + len(opened))),
        "opened_at": pa.array(opened, pa.timestamp("us")),
        "reported_at": pa.array(reported, pa.timestamp("us")),
    }), project / "cancels.parquet")
    spec = yaml.safe_load((project / "valuechain.yaml").read_text())
    spec["sources"]["cancels"].update(event_time="opened_at", available_at="reported_at")
    (project / "valuechain.yaml").write_text(yaml.safe_dump(spec))
    return project


_DAY = 86_400_000_000
_BASE = 1_735_689_600_000_000  # 2025-01-01


def test_outcome_rows_without_times_are_counted_in_the_manifest(tmp_path: Path) -> None:
    project = _with_reported(tmp_path, [_BASE + 12 * _DAY, None, _BASE + 3 * _DAY],
                             [_BASE + 13 * _DAY, _BASE + 2 * _DAY, None])
    result = build_frame(load_spec(project), as_of=datetime(2025, 3, 1))
    assert result.manifest["dropped"] == {
        "cancels": {"no event time ('opened_at')": 1, "no availability time ('reported_at')": 1}}
    again = build_frame(load_spec(project), as_of=datetime(2025, 3, 1), engine="reference")
    assert again.manifest["dropped"] == result.manifest["dropped"]
    assert pq.read_table(again.frame).equals(pq.read_table(result.frame))


def test_decision_rows_without_time_are_counted_per_source(tmp_path: Path) -> None:
    project = _orders_project(tmp_path, schedule=False)
    _set_column(project / "orders.parquet", "ts",
                pa.array([_BASE, None, _BASE + 8 * _DAY, _BASE + 9 * _DAY, _BASE + 30 * _DAY],
                         pa.timestamp("us")).to_pylist())
    result = build_frame(load_spec(project))
    assert result.rows.dropped_no_time == 1
    assert result.manifest["dropped"] == {"orders": {"no event time ('ts')": 1}}


def test_outcome_known_before_it_happened_is_refused(tmp_path: Path) -> None:
    project = _with_reported(tmp_path, [_BASE + 12 * _DAY], [_BASE + 2 * _DAY])
    with pytest.raises(DataError) as err:
        build_frame(load_spec(project), as_of=datetime(2025, 3, 1))
    message = str(err.value)
    assert "sources.cancels.available_at" in message and "cancels.parquet" in message
    assert "1 rows" in message and "known before they happened" in message
    assert "'customer': '2'" in message and "fix those rows" in message


def test_a_single_row_in_2100_does_not_move_as_of_silently(tmp_path: Path) -> None:
    project = _orders_project(tmp_path, schedule=False)
    _set_column(project / "orders.parquet", "ts",
                pa.array([_BASE, _BASE + _DAY, _BASE + 8 * _DAY, _BASE + 9 * _DAY,
                          4_102_444_800_000_000], pa.timestamp("us")).to_pylist())
    with pytest.raises(DataError) as err:
        build_frame(load_spec(project))
    message = str(err.value)
    assert "sources.orders.event_time" in message and "orders.parquet" in message
    assert "column 'ts'" in message and "2100-01-01" in message and "'order_id': '5'" in message
    assert "--as-of 2025-01-10" in message and "remove that row" in message
    # The documented way to accept it: an explicit as_of.
    assert build_frame(load_spec(project), as_of=datetime(2025, 3, 1)).rows.total == 5


def test_pre_1970_times_stay_valid(tmp_path: Path) -> None:
    project = _orders_project(tmp_path, schedule=False)
    old = -1_577_923_200_000_000  # 1920-01-01
    _set_column(project / "orders.parquet", "ts",
                pa.array([old + d * _DAY for d in (0, 1, 8, 9, 30)],
                         pa.timestamp("us")).to_pylist())
    result = build_frame(load_spec(project))
    assert result.rows.total == result.rows.mature == 5
    frame = pq.read_table(result.frame).to_pandas()
    assert str(frame["ts"].min()).startswith("1920-01-01")


def test_cli_reports_a_data_error_with_exit_2_and_no_traceback(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from valuechain.cli import app

    project = _with_tiers(tmp_path, [1, 2, 2], [0, 0, 0])
    result = CliRunner().invoke(app, ["build", "--spec", str(project)])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "tiers.parquet" in result.output
