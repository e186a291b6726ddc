"""Spec expressions: parsed once, checked, translated per engine, evaluated locally.

A spec carries small SQL expressions: row features (``features[*].expr``), window filters
(``features[*].where``), costs (``value.costs``) and today's rule
(``value.baseline_policy``). They are written in DuckDB's SQL dialect and are *row-level*:
each is a function of one row's columns. This module is the only place that reads them.

* :func:`parse_expression` parses the text once with `sqlglot <https://sqlglot.com>`_ and
  refuses, with a :class:`~valuechain.errors.SpecError` naming the spec field, anything that
  is not row-level: window functions (``OVER``), aggregates (``sum(x)``), subqueries,
  statements, table-qualified columns.
* :class:`Expression` knows the columns it reads (``columns``) and gives its SQL in any
  dialect sqlglot knows (``sql("duckdb")``, ``sql("spark")``); an engine translates, never
  pastes the user's text. The parsed tree (``tree``) is there for engines that interpret it.
* :func:`evaluate` computes an expression over an in-memory frame (pandas or Arrow) through
  DuckDB, checking the columns first so that an unknown column is named together with the
  columns that do exist; it never lets a raw DuckDB error through.

>>> import pandas as pd
>>> expr = parse_expression("amount * 0.02 + 1.5", where="valuechain.yaml, field `cost`")
>>> sorted(expr.columns), expr.sql("duckdb")
(['amount'], 'amount * 0.02 + 1.5')
>>> evaluate(expr, pd.DataFrame({"amount": [100.0, None]}), where="cost").tolist()
[3.5, nan]
>>> evaluate("amount > 50", pd.DataFrame({"amount": [100.0, None]}), where="rule",
...          kind="bool").tolist()
[True, False]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError

from valuechain.errors import SpecError
from valuechain.sql import connect, quote_ident
from valuechain.threads import threads

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "DIALECT",
    "Expression",
    "evaluate",
    "missing_columns",
    "parse_expression",
    "require_columns",
]

DIALECT = "duckdb"
"""The dialect spec expressions are written in."""

_NOT_ROW_LEVEL: tuple[tuple[type[Any], str], ...] = (
    (exp.Window, "a window function (OVER), which would see other rows, including later "
                 "ones; use an aggregate feature (`aggregate:`, `key:`, `window:`) instead"),
    (exp.AggFunc, "an aggregate function, which combines rows; use an aggregate feature "
                  "(`aggregate:`, `key:`, `window:`) instead"),
    (exp.Query, "a subquery or SELECT; write an expression over the row's own columns"),
    (exp.Subquery, "a subquery; write an expression over the row's own columns"),
    (exp.Block, "several statements; write one expression"),
    (exp.Command, "a statement; write one expression"),
    (exp.DDL, "a statement; write one expression"),
    (exp.DML, "a statement; write one expression"),
    (exp.Star, "`*`; name the columns"),
)


@dataclass(frozen=True)
class Expression:
    """A parsed, row-level spec expression.

    Attributes
    ----------
    text : str
        The expression as written in the spec.
    columns : frozenset of str
        The column names it references, as written.
    tree : sqlglot.exp.Expression
        The parsed tree (for engines that interpret expressions rather than run SQL).

    Examples
    --------
    >>> e = parse_expression("CAST(hour(ts) < 6 AS INTEGER)", where="f")
    >>> sorted(e.columns)
    ['ts']
    >>> e.sql("spark")
    'CAST(HOUR(ts) < 6 AS INT)'
    """

    text: str
    columns: frozenset[str]
    tree: exp.Expression = field(compare=False, repr=False, hash=False)

    def sql(self, dialect: str = DIALECT) -> str:
        """The expression in ``dialect`` (any dialect sqlglot supports)."""
        return _render(self.tree, dialect)


def _render(tree: exp.Expression, dialect: str) -> str:
    return tree.sql(dialect=dialect)


@lru_cache(maxsize=1024)
def _parse(text: str) -> exp.Expression:
    tree: Any = sqlglot.parse_one(text, dialect=DIALECT)
    return tree  # type: ignore[no-any-return]


def parse_expression(text: str, *, where: str) -> Expression:
    """Parse ``text`` as a row-level expression in DuckDB's SQL dialect.

    Parameters
    ----------
    text : str
        The expression, e.g. ``"amount > 500 OR ships_abroad = 1"``.
    where : str
        Where it comes from, for error messages, e.g.
        ``"valuechain.yaml, line 88, field `value.costs.false_negative`"``.

    Returns
    -------
    Expression

    Raises
    ------
    SpecError
        On a syntax error, a window function, an aggregate, a subquery, a statement or a
        table-qualified column; the message starts with ``where``.

    Examples
    --------
    >>> parse_expression("sum(amount) OVER (PARTITION BY card)", where="features[3].expr")
    Traceback (most recent call last):
    ...
    valuechain.errors.SpecError: features[3].expr: `sum(amount) OVER (PARTITION BY card)` uses a window function (OVER), ...
    """
    if not isinstance(text, str) or not text.strip():
        raise SpecError(f"{where}: the expression is empty. Write a SQL expression over the "
                        "row's columns, e.g. `amount > 500`.")
    try:
        tree = _parse(text)
    except (ParseError, SqlglotError) as err:
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise SpecError(
            f"{where}: `{text}` is not a valid SQL expression ({reason}). Write a DuckDB SQL "
            "expression over the row's columns, e.g. `amount > 500 AND channel = 'web'`."
        ) from None
    if tree is None:
        raise SpecError(f"{where}: `{text}` holds no expression.")
    for node in tree.walk():
        for kind, why in _NOT_ROW_LEVEL:
            if isinstance(node, kind):
                raise SpecError(f"{where}: `{text}` uses {why}.")
    columns: set[str] = set()
    for column in tree.find_all(exp.Column):
        if column.table:
            raise SpecError(
                f"{where}: `{text}` names the column '{column.sql(DIALECT)}' with a table "
                f"prefix. Write the column alone: {quote_ident(column.name)}."
            )
        columns.add(column.name)
    return Expression(text=text, columns=frozenset(columns), tree=tree)


def _column_names(frame: pd.DataFrame | pa.Table) -> list[str]:
    if isinstance(frame, pa.Table):
        return list(frame.column_names)
    return [str(c) for c in frame.columns]


def missing_columns(expr: Expression, available: list[str] | tuple[str, ...]) -> list[str]:
    """Columns ``expr`` reads that ``available`` lacks (DuckDB binds case-insensitively)."""
    exact = set(available)
    folded = {c.lower() for c in available}
    return sorted(c for c in expr.columns if c not in exact and c.lower() not in folded)


def require_columns(expr: Expression, available: list[str] | tuple[str, ...], *, where: str,
                    rows: str = "the frame", fix: str = "Fix the name.") -> None:
    """SpecError naming ``where``, the missing columns and ``available`` when ``expr`` reads
    a column that ``rows`` do not have.

    >>> require_columns(parse_expression("amout", where="cost"), ["amount"], where="cost")
    Traceback (most recent call last):
    ...
    valuechain.errors.SpecError: cost: `amout` uses column 'amout', which is not in the frame. Available columns: ['amount']. Fix the name.
    """
    missing = missing_columns(expr, available)
    if missing:
        listed = ", ".join(f"'{c}'" for c in missing)
        many = len(missing) > 1
        raise SpecError(
            f"{where}: `{expr.text}` uses column{'s' if many else ''} {listed}, which "
            f"{'are' if many else 'is'} not in {rows}. Available columns: "
            f"{sorted(available)}. {fix}"
        )


def evaluate(
    expr: str | Expression,
    frame: pd.DataFrame | pa.Table,
    *,
    where: str,
    kind: Literal["float", "bool"] = "float",
) -> np.ndarray:
    """Evaluate ``expr`` on every row of ``frame`` (locally, with DuckDB).

    Parameters
    ----------
    expr : str or Expression
        The expression (parsed here when given as text).
    frame : pandas.DataFrame or pyarrow.Table
        The rows; the expression's columns must be among its columns.
    where : str
        The spec field, for error messages.
    kind : {"float", "bool"}
        ``"float"``: a float64 array, null as NaN (callers decide what a null means).
        ``"bool"``: a bool array, null as False.

    Returns
    -------
    numpy.ndarray
        One value per row of ``frame``, in its order.

    Raises
    ------
    SpecError
        When a column is unknown (naming it and the available columns), or the expression
        cannot be computed over the frame (e.g. a type error); never a raw DuckDB error.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"amount": [10.0, 900.0], "country": ["FR", "US"]})
    >>> evaluate("amount > 500 OR country = 'FR'", frame, where="rule", kind="bool").tolist()
    [True, True]
    >>> evaluate("amout * 2", frame, where="cost")
    Traceback (most recent call last):
    ...
    valuechain.errors.SpecError: cost: `amout * 2` uses column 'amout', which is not in the frame. Available columns: ['amount', 'country']. ...
    """
    parsed = expr if isinstance(expr, Expression) else parse_expression(expr, where=where)
    names = _column_names(frame)
    require_columns(parsed, names, where=where,
                    fix="Fix the name, or keep the column in the frame (`decision_points.keep`).")
    target = "DOUBLE" if kind == "float" else "BOOLEAN"
    body = f"CAST(({parsed.sql(DIALECT)}) AS {target})"
    if kind == "bool":
        body = f"coalesce({body}, false)"
    con = connect()
    try:
        con.execute(f"SET threads = {threads()}")
        con.register("__frame", frame)
        result = con.sql(f"SELECT {body} AS v FROM __frame").to_arrow_table()
    except duckdb.Error as err:
        raise SpecError(
            f"{where}: `{parsed.text}` cannot be computed over the frame: "
            f"{str(err).splitlines()[0]}. Expected a row-level SQL expression giving a "
            f"{'number' if kind == 'float' else 'boolean'} over the columns {names}."
        ) from None
    finally:
        con.close()
    column = result.column(0)
    if len(column) != _rows(frame):  # cannot happen for a row-level expression
        raise SpecError(f"{where}: `{parsed.text}` gave {len(column)} rows for {_rows(frame)}.")
    if kind == "bool":
        return np.array(column.to_numpy(zero_copy_only=False), dtype=bool)
    values = pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
    return np.array(values, dtype=np.float64)  # a writable copy


def _rows(frame: pd.DataFrame | pa.Table) -> int:
    return frame.num_rows if isinstance(frame, pa.Table) else len(frame)
