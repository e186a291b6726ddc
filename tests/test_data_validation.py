"""Wrong data is refused with a message naming the file, the column and the fix (issue 9)."""

from __future__ import annotations

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
