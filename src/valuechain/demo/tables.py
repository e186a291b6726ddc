"""What every demo world shares: writing its tables and listing them (one copy each).

>>> import tempfile, pyarrow as pa
>>> out = Path(tempfile.mkdtemp())
>>> paths = write_tables(out, {"a": pa.table({"x": [1, 2]})}, ("a",))
>>> paths["a"].name, table_lines({"a": 2}, paths)
('a.parquet', ['a                                2 rows  a.parquet'])
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import pyarrow as pa

from valuechain.io import write_parquet

__all__ = ["Progress", "report", "table_lines", "write_tables"]

#: ``progress(stage, fraction)``: how far a world's generation is (the CLI draws a bar).
Progress = Callable[[str, float], None]


def report(progress: Progress | None, stage: str, fraction: float) -> None:
    """Tell ``progress`` (when given) that ``stage`` reached ``fraction``."""
    if progress is not None:
        progress(stage, fraction)


def write_tables(out: Path, tables: Mapping[str, pa.Table], names: Sequence[str],
                 progress: Progress | None = None, start: float = 0.8) -> dict[str, Path]:
    """Write ``names`` of ``tables`` as ``out/<name>.parquet`` (atomically, zstd); progress
    goes from ``start`` to 1."""
    out.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for index, name in enumerate(names):
        paths[name] = out / f"{name}.parquet"
        write_parquet(paths[name], tables[name])
        report(progress, "writing", start + (1 - start) * (index + 1) / len(names))
    return paths


def table_lines(rows: Mapping[str, int], paths: Mapping[str, Path]) -> list[str]:
    """One line per table: its name, its row count and its file."""
    return [f"{name:<22} {count:>11,} rows  {paths[name].name}" for name, count in rows.items()]
