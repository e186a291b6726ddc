"""Aggregates of the built frame for the report, computed in DuckDB (fast on millions of rows).

* :func:`over_time`: decisions and positive-label rate per week (per month on long spans);
* :func:`histograms`: equal-width histograms of numeric columns from a row sample.

Both read ``frame.parquet`` directly and never load the whole frame into Python.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from valuechain.artifacts import fix_command, open_artifact
from valuechain.sql import connect, quote_ident, quote_literal

__all__ = ["Histogram", "TimeSeries", "histograms", "over_time"]

MAX_BUCKETS = 104
SAMPLE_ROWS = 200_000
BINS = 24


def _schema(frame: Path) -> pa.Schema:
    """The frame's schema (its footer only); an ArtifactError naming it when damaged."""
    return open_artifact(frame, "schema", what="the built frame",
                         rebuild=fix_command(None, "build", "--force"))


def _scan(path: Path) -> str:
    return f"read_parquet({quote_literal(path)})"


def _connect() -> duckdb.DuckDBPyConnection:
    con = connect()
    con.execute("SET TimeZone = 'UTC'")
    return con


@dataclass(frozen=True)
class TimeSeries:
    """Decisions and positive rate per period (``grain`` is ``week`` or ``month``)."""

    grain: str
    starts: list[date]
    decisions: list[int]
    positive_rate: list[float | None]


def over_time(frame: Path, time_column: str, label: str) -> TimeSeries | None:
    """Decisions per week and the share with a positive label; ``None`` if times are unusable.

    Weeks start on Monday (ISO). Spans longer than two years are bucketed by month.
    """
    names = set(_schema(frame).names)
    if time_column not in names or label not in names:
        return None
    t = f"try_cast({quote_ident(time_column)} AS TIMESTAMP)"
    y = quote_ident(label)
    with _connect() as con:
        for grain in ("week", "month"):
            rows = con.execute(
                f"SELECT date_trunc('{grain}', {t})::DATE AS start, count(*) AS n, "
                f"avg(CASE WHEN {y} IS NULL THEN NULL WHEN {y} > 0 THEN 1.0 ELSE 0.0 END) "
                f"FROM {_scan(frame)} WHERE {t} IS NOT NULL GROUP BY 1 ORDER BY 1"
            ).fetchall()
            if len(rows) <= MAX_BUCKETS:
                break
    if not rows:
        return None
    return TimeSeries(
        grain=grain,
        starts=[r[0] if isinstance(r[0], date) else datetime.fromisoformat(str(r[0])).date()
                for r in rows],
        decisions=[int(r[1]) for r in rows],
        positive_rate=[None if r[2] is None else float(r[2]) for r in rows],
    )


@dataclass(frozen=True)
class Histogram:
    """Counts of ``len(counts)`` equal bins over ``[lo, hi]``.

    ``discrete`` histograms count whole numbers: bin ``i`` holds the value ``lo + i``.
    ``outside`` is the share of sampled values left out because they lie beyond the central
    99% (long tails would squash the picture); ``rows`` is how many non-null values were used.
    """

    counts: list[int]
    lo: float
    hi: float
    rows: int
    outside: float
    discrete: bool = False


def _numeric(kind: pa.DataType) -> bool:
    return bool(pa.types.is_integer(kind) or pa.types.is_floating(kind)
                or pa.types.is_boolean(kind) or pa.types.is_decimal(kind))


def _histogram(values: np.ndarray, integer: bool) -> Histogram | None:
    values = values[np.isfinite(values)]
    if values.size == 0:
        return None
    lo, hi = float(values.min()), float(values.max())
    q_lo, q_hi = (float(v) for v in np.quantile(values, [0.005, 0.995]))
    if integer:
        if hi - lo >= BINS and q_hi > q_lo:  # a wide integer range: clip the tails
            lo, hi = math.floor(q_lo), math.ceil(q_hi)
        width = max(1, math.ceil((hi - lo + 1) / BINS))  # whole numbers per bin, no aliasing
        edges = lo + width * np.arange(math.ceil((hi - lo + 1) / width) + 1, dtype=float)
    else:
        if q_hi > q_lo:
            lo, hi = q_lo, q_hi
        if hi <= lo:
            hi = lo + 1.0
        edges = np.linspace(lo, hi, BINS + 1)
    top = float(edges[-1])
    inside = (values >= lo) & ((values < top) if integer else (values <= top))
    counts, _ = np.histogram(values[inside], bins=edges)
    outside = 1.0 - float(inside.sum()) / float(values.size)
    return Histogram([int(c) for c in counts], lo, top, int(values.size), outside,
                     integer and edges[1] - edges[0] == 1)


def histograms(
    frame: Path, columns: Sequence[str], sample: int = SAMPLE_ROWS
) -> dict[str, Histogram]:
    """Histograms of the numeric ``columns`` present in the frame, from at most ~``sample`` rows.

    The sample is a seeded Bernoulli sample drawn by DuckDB, so only the needed columns of the
    sampled rows reach Python.
    """
    schema = _schema(frame)
    wanted = [c for c in columns if c in schema.names and _numeric(schema.field(c).type)]
    if not wanted:
        return {}
    total = pq.ParquetFile(frame).metadata.num_rows
    clause = ""
    if total > sample:
        clause = f" USING SAMPLE {100.0 * sample / total:.6f}% (bernoulli, 42)"
    select = ", ".join(f"{quote_ident(c)}::DOUBLE AS {quote_ident(c)}" for c in wanted)
    with _connect() as con:
        table = con.sql(f"SELECT {select} FROM {_scan(frame)}{clause}").to_arrow_table()
    out: dict[str, Histogram] = {}
    for name in wanted:
        kind = schema.field(name).type
        values = table.column(name).to_numpy(zero_copy_only=False).astype(float)
        hist = _histogram(values, pa.types.is_integer(kind) or pa.types.is_boolean(kind))
        if hist is not None:
            out[name] = hist
    return out
