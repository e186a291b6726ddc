"""Row expressions evaluated on one event in Python, with DuckDB's semantics.

The offline build computes row features and window filters with DuckDB
(:mod:`valuechain.expressions`). Online, one event at a time, starting DuckDB per event costs
about a millisecond, so :func:`compile_expression` turns the parsed tree into Python closures
for the operators whose DuckDB semantics are simple and known (arithmetic, comparisons,
three-valued AND/OR/NOT, IS NULL, IN, CASE, coalesce, CAST to numbers and booleans, abs, ln,
sqrt, exp, and the hour, minute, day, month, year and day of week of a naive time). Any other node makes the whole expression run through DuckDB on a one-row
table instead (:class:`DuckDBRow`), so every expression the build accepts is computed, only
slower. Parity (:mod:`valuechain.serve.parity`) compares both paths with the build.

>>> from valuechain.expressions import parse_expression
>>> f = compile_expression(parse_expression("CAST(amount > 100 AS INTEGER) + ln(1)", where="x"))
>>> f({"amount": 150.0}), f({"amount": None})
(1.0, None)
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa
from sqlglot import exp

from valuechain.errors import DataError
from valuechain.expressions import DIALECT, Expression
from valuechain.sql import connect

__all__ = ["DuckDBRow", "RowFunction", "compile_expression"]

RowFunction = Callable[[Mapping[str, Any]], Any]


class _Unsupported(Exception):
    pass


def _null_safe(fn: Callable[[Any, Any], Any]) -> Callable[[Any, Any], Any]:
    def wrapped(a: Any, b: Any) -> Any:
        return None if a is None or b is None else fn(a, b)

    return wrapped


def _div(a: Any, b: Any) -> Any:
    if b == 0:
        return math.nan if a == 0 or a != a else math.copysign(math.inf, a) * (
            math.copysign(1.0, b))
    return a / b


def _ln(a: Any) -> Any:
    if a is None:
        return None
    if a == 0:
        return -math.inf
    if a < 0 or a != a:
        return math.nan
    return math.log(a)


def _sqrt(a: Any) -> Any:
    if a is None:
        return None
    return math.nan if a < 0 else math.sqrt(a)


def _to_int(a: Any) -> Any:
    if a is None:
        return None
    if isinstance(a, bool):
        return int(a)
    if isinstance(a, float):
        if a != a or a in (math.inf, -math.inf):
            raise _RuntimeUnsupported
        return round(a)  # a DOUBLE rounds half to even in DuckDB, as Python's round
    if isinstance(a, int):
        return a
    raise _RuntimeUnsupported


def _to_float(a: Any) -> Any:
    if a is None:
        return None
    if isinstance(a, bool | int | float):
        return float(a)
    raise _RuntimeUnsupported


def _to_bool(a: Any) -> Any:
    if a is None:
        return None
    if isinstance(a, bool | int | float):
        return bool(a)
    raise _RuntimeUnsupported


class _RuntimeUnsupported(Exception):
    """A value the compiled form does not handle (e.g. casting text): use DuckDB."""


_BINARY: dict[type[exp.Expression], Callable[[Any, Any], Any]] = {
    exp.Add: _null_safe(lambda a, b: a + b),
    exp.Sub: _null_safe(lambda a, b: a - b),
    exp.Mul: _null_safe(lambda a, b: a * b),
    exp.Div: _null_safe(_div),
    exp.GT: _null_safe(lambda a, b: a > b),
    exp.GTE: _null_safe(lambda a, b: a >= b),
    exp.LT: _null_safe(lambda a, b: a < b),
    exp.LTE: _null_safe(lambda a, b: a <= b),
    exp.EQ: _null_safe(lambda a, b: a == b),
    exp.NEQ: _null_safe(lambda a, b: a != b),
}
_UNARY: dict[type[exp.Expression], Callable[[Any], Any]] = {
    exp.Abs: lambda a: None if a is None else abs(a),
    exp.Ln: _ln,
    exp.Sqrt: _sqrt,
    exp.Exp: lambda a: None if a is None else math.exp(a),
    exp.Neg: lambda a: None if a is None else -a,
}
_DATE_PARTS: dict[type[exp.Expression], Callable[[datetime], int]] = {
    exp.Hour: lambda d: d.hour,
    exp.Minute: lambda d: d.minute,
    exp.Day: lambda d: d.day,
    exp.Month: lambda d: d.month,
    exp.Year: lambda d: d.year,
    exp.DayOfWeekIso: lambda d: d.isoweekday(),  # Monday 1 .. Sunday 7
    exp.DayOfWeek: lambda d: d.isoweekday() % 7,  # Sunday 0 .. Saturday 6
}
_CASTS: dict[str, Callable[[Any], Any]] = {
    "INT": _to_int, "BIGINT": _to_int, "SMALLINT": _to_int, "TINYINT": _to_int,
    "DOUBLE": _to_float, "FLOAT": _to_float, "BOOLEAN": _to_bool,
}


def _compile(node: exp.Expression) -> RowFunction:
    if isinstance(node, exp.Paren):
        return _compile(node.this)
    if isinstance(node, exp.Column):
        name = node.name
        return lambda row: row[name]
    if isinstance(node, exp.Literal):
        if node.is_string:
            text = node.this
            return lambda row: text
        raw = str(node.this)
        number: Any = float(raw) if any(c in raw for c in ".eE") else int(raw)
        return lambda row: number
    if isinstance(node, exp.Boolean):
        flag = bool(node.this)
        return lambda row: flag
    if isinstance(node, exp.Null):
        return lambda row: None
    if type(node) in _BINARY:
        fn, left, right = _BINARY[type(node)], _compile(node.this), _compile(node.expression)
        return lambda row: fn(left(row), right(row))
    if type(node) in _UNARY:
        one, inner = _UNARY[type(node)], _compile(node.this)
        return lambda row: one(inner(row))
    if isinstance(node, exp.And):
        left, right = _compile(node.this), _compile(node.expression)

        def and_(row: Mapping[str, Any]) -> Any:
            a, b = left(row), right(row)
            if a is False or b is False:
                return False
            return None if a is None or b is None else bool(a and b)

        return and_
    if isinstance(node, exp.Or):
        left, right = _compile(node.this), _compile(node.expression)

        def or_(row: Mapping[str, Any]) -> Any:
            a, b = left(row), right(row)
            if a is True or b is True:
                return True
            return None if a is None or b is None else bool(a or b)

        return or_
    if isinstance(node, exp.Not):
        inner = _compile(node.this)
        return lambda row: None if (v := inner(row)) is None else not v
    if isinstance(node, exp.Is) and isinstance(node.expression, exp.Null):
        inner = _compile(node.this)
        return lambda row: inner(row) is None
    if isinstance(node, exp.Case) and node.this is None:
        branches = [(_compile(b.this), _compile(b.args["true"]))
                    for b in node.args.get("ifs") or []]
        default = node.args.get("default")
        otherwise = _compile(default) if default is not None else (lambda row: None)

        def case(row: Mapping[str, Any]) -> Any:
            for test, value in branches:
                if test(row) is True:
                    return value(row)
            return otherwise(row)

        return case
    if isinstance(node, exp.Coalesce):
        parts = [_compile(p) for p in (node.this, *node.expressions)]

        def coalesce(row: Mapping[str, Any]) -> Any:
            for part in parts:
                value = part(row)
                if value is not None:
                    return value
            return None

        return coalesce
    if isinstance(node, exp.In) and not node.args.get("query") and node.expressions:
        inner = _compile(node.this)
        options = [_compile(e) for e in node.expressions]

        def in_(row: Mapping[str, Any]) -> Any:
            value = inner(row)
            if value is None:
                return None
            candidates = [o(row) for o in options]
            if value in [c for c in candidates if c is not None]:
                return True
            return None if any(c is None for c in candidates) else False

        return in_
    if isinstance(node, exp.Cast) and not isinstance(node, exp.TryCast):
        target = node.to.this.name if hasattr(node.to.this, "name") else str(node.to.this)
        if target not in _CASTS:
            raise _Unsupported(target)
        cast, inner = _CASTS[target], _compile(node.this)
        return lambda row: cast(inner(row))
    if type(node) in _DATE_PARTS:
        part, inner = _DATE_PARTS[type(node)], _compile(node.this)

        def date_part(row: Mapping[str, Any]) -> Any:
            value = inner(row)
            if value is None:
                return None
            if not isinstance(value, datetime) or value.tzinfo is not None:
                raise _RuntimeUnsupported  # aware times: DuckDB's session time zone decides
            return part(value)

        return date_part
    raise _Unsupported(node.key)


class DuckDBRow:
    """An expression computed by DuckDB on a one-row table (exact, about 1 ms)."""

    def __init__(self, expr: Expression, types: Mapping[str, pa.DataType] | None = None):
        self.expr = expr
        self.types = dict(types or {})
        self._sql = f"SELECT ({expr.sql(DIALECT)}) AS v FROM __row"
        self._con: duckdb.DuckDBPyConnection | None = None
        self._lock = threading.Lock()  # one DuckDB connection is not for concurrent use

    def __call__(self, row: Mapping[str, Any]) -> Any:
        with self._lock:
            return self._run(row)

    def _run(self, row: Mapping[str, Any]) -> Any:
        if self._con is None:
            self._con = connect()
            self._con.execute("SET threads = 1")
        columns = {}
        for name in self.expr.columns:
            kind = self.types.get(name)
            columns[name] = pa.array([row[name]], kind) if kind is not None else pa.array(
                [row[name]])
        table = pa.table(columns) if columns else pa.table({"__one": [1]})
        self._con.register("__row", table)
        try:
            found = self._con.execute(self._sql).fetchall()
        except duckdb.Error as err:
            raise DataError(
                f"`{self.expr.text}` cannot be computed for this event: "
                f"{str(err).splitlines()[0]}. Check the event's values."
            ) from None
        finally:
            self._con.unregister("__row")
        return found[0][0] if found else None


def compile_expression(expr: Expression,
                       types: Mapping[str, pa.DataType] | None = None) -> RowFunction:
    """A function of one row (a mapping of column values) computing ``expr`` as DuckDB does.

    Compiled to Python closures when every node is one whose semantics are reproduced here;
    otherwise (or for a value the compiled form does not handle, e.g. casting text) the
    expression runs through DuckDB (:class:`DuckDBRow`) with the column ``types`` given.
    """
    slow = DuckDBRow(expr, types)
    try:
        fast = _compile(expr.tree)
    except _Unsupported:
        return slow

    def run(row: Mapping[str, Any]) -> Any:
        try:
            return fast(row)
        except (_RuntimeUnsupported, TypeError, OverflowError):
            return slow(row)

    return run
