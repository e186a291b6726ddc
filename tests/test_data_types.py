"""Numbers stored as text and integer epoch times: the message names the feature, the
column, the file, example values and the fix (issue 9)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml

from valuechain.data.build import build_frame
from valuechain.errors import DataError
from valuechain.spec import load_spec

from .orders_project import orders_project

ENGINES = ["duckdb", "reference"]


def _project(folder: Path, amounts: list[str], features: list[dict]) -> Path:
    return orders_project(
        folder, [f'{i + 1},1,2025-01-0{i + 1} 10:00:00,"{a}",0' for i, a in enumerate(amounts)],
        [{"name": "n_1d", "aggregate": "count", "key": "customer", "window": "1d"}, *features],
        name="types")


@pytest.mark.parametrize("engine", ENGINES)
def test_decimal_commas_in_a_row_feature_name_feature_column_and_fix(tmp_path: Path,
                                                                      engine: str) -> None:
    project = _project(tmp_path, ["12,50", "7,00", "1.234,10"],
                       [{"name": "double_amount", "expr": "amount * 2"}])
    with pytest.raises(DataError) as err:
        build_frame(load_spec(project), engine=engine)
    message = str(err.value)
    assert "features.1.expr" in message and "feature 'double_amount'" in message
    assert "`amount * 2`" in message and "orders.csv" in message
    assert "column 'amount'" in message and "'12,50'" in message
    assert "3 values look like numbers written with a decimal comma" in message
    assert "decimal=','" in message


@pytest.mark.parametrize("engine", ENGINES)
def test_text_in_a_comparison_names_the_bad_values(tmp_path: Path, engine: str) -> None:
    project = _project(tmp_path, ["12.5", "n/a", "7"],
                       [{"name": "big", "expr": "CASE WHEN amount > 10 THEN 1 ELSE 0 END"}])
    with pytest.raises(DataError) as err:
        build_frame(load_spec(project), engine=engine)
    message = str(err.value)
    assert "features.1.expr" in message and "feature 'big'" in message
    assert "column 'amount'" in message and "'n/a'" in message
    assert "Convert the column to numbers at the source" in message


@pytest.mark.parametrize("engine", ENGINES)
def test_an_aggregate_of_text_names_feature_file_values(tmp_path: Path, engine: str) -> None:
    project = _project(tmp_path, ["12,50", "7,00", "3,10"],
                       [{"name": "spend_1d", "aggregate": "sum", "of": "amount",
                         "key": "customer", "window": "1d"}])
    with pytest.raises(DataError) as err:
        build_frame(load_spec(project), engine=engine)
    message = str(err.value)
    assert "features.1.of" in message and "feature 'spend_1d'" in message
    assert "orders.csv" in message and "'12,50'" in message and "decimal comma" in message


def test_numbers_as_text_with_points_still_build(tmp_path: Path) -> None:
    project = _project(tmp_path, ["12.5", "7", "3.25"],
                       [{"name": "double_amount", "expr": "amount * 2"}])
    frame = pq.read_table(build_frame(load_spec(project)).frame)
    assert frame.column("double_amount").to_pylist() == [25.0, 14.0]  # the last is immature


@pytest.mark.parametrize(("scale", "unit", "pandas"), [(1, "seconds", "unit='s'"),
                                                       (1000, "milliseconds", "unit='ms'")])
def test_integer_epoch_times_are_explained(tmp_path: Path, scale: int, unit: str,
                                           pandas: str) -> None:
    project = _project(tmp_path, ["1", "2", "3"], [])
    pq.write_table(pa.table({"order_id": [1, 2, 3], "customer": [1, 1, 1],
                             "ts": [1_735_689_600 * scale, 1_735_693_200 * scale,
                                    1_735_776_000 * scale],
                             "amount": [1.0, 2.0, 3.0], "y": [0, 0, 0]}),
                   tmp_path / "orders.parquet")
    spec = yaml.safe_load((tmp_path / "valuechain.yaml").read_text())
    spec["sources"]["orders"]["path"] = "orders.parquet"
    (tmp_path / "valuechain.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(DataError) as err:
        build_frame(load_spec(project))
    message = str(err.value)
    assert "sources.orders.event_time" in message and "orders.parquet" in message
    assert f"look like epoch {unit}" in message and "2025-01-01T00:00:00" in message
    assert pandas in message


def test_a_key_that_is_text_in_one_source_and_a_number_in_the_other(tmp_path: Path) -> None:
    project = _project(tmp_path, ["1", "2", "3"], [])
    pq.write_table(pa.table({"rid": [1, 2], "customer": ["1", "2"],
                             "ts": pa.array([1_735_689_600_000_000] * 2, pa.timestamp("us")),
                             "v": [1.0, 2.0]}), tmp_path / "refunds.parquet")
    spec = yaml.safe_load((tmp_path / "valuechain.yaml").read_text())
    spec["sources"]["refunds"] = {"path": "refunds.parquet", "keys": ["rid"],
                                  "event_time": "ts"}
    spec["features"].append({"name": "refunds_1d", "aggregate": "count", "key": "customer",
                             "window": "1d", "source": "refunds"})
    (tmp_path / "valuechain.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(DataError, match=r"features.1.key.*refunds.parquet.*'customer' \(BIGINT"
                                        r", in 'orders'\) = 'customer' \(VARCHAR\)"):
        build_frame(load_spec(project))
