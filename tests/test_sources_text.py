"""Sources as the CDNOW file writes them: whitespace-delimited text, headerless files named by
`columns`, times as integers read with `time_format`, and date-only times (issue 12)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import yaml

from valuechain.data.build import build_frame
from valuechain.data.sources import Catalog
from valuechain.errors import DataError, SpecError
from valuechain.spec import load_spec

ENGINES = ["duckdb", "reference"]

# Customer 007 buys on Sunday 5 and Tuesday 7 January 2025; customer 012 on Monday 6.
# The file is written as CDNOW is: leading blanks, runs of spaces, CRLF line ends.
LINES = [" 007 20250105  1   11.77", " 012 20250106  2   20.00", " 007 20250107  3   30.50"]


def _project(folder: Path, *, lines: list[str] = LINES, header: bool = False,
             source: dict[str, Any] | None = None, horizon: str = "1d",
             features: list[dict[str, Any]] | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    text = (["customer_id  date number_of_cds  dollar_value"] if header else []) + lines
    (folder / "buys.txt").write_text("\r\n".join(text) + "\r\n")
    src: dict[str, Any] = {
        "path": "buys.txt", "format": "text", "event_time": "date", "time_format": "%Y%m%d",
        "date_only": True}
    if not header:
        src["columns"] = ["customer_id", "date", "number_of_cds", "dollar_value"]
    src.update(source or {})
    spec = {
        "project": {"name": "text"},
        "decision": {"statement": "s", "owner": "o", "moment": "m",
                     "actions": ["contact", "no_contact"]},
        "decision_points": {"schedule": {"every": "1d", "start": "2025-01-06T00:00:00",
                                         "end": "2025-01-09T00:00:00", "population": "buys",
                                         "key": "customer_id"}},
        "sources": {"buys": src, "rebuys": {**src, "role": "outcome"}},
        "label": {"name": "buys_again", "source": "rebuys", "horizon": horizon},
        "features": features or [
            {"name": "n_30d", "aggregate": "count", "key": "customer_id", "window": "30d",
             "source": "buys"},
            {"name": "spend_30d", "aggregate": "sum", "of": "dollar_value",
             "key": "customer_id", "window": "30d", "source": "buys"}],
    }
    (folder / "valuechain.yaml").write_text(yaml.safe_dump(spec))
    return folder


def _frame(project: Path, engine: str = "duckdb") -> dict[tuple[str, str], dict[str, Any]]:
    result = build_frame(load_spec(project), engine=engine, as_of=datetime(2025, 2, 1))
    rows = pq.read_table(result.frame).to_pylist()
    return {(r["customer_id"], r["decision_time"].strftime("%m-%d")): r for r in rows}


def test_text_source_reads_whitespace_columns_with_their_types(tmp_path: Path) -> None:
    catalog = Catalog(load_spec(_project(tmp_path)))
    assert catalog.columns("buys") == {"customer_id": "VARCHAR", "date": "TIMESTAMP",
                                       "number_of_cds": "BIGINT", "dollar_value": "DOUBLE"}
    rows = catalog.con.execute(f"SELECT * FROM {catalog.view('buys')}").fetchall()
    # Leading zeros kept (an identifier), dates known at the end of their day.
    assert rows[0] == ("007", datetime(2025, 1, 6), 1, 11.77)
    assert [r[0] for r in rows] == ["007", "012", "007"]


def test_text_source_with_a_header_line(tmp_path: Path) -> None:
    catalog = Catalog(load_spec(_project(tmp_path, header=True)))
    assert list(catalog.columns("buys")) == ["customer_id", "date", "number_of_cds",
                                             "dollar_value"]
    assert catalog.scalar(f"SELECT count(*) FROM {catalog.view('buys')}") == 3


def test_columns_skip_a_header_that_repeats_them(tmp_path: Path) -> None:
    project = _project(tmp_path, header=True, source={
        "columns": ["customer_id", "date", "number_of_cds", "dollar_value"]})
    catalog = Catalog(load_spec(project))
    assert catalog.scalar(f"SELECT count(*) FROM {catalog.view('buys')}") == 3


@pytest.mark.parametrize("engine", ENGINES)
def test_date_only_purchase_on_the_decisions_day_is_not_known_at_its_midnight(
        tmp_path: Path, engine: str) -> None:
    frame = _frame(_project(tmp_path), engine)
    # 007 bought on Sunday 5th: known from Monday 6th 00:00.
    assert frame[("007", "01-06")]["n_30d"] == 1
    # ... and on Tuesday 7th: a decision at 7th 00:00 does not see it, one at 8th 00:00 does.
    assert frame[("007", "01-07")]["n_30d"] == 1
    assert frame[("007", "01-07")]["spend_30d"] == pytest.approx(11.77)
    assert frame[("007", "01-08")]["n_30d"] == 2
    assert frame[("007", "01-08")]["spend_30d"] == pytest.approx(42.27)
    # 012 bought on Monday 6th: not a decision point at 6th 00:00 (not yet known), first at
    # 7th 00:00 with that purchase.
    assert ("012", "01-06") not in frame
    assert frame[("012", "01-07")]["n_30d"] == 1
    # The label: a purchase on the decision's own day happens after its 00:00, so it is an
    # outcome of that day's decision (horizon 1d), not of the day before.
    assert frame[("007", "01-06")]["buys_again"] == 0
    assert frame[("007", "01-07")]["buys_again"] == 1
    assert frame[("007", "01-08")]["buys_again"] == 0


def test_without_date_only_midnight_dates_are_known_at_their_midnight(tmp_path: Path) -> None:
    frame = _frame(_project(tmp_path, source={"date_only": False}))
    assert frame[("007", "01-07")]["n_30d"] == 2  # the 7th counts at 7th 00:00: too early
    assert frame[("012", "01-06")]["n_30d"] == 1


def test_time_format_parses_integer_dates_in_csv(tmp_path: Path) -> None:
    project = _project(tmp_path)
    (tmp_path / "buys.csv").write_text("customer_id,date,number_of_cds,dollar_value\n"
                                       "7,20250105,1,11.77\n7,20250107,3,30.5\n")
    spec = yaml.safe_load((project / "valuechain.yaml").read_text())
    for name in ("buys", "rebuys"):
        spec["sources"][name].update(path="buys.csv", format="csv")
        del spec["sources"][name]["columns"]
    (project / "valuechain.yaml").write_text(yaml.safe_dump(spec))
    catalog = Catalog(load_spec(project))
    times = catalog.con.execute(f"SELECT date FROM {catalog.view('buys')}").fetchall()
    assert times == [(datetime(2025, 1, 6),), (datetime(2025, 1, 8),)]


def test_value_not_matching_time_format_names_file_column_format_and_fix(
        tmp_path: Path) -> None:
    project = _project(tmp_path, lines=[*LINES, " 013 2025-01-08  1  5.00"])
    with pytest.raises(DataError) as err:
        Catalog(load_spec(project))
    message = str(err.value)
    assert "sources.buys.time_format" in message and "buys.txt" in message
    assert "column 'date'" in message and "'%Y%m%d'" in message
    assert "'2025-01-08'" in message and "'20250301'" in message  # the value, an example
    assert "fix `time_format`" in message


def test_integer_dates_without_time_format_suggest_it(tmp_path: Path) -> None:
    project = _project(tmp_path, source={"time_format": None, "date_only": False})
    with pytest.raises(DataError) as err:
        build_frame(load_spec(project), as_of=datetime(2025, 2, 1))
    message = str(err.value)
    assert "column 'date'" in message and "20250105 .. 20250107" in message
    assert "time_format: '%Y%m%d'" in message and "date_only: true" in message


def test_date_only_refuses_times_of_day(tmp_path: Path) -> None:
    project = _project(tmp_path, lines=[" 007 2025-01-05T10:30:00 1 1.0"],
                       source={"time_format": None})
    with pytest.raises(DataError) as err:
        Catalog(load_spec(project))
    message = str(err.value)
    assert "sources.buys.date_only" in message and "time of day" in message
    assert "2025-01-05 10:30:00" in message and "remove `date_only`" in message


def test_line_with_a_missing_field_is_named(tmp_path: Path) -> None:
    project = _project(tmp_path, lines=[*LINES, " 014 20250108  1"])
    with pytest.raises(DataError) as err:
        Catalog(load_spec(project))
    message = str(err.value)
    assert "buys.txt" in message and "1 lines without 4 whitespace-separated fields" in message
    assert "line 4" in message and "'014 20250108 1'" in message


def test_headerless_text_without_columns_is_refused(tmp_path: Path) -> None:
    project = _project(tmp_path, source={"columns": None})
    with pytest.raises(DataError) as err:
        Catalog(load_spec(project))
    message = str(err.value)
    assert "no header row" in message
    assert "columns: [col1, col2, col3, col4]" in message


@pytest.mark.parametrize(("change", "needle"), [
    ({"format": "parquet"}, "a parquet source has its own names"),
    ({"columns": ["a", "a"]}, "name each column once"),
    ({"time_format": "YYYYMMDD"}, "strftime pattern"),
])
def test_spec_refuses_inconsistent_text_fields(tmp_path: Path, change: dict[str, Any],
                                               needle: str) -> None:
    project = _project(tmp_path, source=change)
    with pytest.raises(SpecError, match=needle):
        load_spec(project)


def test_date_only_decision_source_is_refused(tmp_path: Path) -> None:
    project = _project(tmp_path)
    spec = yaml.safe_load((project / "valuechain.yaml").read_text())
    spec["decision_points"] = {"source": "buys"}
    spec["sources"]["buys"]["keys"] = ["customer_id", "date"]
    spec["features"] = [{"name": "cds", "expr": "number_of_cds"}]
    (project / "valuechain.yaml").write_text(yaml.safe_dump(spec))
    with pytest.raises(SpecError) as err:
        build_frame(load_spec(project), as_of=datetime(2025, 2, 1))
    assert "sources.buys.date_only" in str(err.value)
    assert "decide on a schedule" in str(err.value)


def test_check_counts_repeated_lines_of_a_source_without_keys(tmp_path: Path) -> None:
    from valuechain.data.validate import check_project

    project = _project(tmp_path, lines=[*LINES, LINES[0], LINES[0]])
    report = check_project(load_spec(project))
    buys = next(c for c in report.data_checks if c.name == "source 'buys'")
    assert buys.passed
    assert buys.message == ("5 rows, 4 columns; declared columns exist; 2 rows repeat another "
                            "row exactly (no `keys` tell them apart; each counts in the "
                            "features)")
