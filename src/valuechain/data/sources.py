"""Sources as DuckDB views, with column checks, time handling and fingerprints.

A :class:`Catalog` opens each source named in the spec once (Parquet, CSV or a DuckDB
table) as a view ``src_<name>`` and answers questions about it. Every error names the spec
field, the file and the column, says what was expected and how to fix it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from valuechain.data.plan import Locator, Plan, SourceRef, locator, source_refs
from valuechain.errors import DataError, SpecError
from valuechain.spec.loader import LoadedSpec
from valuechain.sql import connect, quote_ident, quote_literal

__all__ = ["Catalog", "SourceInfo", "datetime_to_us", "fingerprint", "us_to_datetime"]

_TIME_TYPES = ("TIMESTAMP", "TIMESTAMP WITH TIME ZONE", "DATE", "TIMESTAMP_NS", "TIMESTAMP_MS",
               "TIMESTAMP_S")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_INTEGERS = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
             "UINTEGER", "UBIGINT")
# (unit, values per second, DuckDB conversion to microseconds inside make_timestamp)
_EPOCH_UNITS = (("seconds", 1, " * 1000000"), ("milliseconds", 1_000, " * 1000"),
                ("microseconds", 1_000_000, ""), ("nanoseconds", 1_000_000_000, " // 1000"))
_PANDAS_UNIT = {"seconds": "s", "milliseconds": "ms", "microseconds": "us",
                "nanoseconds": "ns"}
# A time of day followed by a UTC offset ('Z', '+02:00', '-0530', '+01', 'UTC').
_OFFSET = r"\d{2}:\d{2}(:\d{2}(\.\d+)?)?\s*(Z|z|UTC|[+-]\d{2}(:?\d{2})?)$"


def datetime_to_us(value: datetime) -> int:
    """Microseconds since the epoch: a UTC instant if aware, wall-clock if naive."""
    aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
    delta = aware - _EPOCH
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def us_to_datetime(us: int, aware: bool) -> datetime:
    """Inverse of :func:`datetime_to_us` (aware results are in UTC)."""
    from datetime import timedelta

    value = _EPOCH + timedelta(microseconds=us)
    return value if aware else value.replace(tzinfo=None)


def fingerprint(paths: Iterable[Path]) -> str:
    """Content hash of files (blake2b over their bytes, in path order)."""
    digest = hashlib.blake2b(digest_size=16)
    for path in sorted(paths):
        digest.update(path.name.encode())
        with path.open("rb") as handle:
            while chunk := handle.read(1 << 22):
                digest.update(chunk)
    return digest.hexdigest()


@dataclass(frozen=True)
class SourceInfo:
    """What the lineage manifest records about one source."""

    name: str
    path: str
    format: str
    rows: int
    time_column: str | None
    min_time: str | None
    max_time: str | None
    fingerprint: str



def _example(pattern: str) -> str:
    """``pattern`` applied to 2025-03-01 14:05:00, e.g. '%Y%m%d' -> '20250301'."""
    try:
        return repr(datetime(2025, 3, 1, 14, 5).strftime(pattern))
    except ValueError:  # pragma: no cover - strftime accepts almost anything
        return repr(pattern)


def _looks_like_a_value(name: str) -> bool:
    """Whether a CSV column name reads as a number or a date (a data row taken as header)."""
    text = name.strip()
    try:
        float(text.replace(",", "."))
        return True
    except ValueError:
        pass
    try:
        datetime.fromisoformat(text)
        return len(text) >= 8
    except ValueError:
        return False


class Catalog:
    """The sources of a spec (or of a :class:`~valuechain.data.plan.Plan`), opened in one
    DuckDB connection as views ``src_<name>``."""

    def __init__(
        self,
        loaded: LoadedSpec | Plan,
        con: duckdb.DuckDBPyConnection | None = None,
        open_all: bool = True,
    ) -> None:
        if isinstance(loaded, Plan):
            self.sources: Mapping[str, SourceRef] = loaded.sources
            self.locator: Locator = loaded.locator
            self._own = loaded.own
        else:
            self.sources = source_refs(loaded)
            self.locator = locator(loaded)
            self._own = loaded.spec.event_source
        self.con = con or connect()
        self.con.execute("SET enable_progress_bar = false")
        # Text with an offset converts to a UTC instant whatever the machine's time zone.
        self.con.execute("SET TimeZone = 'UTC'")
        self._types: dict[str, dict[str, str]] = {}
        self._files: dict[str, list[Path]] = {}
        if open_all:
            for name in self.sources:
                self.open(name)

    def where(self, *loc: str | int) -> str:
        return self.locator.where(*loc)

    # -- opening ---------------------------------------------------------------------------
    def open(self, name: str) -> None:
        """Open source ``name`` as view ``src_<name>``; DataError if it cannot be read."""
        if name in self._types:
            return
        src = self.sources[name]
        where = self.where("sources", name, "path")
        fmt, path = src.format, src.path
        if src.date_only and name == self._own:
            raise SpecError(
                f"{self.where('sources', name, 'date_only')}: '{name}' is the decision "
                "source, whose rows are decisions at their own time; a date-only time does "
                "not say when in the day the decision was taken. Expected timestamps on the "
                "decision source; decide on a schedule (`decision_points.schedule`) over "
                "date-only data, or remove `date_only`.")
        if src.columns is not None and fmt not in ("csv", "text"):
            raise SpecError(f"{self.where('sources', name, 'columns')}: `columns` names the "
                            f"fields of a headerless csv or text file; '{name}' is read as "
                            f"{fmt}. Remove `columns` or set `format: text` (or csv).")
        if path is not None and not path.exists():
            raise DataError(
                f"{where}: source '{name}' points to {path}, which does not exist. Fix `path` "
                "(relative to the spec file) or create the data"
                + (" (`valuechain generate fraud --out DIR`)." if "data" in str(src.written)
                   else ".")
            )
        view = f"src_{name}"
        try:
            if fmt == "parquet":
                assert path is not None
                files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
                if not files:
                    raise DataError(f"{where}: directory {path} holds no .parquet files.")
                self._files[name] = files
                listing = ", ".join(quote_literal(f) for f in files)
                self.con.execute(f"CREATE VIEW {quote_ident(view)} AS SELECT * FROM "
                                 f"read_parquet([{listing}])")
            elif fmt == "csv":
                assert path is not None
                self._files[name] = [path]
                self.con.execute(f"CREATE VIEW {quote_ident(view)} AS SELECT * FROM "
                                 f"{self._csv_call(name)}")
            elif fmt == "text":
                assert path is not None
                self._files[name] = [path]
                self._open_text(name)
            else:
                if path is None or src.table is None:
                    raise DataError(
                        f"{self.where('sources', name)}: a DuckDB source needs both "
                        "`path` (the database file) and `table`."
                    )
                self._files[name] = [path]
                alias = f"db_{name}"
                self.con.execute(f"ATTACH {quote_literal(path)} AS {quote_ident(alias)} "
                                 "(READ_ONLY)")
                self.con.execute(
                    f"CREATE VIEW {quote_ident(view)} AS SELECT * FROM "
                    f"{quote_ident(alias)}.{quote_ident(src.table)}"
                )
            described = self.con.execute(f"DESCRIBE {quote_ident(view)}").fetchall()
        except duckdb.Error as err:
            raise DataError(
                f"{where}: could not read source '{name}' ({path}) as {fmt}: "
                f"{str(err).splitlines()[0]}. Check the file and `format`."
            ) from None
        self._types[name] = {row[0]: str(row[1]) for row in described}
        if fmt == "csv":
            if src.columns is None:
                self._check_header(name)
            self._csv_offsets(name)
        if src.time_format is not None or src.date_only:
            self._derive_times(name)

    # -- text, headerless files and written times ----------------------------------------
    def _header_skip(self, name: str) -> int:
        """Lines to skip before the data: 1 when the file has a header row (always without
        `columns`; with `columns`, when the first line repeats those names)."""
        src = self.sources[name]
        if src.columns is None:
            return 1
        first = self._first_line(name)
        sep = "," if src.format == "csv" else None
        tokens = [t.strip().strip('"').lower() for t in first.split(sep)]
        return int(tokens == [c.lower() for c in src.columns])

    def _first_line(self, name: str) -> str:
        with self._files[name][0].open(encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.strip():
                    return line.strip()
        return ""

    def _csv_call(self, name: str, all_varchar: bool = False,
                  types: Mapping[str, str] | None = None) -> str:
        """``read_csv(...)`` of a CSV source: with a header row, or named by `columns`;
        time columns with a `time_format` are read as text (parsed by the pattern later)."""
        src = self.sources[name]
        path = self._files[name][0]
        opts = ["all_varchar=true"] if all_varchar else []
        if src.columns is not None:
            names = ", ".join(quote_literal(c) for c in src.columns)
            opts += ["header=false", f"names=[{names}]", f"skip={self._header_skip(name)}"]
        else:
            opts.append("header=true")
        typed = dict(types or {})
        if src.time_format is not None and not all_varchar:
            for _, column in src.time_fields():
                typed.setdefault(column, "VARCHAR")
        if typed:
            listing = ", ".join(f"{quote_literal(c)}: {quote_literal(t)}"
                                for c, t in typed.items())
            opts.append(f"types={{{listing}}}")
        return f"read_csv({quote_literal(path)}, {', '.join(opts)})"

    def _open_text(self, name: str) -> None:
        """View ``src_<name>`` over a whitespace-delimited file (fields separated by runs of
        spaces or tabs, surrounding blanks ignored). Keys, time columns with a
        `time_format` and integers with leading zeros stay text; other columns become
        BIGINT or DOUBLE when every value reads as one."""
        src = self.sources[name]
        path = self._files[name][0]
        where = self.where("sources", name, "path")
        skip = self._header_skip(name)
        names = list(src.columns) if src.columns is not None else self._first_line(name).split()
        if not names:
            raise DataError(f"{where}: source '{name}' ({path}) is empty. Expected a header "
                            "line naming the columns, or `columns` and data lines.")
        bad_names = [c for c in names if _looks_like_a_value(c)]
        if src.columns is None and bad_names:
            raise DataError(
                f"{where}: source '{name}' ({path}) seems to have no header row: its first "
                f"line reads {' '.join(names[:6])!r}, which looks like values, not column "
                f"names. Expected a header line, or name the columns in the spec: "
                f"`columns: [{', '.join(f'col{i + 1}' for i in range(len(names)))}]`."
            )
        lines = (f"read_csv({quote_literal(path)}, columns={{'line': 'VARCHAR'}}, "
                 f"delim={quote_literal(chr(31))}, quote='', escape='', header=false, "
                 f"auto_detect=false, skip={skip})")
        fields = (r"string_split_regex(regexp_replace(line, '^\s+|\s+$', '', 'g'), "
                  r"'\s+')")
        raw = quote_ident(f"raw_{name}")
        self.con.execute(
            f"CREATE VIEW {raw} AS SELECT {fields} AS f, row_number() OVER () + {skip} AS n "
            rf"FROM {lines} WHERE regexp_matches(line, '\S')")
        wrong = self.first(f"SELECT count(*), min(n), any_value(array_to_string(f, ' ')) "
                           f"FROM {raw} WHERE len(f) <> {len(names)}")
        if wrong is not None and wrong[0]:
            raise DataError(
                f"{where}: source '{name}' ({path}) has {wrong[0]:,} lines without "
                f"{len(names)} whitespace-separated fields (the columns {names}); the first "
                f"is line {wrong[1]}, e.g. {wrong[2]!r}. Expected one value per column on "
                "every line (no blanks inside values); fix those lines, or correct "
                "`columns`."
            )
        keep_text = {*src.keys, *(c for _, c in src.time_fields() if src.time_format)}
        parts = [f"f[{i + 1}] AS {quote_ident(c)}" for i, c in enumerate(names)]
        self.con.execute(f"CREATE VIEW {quote_ident(f'typed_{name}')} AS SELECT "
                         f"{', '.join(parts)} FROM {raw}")
        typed = quote_ident(f"typed_{name}")
        probes = []
        for c in names:
            col = quote_ident(c)
            probes += [f"count(*) FILTER (WHERE NOT regexp_matches({col}, '^[+-]?[0-9]{{1,18}}$'))",
                       f"count(*) FILTER (WHERE try_cast({col} AS DOUBLE) IS NULL)",
                       f"count(*) FILTER (WHERE regexp_matches({col}, '^[+-]?0[0-9]'))"]
        counts = self.first(f"SELECT {', '.join(probes)} FROM {typed}") or ()
        select = []
        for i, c in enumerate(names):
            not_int, not_num, zeros = counts[3 * i: 3 * i + 3]
            kind = ("VARCHAR" if c in keep_text or zeros or not_num else
                    "BIGINT" if not not_int else "DOUBLE")
            select.append(quote_ident(c) if kind == "VARCHAR" else
                          f"CAST({quote_ident(c)} AS {kind}) AS {quote_ident(c)}")
        # Read once into a temporary table: the engines join a source many times (as-of
        # joins over a view that splits text lines are orders of magnitude slower).
        table = quote_ident(f"text_{name}")
        self.con.execute(f"CREATE TEMP TABLE {table} AS SELECT {', '.join(select)} "
                         f"FROM {typed}")
        self.con.execute(f"CREATE VIEW {self.view(name)} AS SELECT * FROM {table}")

    def _derive_times(self, name: str) -> None:
        """Rewrite the declared time columns of ``name`` as timestamps: parsed with
        `time_format`, and with `date_only` moved to the end of their day.

        The date-only rule lives here once, at load time, so every engine, the audit and
        the online history read the same instants: a row dated ``D`` is known at
        ``D + 1 day, 00:00`` (the end of its day). A decision at ``D 00:00`` does not see it
        (nor a decision at any time of ``D``); a decision at ``D + 1 00:00`` does. An
        outcome dated ``D`` falls in ``(t, t + horizon]`` for ``t`` in ``[D - horizon + 1
        day, D)``: a purchase on the decision's own day is after the decision.
        """
        src = self.sources[name]
        path = self.display_path(name)
        view = self.view(name)
        replaced: dict[str, str] = {}
        for fld, column in src.time_fields():
            if column in replaced:
                continue
            kind = self.require_column(name, column, "sources", name, fld)
            col = quote_ident(column)
            at = self.where("sources", name, "time_format" if src.time_format else fld)
            if src.time_format is not None:
                if kind in _TIME_TYPES:
                    raise DataError(
                        f"{at}: column '{column}' of source '{name}' ({path}) already holds "
                        f"{kind} values, but `time_format` {src.time_format!r} says it is "
                        "written as text or integers. Remove `time_format`.")
                pattern = quote_literal(src.time_format)
                text = f"trim(CAST({col} AS VARCHAR))"
                bad = self.first(f"SELECT {text}, count(*) OVER () FROM {view} WHERE {col} IS "
                                 f"NOT NULL AND try_strptime({text}, {pattern}) IS NULL LIMIT 1")
                if bad is not None:
                    raise DataError(
                        f"{at}: column '{column}' of source '{name}' ({path}) holds "
                        f"{bad[1]:,} values that do not match `time_format` "
                        f"{src.time_format!r} (e.g. {bad[0]!r}). Expected every value "
                        f"written as {_example(src.time_format)}; fix `time_format` (strftime "
                        "directives such as %Y%m%d, %d/%m/%Y %H:%M) or those values.")
                stamp = f"strptime({text}, {pattern})"
            elif kind in _TIME_TYPES:
                stamp = (col if kind.startswith("TIMESTAMP WITH") else
                         f"CAST({col} AS TIMESTAMP)")
            elif kind == "VARCHAR":
                bad = self.first(f"SELECT {col} FROM {view} WHERE {col} IS NOT NULL AND "
                                 f"try_cast({col} AS TIMESTAMP) IS NULL LIMIT 1")
                if bad is not None:
                    raise DataError(
                        f"{at}: column '{column}' of source '{name}' ({path}) holds text that "
                        f"is not a date (e.g. {bad[0]!r}). Expected ISO dates such as "
                        "'2025-03-01'; or declare how they are written with `time_format`, "
                        "e.g. '%Y%m%d'.")
                stamp = f"CAST({col} AS TIMESTAMP)"
            else:
                self.time_us(name, column, "sources", name, fld)  # names the problem
                raise DataError(f"{at}: column '{column}' of source '{name}' ({path}) is not "
                                "a time column; declare `time_format` for dates written as "
                                "numbers or text.")  # pragma: no cover (time_us raised)
            if src.date_only:
                timed = self.first(f"SELECT CAST({stamp} AS VARCHAR), count(*) OVER () FROM "
                                   f"{view} WHERE {stamp} <> date_trunc('day', {stamp}) "
                                   "LIMIT 1")
                if timed is not None:
                    raise DataError(
                        f"{self.where('sources', name, 'date_only')}: source '{name}' "
                        f"({path}) says its times are dates (`date_only: true`), but column "
                        f"'{column}' has {timed[1]:,} values with a time of day (e.g. "
                        f"{timed[0]!r}). Expected midnight for every value; remove "
                        "`date_only` (the times are then used as they are).")
                stamp = f"date_trunc('day', {stamp}) + INTERVAL 1 DAY"
                if kind.startswith("TIMESTAMP WITH"):
                    stamp = f"CAST({stamp} AS TIMESTAMP WITH TIME ZONE)"
            replaced[column] = f"{stamp} AS {col}"
        if not replaced:
            return
        base = quote_ident(f"read_{name}")
        self.con.execute(f"ALTER VIEW {view} RENAME TO {base}")
        self.con.execute(f"CREATE VIEW {view} AS SELECT * REPLACE ({', '.join(replaced.values())}) "
                         f"FROM {base}")
        described = self.con.execute(f"DESCRIBE {view}").fetchall()
        self._types[name] = {row[0]: str(row[1]) for row in described}

    def _offset_kinds(self, relation: str, column: str) -> tuple[int, int, list[str]]:
        """Non-null text values of ``column`` with and without a UTC offset, and examples
        (one with, one without)."""
        col = quote_ident(column)
        text = f"trim({col}::VARCHAR)"
        has = f"regexp_matches({text}, {quote_literal(_OFFSET)})"
        row = self.first(
            f"SELECT count(*) FILTER (WHERE {has}), count(*) FILTER (WHERE NOT {has}), "
            f"any_value({text}) FILTER (WHERE {has}), any_value({text}) FILTER (WHERE NOT {has}) "
            f"FROM {relation} WHERE {col} IS NOT NULL") or (0, 0, None, None)
        return int(row[0]), int(row[1]), [v for v in row[2:] if v is not None]

    def _csv_offsets(self, name: str) -> None:
        """Time columns of a CSV read as written: every value with a UTC offset (any offsets,
        also mixed: converted to UTC instants), none, or a DataError for a mix."""
        src = self.sources[name]
        path = self._files[name][0]
        raw = self._csv_call(name, all_varchar=True)
        retype: dict[str, str] = {}
        for fld, column in src.time_fields():
            if column not in self._types[name] or column in retype or src.time_format:
                continue
            aware, naive, examples = self._offset_kinds(raw, column)
            if aware and naive:
                raise DataError(
                    f"{self.where('sources', name, fld)}: column '{column}' of source "
                    f"'{name}' ({path}) mixes times with a UTC offset and times without one "
                    f"({aware:,} with, {naive:,} without; e.g. {examples[0]!r} and "
                    f"{examples[1]!r}). A time without an offset is ambiguous next to UTC "
                    "instants. Expected one kind in a column; write every value with its "
                    "offset (e.g. '2025-01-01T10:00:00+00:00' or '...Z'), or every value "
                    "without one (local wall-clock times)."
                )
            if aware and self._types[name][column] != "TIMESTAMP WITH TIME ZONE":
                retype[column] = "TIMESTAMP WITH TIME ZONE"
        if retype:
            view = quote_ident(f"src_{name}")
            try:
                self.con.execute(f"CREATE OR REPLACE VIEW {view} AS SELECT * FROM "
                                 f"{self._csv_call(name, types=retype)}")
                described = self.con.execute(f"DESCRIBE {view}").fetchall()
            except duckdb.Error as err:
                raise DataError(
                    f"{self.where('sources', name, 'path')}: source '{name}' ({path}): the "
                    f"columns {sorted(retype)} hold times with UTC offsets that do not all "
                    f"read as timestamps: {str(err).splitlines()[0]}. Expected ISO 8601 "
                    "times such as '2025-01-01T10:00:00+02:00'; fix those values."
                ) from None
            self._types[name] = {row[0]: str(row[1]) for row in described}

    def _check_header(self, name: str) -> None:
        """DataError when a CSV's first line looks like data rather than column names."""
        src = self.sources[name]
        names = list(self._types[name])
        declared = [*src.keys, *(c for _, c in src.time_fields())]
        missing_all = bool(declared) and not any(c in names for c in declared)
        values = sum(_looks_like_a_value(c) for c in names)
        if not (missing_all and values) and not (values and 2 * values >= len(names)):
            return
        shown = ", ".join(repr(c) for c in names[:6]) + (", ..." if len(names) > 6 else "")
        raise DataError(
            f"{self.where('sources', name, 'path')}: source '{name}' "
            f"({self.display_path(name)}) seems to have no header row: its first line reads "
            f"{shown}, which look like values, not column names"
            + (f", and none of the declared columns {declared} is there" if missing_all
               else "")
            + ". Expected the first line to name the columns; add a header line "
            f"(e.g. `{','.join(declared) or 'id,ts,...'},...`) or export the file with "
            "column names."
        )

    # -- questions -------------------------------------------------------------------------
    def view(self, name: str) -> str:
        return quote_ident(f"src_{name}")

    def columns(self, name: str) -> dict[str, str]:
        return self._types[name]

    def require_column(self, source: str, column: str, *field: str | int) -> str:
        """The DuckDB type of ``column``; a DataError naming the field if it is missing."""
        self.open(source)
        types = self._types[source]
        if column not in types:
            close = [c for c in types if c.lower() == column.lower()]
            hint = f" Did you mean '{close[0]}'?" if close else ""
            raise DataError(
                f"{self.where(*field)}: column '{column}' is not in source '{source}' "
                f"({self.display_path(source)}). Expected one of {sorted(types)}.{hint}"
            )
        return types[column]

    def display_path(self, source: str) -> str:
        files = self._files.get(source, [])
        return str(files[0]) if len(files) == 1 else f"{len(files)} files"

    def time_us(self, source: str, column: str, *field: str | int) -> tuple[str, bool]:
        """SQL giving ``column`` as epoch microseconds, and whether it is time-zone aware."""
        kind = self.require_column(source, column, *field)
        col = quote_ident(column)
        if kind == "TIMESTAMP WITH TIME ZONE":
            return f"epoch_us({col})", True
        if kind in _TIME_TYPES:
            return f"epoch_us({col}::TIMESTAMP)", False
        if kind == "VARCHAR":
            with_offset, without, examples = self._offset_kinds(self.view(source), column)
            if with_offset and without:
                raise DataError(
                    f"{self.where(*field)}: column '{column}' of source '{source}' "
                    f"({self.display_path(source)}) mixes times with a UTC offset and times "
                    f"without one ({with_offset:,} with, {without:,} without; e.g. "
                    f"{examples[0]!r} and {examples[1]!r}). Expected one kind in a column; "
                    "write every value with its offset, or every value without one."
                )
            target = "TIMESTAMPTZ" if with_offset else "TIMESTAMP"
            bad = self.first(
                f"SELECT {col} FROM {self.view(source)} WHERE {col} IS NOT NULL "
                f"AND try_cast({col} AS {target}) IS NULL LIMIT 1"
            )
            if bad is None:
                # Offsets are kept: each value becomes its UTC instant (aware data).
                return (f"epoch_us({col}::TIMESTAMPTZ)", True) if with_offset else (
                    f"epoch_us({col}::TIMESTAMP)", False)
            raise DataError(
                f"{self.where(*field)}: column '{column}' of source '{source}' holds text "
                f"that is not a timestamp (e.g. {bad[0]!r}). Expected ISO timestamps such as "
                "'2025-03-01 14:05:00'; convert the column or point to another one."
            )
        unit = self._epoch_unit(source, column) if kind in _INTEGERS else ""
        raise DataError(
            f"{self.where(*field)}: column '{column}' of source '{source}' "
            f"({self.display_path(source)}) has type {kind}{unit}. Expected a timestamp or "
            "date; convert it at the source or point to a time column."
        )

    def _epoch_unit(self, source: str, column: str) -> str:
        """What integers in a time column look like: epoch seconds, milliseconds, ..."""
        col = quote_ident(column)
        row = self.first(f"SELECT median(abs({col}::DOUBLE)), min({col}), max({col}) "
                         f"FROM {self.view(source)}")
        if row is None or row[0] is None:
            return ""
        typical = float(row[0])
        if float(row[1]) >= 1e7 and float(row[2]) < 1e8:
            try:
                first = datetime.strptime(str(row[1]), "%Y%m%d")
                last = datetime.strptime(str(row[2]), "%Y%m%d")
                return (f"; its values look like dates written as integers ({row[1]} .. "
                        f"{row[2]} would be {first.date()} .. {last.date()}): declare "
                        f"`time_format: '%Y%m%d'` on the source (and `date_only: true` when "
                        "they are days)")
            except ValueError:
                pass
        for name, per_second, code in _EPOCH_UNITS:
            seconds = typical / per_second
            if 3e8 <= seconds <= 5e9:  # 1979 .. 2128
                first = us_to_datetime(int(row[1] * 1_000_000 // per_second), False)
                last = us_to_datetime(int(row[2] * 1_000_000 // per_second), False)
                return (f"; its values look like epoch {name} ({row[1]} .. {row[2]} would be "
                        f"{first.isoformat()} .. {last.isoformat()} UTC), e.g. convert with "
                        f"DuckDB `make_timestamp({column}{code})` or pandas "
                        f"`pd.to_datetime(df['{column}'], unit='{_PANDAS_UNIT[name]}')`")
        return (f"; its values (typically {typical:,.0f}) match no epoch unit (seconds, "
                "milliseconds, microseconds, nanoseconds since 1970)")

    def info(self, name: str) -> SourceInfo:
        src = self.sources[name]
        time_col = src.event_time or src.valid_from or src.available_at
        for fld, column in src.time_fields():  # a missing column is named, not a SQL error
            self.require_column(name, column, "sources", name, fld)
        rows, lo, hi = self.con.sql(
            f"SELECT count(*), min({quote_ident(time_col)})::VARCHAR, max({quote_ident(time_col)})::VARCHAR "
            f"FROM {self.view(name)}"
            if time_col
            else f"SELECT count(*), NULL, NULL FROM {self.view(name)}"
        ).fetchall()[0]
        files = self._files.get(name, [])
        return SourceInfo(
            name=name,
            path=str(files[0]) if len(files) == 1 else str(src.path),
            format=src.format,
            rows=int(rows),
            time_column=time_col,
            min_time=lo,
            max_time=hi,
            fingerprint=fingerprint(files),
        )

    def first(self, sql: str) -> tuple[Any, ...] | None:
        """The first row of ``sql``, fetched to the end (DuckDB refuses other work on a
        connection while a result is unfinished)."""
        rows = self.con.execute(sql).fetchall()
        return tuple(rows[0]) if rows else None

    def scalar(self, sql: str) -> Any:
        rows = self.con.execute(sql).fetchall()
        return rows[0][0] if rows else None
