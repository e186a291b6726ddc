"""Spec expressions: parsing, refusals, column checks, quoting, evaluation kinds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from valuechain.errors import DataError, SpecError
from valuechain.expressions import Expression, evaluate, parse_expression
from valuechain.sql import quote_ident, quote_literal

WHERE = "valuechain.yaml, line 88, field `value.costs.false_negative`"


def test_columns_are_collected_and_sql_translates() -> None:
    expr = parse_expression("CASE WHEN hour(ts) < 6 THEN amount ELSE 0 END", where=WHERE)
    assert isinstance(expr, Expression)
    assert expr.columns == frozenset({"ts", "amount"})
    assert expr.sql("duckdb") == "CASE WHEN HOUR(ts) < 6 THEN amount ELSE 0 END"
    assert "HOUR(ts)" in expr.sql("spark")
    assert expr == parse_expression("CASE WHEN hour(ts) < 6 THEN amount ELSE 0 END", where="x")


@pytest.mark.parametrize(("text", "needle"), [
    ("sum(amount) OVER (PARTITION BY card ORDER BY ts)", "window function (OVER)"),
    ("lag(amount) OVER (ORDER BY ts)", "window function (OVER)"),
    ("sum(amount)", "aggregate function"),
    ("count(*)", "aggregate function"),
    ("amount > (SELECT avg(amount) FROM tx)", "subquery"),
    ("amount IN (SELECT 1)", "subquery"),
    ("SELECT 1", "SELECT"),
    ("1; DROP TABLE tx", "several statements"),
    ("tx.amount * 2", "table prefix"),
    ("amount >", "not a valid SQL expression"),
    ("   ", "empty"),
])
def test_non_row_level_expressions_are_refused_naming_the_field(text: str, needle: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_expression(text, where=WHERE)
    message = str(err.value)
    assert message.startswith(WHERE + ":"), message
    assert needle in message, message


def test_unknown_column_is_named_with_the_available_ones() -> None:
    frame = pd.DataFrame({"amount": [1.0], "channel": ["web"]})
    with pytest.raises(SpecError) as err:
        evaluate("amout * 2 + chanel_fee", frame, where=WHERE)
    message = str(err.value)
    assert message.startswith(WHERE)
    assert "'amout'" in message and "'chanel_fee'" in message
    assert "['amount', 'channel']" in message
    assert "decision_points.keep" in message


def test_type_errors_become_spec_errors_not_duckdb_errors() -> None:
    frame = pd.DataFrame({"channel": ["web", "app"]})
    with pytest.raises(SpecError) as err:
        evaluate("channel * 2", frame, where=WHERE)
    assert str(err.value).startswith(WHERE)
    assert "cannot be computed over the frame" in str(err.value)


def test_odd_column_names_are_quoted_and_read() -> None:
    frame = pa.table({"o'dd \"col\"": [1.0, 2.0], "select": [10.0, 20.0]})
    expr = parse_expression('"o\'dd ""col""" + "select"', where=WHERE)
    assert expr.columns == frozenset({"o'dd \"col\"", "select"})
    assert evaluate(expr, frame, where=WHERE).tolist() == [11.0, 22.0]


def test_float_keeps_nulls_and_bool_maps_null_to_false() -> None:
    frame = pd.DataFrame({"amount": [600.0, None, 10.0], "abroad": [0, 1, None]})
    costs = evaluate("amount * 0.1", frame, where=WHERE)
    assert costs.dtype == np.float64
    assert costs[0] == pytest.approx(60.0) and np.isnan(costs[1]) and costs[2] == 1.0
    costs[1] = 0.0  # callers may write into the result
    rule = evaluate("amount > 500 OR abroad = 1", frame, where=WHERE, kind="bool")
    assert rule.dtype == np.bool_
    assert rule.tolist() == [True, True, False]
    nulls = evaluate("amount > 500", frame, where=WHERE, kind="bool")
    assert nulls.tolist() == [True, False, False]  # null -> False


def test_columns_match_case_insensitively_as_duckdb_binds_them() -> None:
    frame = pd.DataFrame({"Amount": [2.0, 3.0]})
    assert evaluate("amount * 2", frame, where=WHERE).tolist() == [4.0, 6.0]


def test_result_has_one_value_per_row_in_order() -> None:
    frame = pd.DataFrame({"x": np.arange(5_000, dtype=float)})
    assert np.array_equal(evaluate("x + 1", frame, where=WHERE), np.arange(5_000) + 1.0)
    assert len(evaluate("x > 1", frame.iloc[:0], where=WHERE, kind="bool")) == 0


def test_quoting() -> None:
    assert quote_ident('a "b"') == '"a ""b"""'
    assert quote_literal("/d/o'brien/x.parquet") == "'/d/o''brien/x.parquet'"
    with pytest.raises(SpecError, match="NUL"):
        quote_ident("a\x00b")
    with pytest.raises(DataError, match="NUL"):
        quote_literal("/tmp/a\x00b")
