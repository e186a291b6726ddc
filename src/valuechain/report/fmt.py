"""Number, share, duration and time formatting for reports (also registered as Jinja filters).

Every function accepts ``None`` (a value the stage did not record) and renders it as an en dash.

>>> fmt_int(1754155)
'1,754,155'
>>> fmt_num(53.62514580666572)
'53.63'
>>> fmt_num(0.00012345), fmt_num(1.5e-9)
('0.0001234', '1.5e-09')
>>> fmt_pct(0.008346)
'0.83%'
>>> fmt_duration("1w"), fmt_duration("37d"), fmt_duration("90min")
('7d', '37d', '90min')
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

from valuechain.spec.durations import parse_duration

__all__ = ["MISSING", "fmt_duration", "fmt_int", "fmt_num", "fmt_pct", "fmt_seconds", "to_delta"]

MISSING = "–"


def _number(value: Any) -> float | None:
    if value is None or isinstance(value, str):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(number) else number


def fmt_int(value: Any) -> str:
    """Whole number with thousands separators."""
    number = _number(value)
    return MISSING if number is None else f"{round(number):,}"


def fmt_num(value: Any, digits: int = 4) -> str:
    """Compact number: integers exactly, others to ``digits`` significant digits."""
    number = _number(value)
    if number is None:
        return MISSING
    if math.isinf(number):
        return "∞" if number > 0 else "-∞"
    if number == int(number) and abs(number) < 1e15:
        return f"{int(number):,}"
    if abs(number) >= 10 ** digits:
        return f"{number:,.0f}"
    return f"{number:.{digits}g}"


def fmt_pct(value: Any, digits: int = 2) -> str:
    """A share in [0, 1] as a percentage."""
    number = _number(value)
    if number is None:
        return MISSING
    pct = number * 100
    if pct != 0 and abs(pct) < 10 ** -digits:
        return f"<{10 ** -digits:.{digits}f}%"
    return f"{pct:.{digits}f}%"


def fmt_seconds(value: Any) -> str:
    """A duration in seconds, e.g. ``10.5 s`` or ``3 min 12 s``."""
    number = _number(value)
    if number is None:
        return MISSING
    if number < 60:
        return f"{number:.3g} s" if number < 10 else f"{number:.1f} s"
    minutes, seconds = divmod(round(number), 60)
    return f"{minutes} min {seconds} s"


def to_delta(value: Any) -> timedelta | None:
    """A spec duration (``'7d'``) or ``timedelta`` as ``timedelta``; ``None`` if unreadable."""
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError:
        return None


def fmt_duration(value: Any) -> str:
    """A duration in the unit people read best: whole days as days (``1w`` → ``7d``)."""
    delta = to_delta(value)
    if delta is None:
        return MISSING if value is None else str(value)
    seconds = delta.total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


_QUOTED = r"(?:'[^'\n]*'|\"[^\"\n]*\")"
_REPR_LIST = re.compile(r"[\[(](" + _QUOTED + r"(?:,\s*" + _QUOTED + r")*),?[\])]")
_REPR_ITEM = re.compile(r"'([^'\n]*)'|\"([^\"\n]*)\"")
_REPR_DICT = re.compile(r"\{((?:'[^'\n]*': [^,{}\n]+(?:, )?)+)\}")
_REPR_PAIR = re.compile(r"'([^'\n]*)': ([^,{}\n]+)")


def plain_text(text: str) -> str:
    """Python list and tuple reprs of strings in a stage's message, as plain words.

    Stage messages sometimes carry ``['approve', 'review']`` or ``('a', 'b')``; a reader
    should see ``approve, review`` and ``a = b`` pairs as words, not Python.

    >>> plain_text("with actions ['approve', 'review', 'decline']; label 'is_fraud'")
    "with actions approve, review, decline; label 'is_fraud'"
    >>> plain_text("join on [('transaction_id', 'transaction_id')]")
    'join on [transaction_id, transaction_id]'
    >>> plain_text("'duckdb' with {'threads': None, 'memory_limit': '4GB'}")
    "'duckdb' with threads None, memory_limit '4GB'"
    """
    def words(match: re.Match[str]) -> str:
        return ", ".join(a or b for a, b in _REPR_ITEM.findall(match.group(1)))

    def pairs(match: re.Match[str]) -> str:
        return ", ".join(f"{k} {v}" for k, v in _REPR_PAIR.findall(match.group(1)))
    return _REPR_DICT.sub(pairs, _REPR_LIST.sub(words, text))


def local_path(path: str | Path, root: str | Path) -> str:
    """A path as the report shows it: relative to the project folder, never a local absolute
    path (outside the project: its last two parts after ``…/``).

    >>> local_path("/home/me/fraud/data/tx.parquet", "/home/me/fraud")
    'data/tx.parquet'
    >>> local_path("/srv/lake/fraud/tx.parquet", "/home/me/fraud")
    '…/fraud/tx.parquet'
    >>> local_path("data/tx.parquet", "/home/me/fraud")
    'data/tx.parquet'
    """
    given = Path(path)
    if not given.is_absolute():
        return given.as_posix()
    for base in {Path(root), Path(root).resolve()}:
        try:
            return given.relative_to(base).as_posix() or "."
        except ValueError:
            continue
    return "…/" + "/".join(given.parts[-2:])
