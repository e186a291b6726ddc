"""Empty decision or outcome sources and frames without mature labels are explained as such,
with the source, the file and the figures (issue 9), not as a split problem downstream."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from valuechain.data.build import build_frame
from valuechain.errors import DataError
from valuechain.spec import load_spec

from .test_build import _orders_project

ENGINES = ["duckdb", "reference"]


def _empty(path: Path) -> None:
    table = pq.read_table(path)
    pq.write_table(table.slice(0, 0), path)


@pytest.mark.parametrize("engine", ENGINES)
def test_an_empty_decision_source_says_0_rows(tmp_path: Path, engine: str) -> None:
    project = _orders_project(tmp_path, schedule=False)
    _empty(project / "orders.parquet")
    with pytest.raises(DataError) as err:
        build_frame(load_spec(project), engine=engine)
    message = str(err.value)
    assert "sources.orders.path" in message and "decision source 'orders'" in message
    assert "orders.parquet" in message and "has 0 rows" in message


@pytest.mark.parametrize("engine", ENGINES)
def test_an_empty_outcome_table_says_0_rows(tmp_path: Path, engine: str) -> None:
    project = _orders_project(tmp_path, schedule=True)
    _empty(project / "cancels.parquet")
    with pytest.raises(DataError) as err:
        build_frame(load_spec(project), engine=engine, as_of=datetime(2025, 3, 1))
    message = str(err.value)
    assert "outcome source 'cancels'" in message and "cancels.parquet" in message
    assert "has 0 rows" in message and "every label would be 0" in message


@pytest.mark.parametrize("engine", ENGINES)
def test_rows_but_no_mature_label_gives_as_of_and_horizon(tmp_path: Path,
                                                          engine: str) -> None:
    project = _orders_project(tmp_path, schedule=False)
    with pytest.raises(DataError) as err:
        build_frame(load_spec(project), engine=engine, as_of=datetime(2025, 1, 1, 12))
    message = str(err.value)
    assert "label.horizon" in message and "none of the 5 decision rows" in message
    assert "as_of is 2025-01-01T12:00:00" in message
    assert "earliest decision (2025-01-01T00:00:00) + horizon 1 days" in message
    assert "ends at 2025-01-02T00:00:00" in message and "a shorter `label.horizon`" in message


def test_decision_rows_all_without_time(tmp_path: Path) -> None:
    import pyarrow as pa

    project = _orders_project(tmp_path, schedule=False)
    table = pq.read_table(project / "orders.parquet")
    i = table.column_names.index("ts")
    pq.write_table(table.set_column(i, "ts", pa.nulls(5, pa.timestamp("us"))),
                   project / "orders.parquet")
    with pytest.raises(DataError, match=r"decision source 'orders'.*has 5 rows but none with "
                                        r"a time.*no event time \('ts'\)"):
        build_frame(load_spec(project), as_of=datetime(2025, 3, 1))


def test_a_null_decision_key_is_named(tmp_path: Path) -> None:
    import pyarrow as pa

    project = _orders_project(tmp_path, schedule=False)
    table = pq.read_table(project / "orders.parquet")
    i = table.column_names.index("order_id")
    pq.write_table(table.set_column(i, "order_id", pa.array([1, None, 3, None, 5])),
                   project / "orders.parquet")
    with pytest.raises(DataError, match=r"sources.orders.keys.*key column 'order_id'.*"
                                        r"orders.parquet.*empty \(null\) in 2 rows"):
        build_frame(load_spec(project), as_of=datetime(2025, 3, 1))


def test_a_missing_time_column_is_named(tmp_path: Path) -> None:
    project = _orders_project(tmp_path, schedule=False)
    table = pq.read_table(project / "orders.parquet")
    pq.write_table(table.drop_columns(["ts"]), project / "orders.parquet")
    with pytest.raises(DataError, match=r"sources.orders.event_time.*column 'ts' is not in "
                                        r"source 'orders'.*orders.parquet"):
        build_frame(load_spec(project))
