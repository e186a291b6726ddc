"""Bad specs and bad data give one clear paragraph: file, line, field, expectation, fix."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from typer.testing import CliRunner

from valuechain.cli import app
from valuechain.data.build import build_frame
from valuechain.errors import DataError, SpecError
from valuechain.spec import load_spec

BASE: dict[str, Any] = {
    "project": {"name": "tiny"},
    "decision": {"statement": "Review orders", "owner": "ops", "moment": "checkout",
                 "actions": ["approve", "review"]},
    "decision_points": {"source": "orders"},
    "sources": {
        "orders": {"path": "orders.parquet", "keys": ["order_id"], "event_time": "ts"},
        "disputes": {"path": "disputes.parquet", "keys": ["order_id"], "event_time": "opened",
                     "role": "post_outcome"},
    },
    "label": {"column": "bad", "horizon": "2d"},
    "features": [
        {"name": "amount", "expr": "amount"},
        {"name": "n_1d", "aggregate": "count", "key": "customer", "window": "1d"},
    ],
}


def _write(tmp_path: Path, spec: dict[str, Any], tz: str | None = None) -> Path:
    ts = pa.array([1_700_000_000_000_000 + i * 3_600_000_000 for i in range(6)],
                  pa.timestamp("us", tz=tz))
    pq.write_table(pa.table({
        "order_id": [1, 2, 3, 4, 5, 6], "ts": ts, "customer": [1, 1, 2, 2, 1, 2],
        "amount": [5.0, 7.0, 1.0, 2.0, 3.0, 4.0], "bad": [0, 1, 0, 0, 1, 0],
        "note": ["a", "b", "c", "d", "e", "f"],
    }), tmp_path / "orders.parquet")
    pq.write_table(pa.table({
        "order_id": [2], "opened": pa.array([1_700_100_000_000_000], pa.timestamp("us")),
    }), tmp_path / "disputes.parquet")
    path = tmp_path / "valuechain.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _with(**changes: Any) -> dict[str, Any]:
    spec = yaml.safe_load(yaml.safe_dump(BASE))
    for dotted, value in changes.items():
        node = spec
        *parents, last = dotted.split("__")
        for part in parents:
            node = node[int(part)] if part.isdigit() else node[part]
        if value is None:
            del node[last]
        else:
            node[int(last) if last.isdigit() else last] = value
    return spec


def test_valid_spec_builds(tmp_path: Path) -> None:
    from datetime import datetime

    # extracted 3 days after the last order: every 2-day label is final
    result = build_frame(load_spec(_write(tmp_path, BASE)), as_of=datetime(2023, 11, 18))
    assert result.rows.total == 6 and result.rows.mature == 6


def test_unknown_source_names_line_field_and_choices(tmp_path: Path) -> None:
    path = _write(tmp_path, _with(decision_points__source="ordrs"))
    with pytest.raises(SpecError) as err:
        load_spec(path)
    text = str(err.value)
    assert "valuechain.yaml, line" in text
    assert "decision_points.source" in text
    assert "unknown source 'ordrs'" in text and "['disputes', 'orders']" in text


def test_missing_horizon(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as err:
        load_spec(_write(tmp_path, _with(label__horizon=None)))
    assert "label.horizon" in str(err.value) and "Field required" in str(err.value)


def test_bad_duration_explains_units(tmp_path: Path) -> None:
    with pytest.raises(SpecError) as err:
        load_spec(_write(tmp_path, _with(label__horizon="2 months")))
    assert "months and years vary" in str(err.value)


def test_feature_from_post_outcome_source(tmp_path: Path) -> None:
    spec = _with()
    spec["features"].append({"name": "disputed", "aggregate": "count", "key": "order_id",
                             "window": "30d", "source": "disputes"})
    with pytest.raises(SpecError) as err:
        load_spec(_write(tmp_path, spec))
    text = str(err.value)
    assert "features.2.source" in text and "post_outcome" in text
    assert "not known at decision time" in text


def test_misspelt_field_is_named(tmp_path: Path) -> None:
    spec = _with()
    spec["features"][1]["windw"] = "1d"
    with pytest.raises(SpecError) as err:
        load_spec(_write(tmp_path, spec))
    assert "features.1.windw" in str(err.value) and "valuechain schema" in str(err.value)


def test_missing_column(tmp_path: Path) -> None:
    path = _write(tmp_path, _with(features__1__key="custmer"))
    with pytest.raises(SpecError) as err:
        build_frame(load_spec(path))
    text = str(err.value)
    assert "features.1.key" in text and "'custmer'" in text and "customer" in text


def test_wrong_type(tmp_path: Path) -> None:
    spec = _with()
    spec["features"].append({"name": "avg_note", "aggregate": "mean", "of": "note",
                             "key": "customer", "window": "1d"})
    with pytest.raises(DataError) as err:
        build_frame(load_spec(_write(tmp_path, spec)))
    assert "features.2.of" in str(err.value) and "VARCHAR" in str(err.value)
    assert "Expected a number" in str(err.value)


def test_naive_and_aware_mix(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE, tz="UTC")  # orders aware, disputes naive
    with pytest.raises(DataError) as err:
        build_frame(load_spec(path))
    text = str(err.value)
    assert "mix time-zone aware and naive" in text
    assert "sources.orders.event_time" in text and "sources.disputes.event_time" in text


def test_missing_file(tmp_path: Path) -> None:
    path = _write(tmp_path, BASE)
    (tmp_path / "orders.parquet").unlink()
    with pytest.raises(DataError) as err:
        build_frame(load_spec(path))
    assert "sources.orders.path" in str(err.value) and "does not exist" in str(err.value)


def test_yaml_syntax_error_has_line(tmp_path: Path) -> None:
    path = tmp_path / "valuechain.yaml"
    path.write_text("project:\n  name: x\n decision: [\n")
    with pytest.raises(SpecError) as err:
        load_spec(path)
    assert "line 3" in str(err.value) and "not valid YAML" in str(err.value)


def test_window_function_in_row_expression(tmp_path: Path) -> None:
    spec = _with(features__0__expr="amount - avg(amount) OVER ()")
    with pytest.raises(SpecError) as err:
        build_frame(load_spec(_write(tmp_path, spec)))
    assert "window function" in str(err.value)


def test_cli_prints_one_paragraph_and_exits_2(tmp_path: Path) -> None:
    path = _write(tmp_path, _with(decision_points__source="ordrs"))
    result = CliRunner().invoke(app, ["build", "--spec", str(path)])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert "unknown source 'ordrs'" in result.output
    as_json = CliRunner().invoke(app, ["build", "--spec", str(path), "--json"])
    assert as_json.exit_code == 2 and '"type": "SpecError"' in as_json.output


def test_schema_command_prints_json_schema() -> None:
    result = CliRunner().invoke(app, ["schema"])
    assert result.exit_code == 0
    assert '"decision_points"' in result.output and '"horizon"' in result.output


def test_on_is_a_key_not_a_boolean(tmp_path: Path) -> None:
    spec = _with()
    spec["features"].append({"name": "tier", "lookup": {"source": "orders", "key": "customer",
                                                        "on": "customer", "column": "amount"}})
    path = _write(tmp_path, spec)
    text = path.read_text().replace("'on':", "on:")
    path.write_text(text)
    assert "  on: customer" in text
    loaded = load_spec(path)
    assert loaded.spec.features[2].lookup.on == "customer"  # type: ignore[union-attr]


def test_row_feature_fill_replaces_nulls(tmp_path: Path) -> None:
    spec = _with(features__0__expr="CASE WHEN amount > 4 THEN amount END")
    spec["features"][0]["fill"] = -1.0
    frame = build_frame(load_spec(_write(tmp_path, spec)), as_of=datetime(2030, 1, 1)).frame
    values = pq.read_table(frame).column("amount").to_pylist()
    assert -1.0 in values and None not in values


def test_decision_source_cannot_be_known_later(tmp_path: Path) -> None:
    spec = _with()
    spec["sources"]["orders"]["available_at"] = "ts"
    with pytest.raises(SpecError) as err:
        load_spec(_write(tmp_path, spec))
    assert "sources.orders.available_at" in str(err.value) and "Remove it" in str(err.value)
