"""Time values in the data: UTC offsets in CSV text, placeholders at the epoch (issue 9)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from valuechain.data.build import build_frame
from valuechain.errors import DataError
from valuechain.spec import load_spec

from .orders_project import orders_project

ENGINES = ["duckdb", "reference"]


def _csv_project(folder: Path, times: list[str], *, extra_rows: str = "") -> Path:
    """Orders of one customer in a CSV with ``times`` written as text."""
    return orders_project(
        folder, [f"{i + 1},1,{t},{10 * (i + 1)}.0,0" for i, t in enumerate(times)],
        [{"name": "n_1h", "aggregate": "count", "key": "customer", "window": "1h"},
         {"name": "spend_1h", "aggregate": "sum", "of": "amount", "key": "customer",
          "window": "1h"}], name="tz", extra=extra_rows)


# -- UTC offsets in CSV text ------------------------------------------------------------------
@pytest.mark.parametrize("engine", ENGINES)
def test_csv_times_with_different_offsets_are_utc_instants(tmp_path: Path,
                                                           engine: str) -> None:
    # 10:00+02:00 is 08:00Z: 1h30 before 09:30Z, so neither sees the other in 1 hour.
    # Dropping the offsets would put order 1 at 10:00, 30 minutes after order 2.
    project = _csv_project(tmp_path, ["2025-01-01T10:00:00+02:00", "2025-01-01T09:30:00Z",
                                      "2025-01-01T11:00:00+01:00"])
    result = build_frame(load_spec(project), engine=engine,
                         as_of=datetime(2025, 3, 1, tzinfo=UTC))
    frame = pq.read_table(result.frame).to_pylist()
    assert [r["decision_id"] for r in frame] == ["1", "2", "3"]  # 08:00Z, 09:30Z, 10:00Z
    assert [r["n_1h"] for r in frame] == [1, 1, 2]
    assert [r["spend_1h"] for r in frame] == [10.0, 20.0, 50.0]
    assert result.manifest["time_zone_aware"] is True
    assert frame[0]["ts"] == datetime(2025, 1, 1, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize("engine", ENGINES)
def test_csv_time_column_mixing_offsets_and_naive_times_is_refused(tmp_path: Path,
                                                                   engine: str) -> None:
    project = _csv_project(tmp_path, ["2025-01-01T10:00:00", "2025-01-01T09:30:00Z",
                                      "2025-01-01T11:00:00"])
    with pytest.raises(DataError) as err:
        build_frame(load_spec(project), engine=engine)
    message = str(err.value)
    assert "sources.orders.event_time" in message and "orders.csv" in message
    assert "column 'ts'" in message and "mixes times with a UTC offset" in message
    assert "'2025-01-01T09:30:00Z'" in message and "'2025-01-01T1" in message
    assert "write every value with its offset" in message


def test_naive_csv_times_stay_wall_clock(tmp_path: Path) -> None:
    project = _csv_project(tmp_path, ["2025-01-01 10:00:00", "2025-01-01 10:30:00"])
    result = build_frame(load_spec(project), as_of=datetime(2025, 3, 1))
    assert result.manifest["time_zone_aware"] is False
    assert [r["n_1h"] for r in pq.read_table(result.frame).to_pylist()] == [1, 2]


@pytest.mark.parametrize("engine", ENGINES)
def test_text_times_with_offsets_in_parquet_keep_their_offsets(tmp_path: Path,
                                                               engine: str) -> None:
    import pyarrow as pa

    project = _csv_project(tmp_path, ["2025-01-01T10:00:00+02:00", "2025-01-01T09:30:00Z",
                                      "2025-01-01T11:00:00+01:00"])
    pq.write_table(pa.table({"order_id": [1, 2, 3], "customer": [1, 1, 1],
                             "ts": ["2025-01-01T10:00:00+02:00", "2025-01-01T09:30:00Z",
                                    "2025-01-01T11:00:00+01:00"],
                             "amount": [10.0, 20.0, 30.0], "y": [0, 0, 0]}),
                   project / "orders.parquet")
    spec = yaml.safe_load((project / "valuechain.yaml").read_text())
    spec["sources"]["orders"]["path"] = "orders.parquet"
    (project / "valuechain.yaml").write_text(yaml.safe_dump(spec))
    result = build_frame(load_spec(project), engine=engine,
                         as_of=datetime(2025, 3, 1, tzinfo=UTC))
    frame = pq.read_table(result.frame).to_pylist()
    assert [r["decision_id"] for r in frame] == ["1", "2", "3"]
    assert [r["n_1h"] for r in frame] == [1, 1, 2]
    # A text column mixing both kinds is refused in Parquet too.
    pq.write_table(pa.table({"order_id": [1, 2], "customer": [1, 1],
                             "ts": ["2025-01-01T10:00:00", "2025-01-01T09:30:00Z"],
                             "amount": [10.0, 20.0], "y": [0, 0]}), project / "orders.parquet")
    with pytest.raises(DataError, match=r"sources.orders.event_time.*orders.parquet.*mixes "
                                        r"times with a UTC offset"):
        build_frame(load_spec(project), engine=engine)


# -- placeholders at the epoch -----------------------------------------------------------------
@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("placeholder", ["1970-01-01 00:00:00", "1969-12-31 23:00:00"])
def test_a_zero_epoch_among_modern_times_is_refused(tmp_path: Path, engine: str,
                                                     placeholder: str) -> None:
    project = _csv_project(tmp_path, ["2025-01-01 10:00:00", placeholder,
                                      "2025-01-02 11:00:00"])
    with pytest.raises(DataError) as err:
        build_frame(load_spec(project), engine=engine)
    message = str(err.value)
    assert "sources.orders.event_time" in message and "orders.csv" in message
    assert "column 'ts'" in message and "1 of 3 rows at or before 1970-01-01" in message
    assert "'order_id': '2'" in message and placeholder.replace(" ", "T") in message
    assert "empty the placeholders" in message and "accept_early_times=True" in message
    # The documented ways out: an empty time (left out and counted), or accepting it.
    accepted = build_frame(load_spec(project), engine=engine, accept_early_times=True)
    assert accepted.rows.total == 3
    emptied = _csv_project(tmp_path / "emptied", ["2025-01-01 10:00:00", "",
                                                  "2025-01-02 11:00:00"])
    result = build_frame(load_spec(emptied), engine=engine)
    assert result.rows.total == 2 and result.manifest["dropped"] == {
        "orders": {"no event time ('ts')": 1}}


def test_history_wholly_before_1971_stays_valid(tmp_path: Path) -> None:
    project = _csv_project(tmp_path, ["1969-12-31 23:00:00", "1970-01-01 00:00:00",
                                      "1970-03-01 00:00:00"])
    assert build_frame(load_spec(project)).rows.total == 3
