"""The one copy of SQL quoting (identifiers and string literals) and of opening DuckDB.

Every SQL statement valuechain builds pastes names (columns, views) and paths (source files)
through these two functions, so a column called ``my "col"`` or a file under a folder named
``o'brien`` is read as data, never as SQL. User *expressions* are not quoted here: they are
parsed and translated by :mod:`valuechain.expressions`.

>>> quote_ident('amount')
'"amount"'
>>> quote_ident('my "odd" col')
'"my ""odd"" col"'
>>> quote_literal("/data/o'brien/tx.parquet")
"'/data/o''brien/tx.parquet'"
"""

from __future__ import annotations

import os
from os import PathLike
from typing import Any

import duckdb

from valuechain.errors import DataError, SpecError

__all__ = ["connect", "quote_ident", "quote_literal"]


def connect(**config: Any) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection as valuechain uses it: no progress bar (DuckDB prints
    it on stdout for long queries, which would break ``--json`` output), ``config`` added.

    >>> connect().execute("SELECT current_setting('enable_progress_bar')").fetchone()
    (False,)
    """
    con = duckdb.connect(config=config) if config else duckdb.connect()
    con.execute("SET enable_progress_bar = false")  # a session option, not a global one
    return con


def quote_ident(name: str) -> str:
    """``name`` as a double-quoted SQL identifier (embedded quotes doubled).

    Parameters
    ----------
    name : str
        A column, table or view name, taken literally (case kept).

    Returns
    -------
    str
        The quoted identifier, safe to paste into DuckDB (or ANSI) SQL.

    Examples
    --------
    >>> quote_ident("TX_AMOUNT")
    '"TX_AMOUNT"'
    """
    if "\x00" in name:
        raise SpecError(f"the name {name!r} contains a NUL character, which no SQL identifier "
                        "can hold. Rename the column or field.")
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str | PathLike[str]) -> str:
    """``text`` (a string or a path) as a single-quoted SQL string literal.

    Parameters
    ----------
    text : str or os.PathLike
        The value, e.g. a file path; paths are converted with ``os.fspath``.

    Returns
    -------
    str
        The literal with embedded single quotes doubled.

    Examples
    --------
    >>> quote_literal("it's")
    "'it''s'"
    >>> from pathlib import PurePosixPath
    >>> quote_literal(PurePosixPath("/tmp/a b/x.csv"))
    "'/tmp/a b/x.csv'"
    """
    value = os.fspath(text)
    if "\x00" in value:
        raise DataError(f"{value!r} contains a NUL character, which no SQL string can hold. "
                        "Rename the file or folder.")
    return "'" + value.replace("'", "''") + "'"
