"""Durations written in the spec: ``90s``, ``15min``, ``6h``, ``7d``, ``2w``.

Durations are exact lengths of time (a day is 24 hours, also across a daylight-saving change).
Months and years are refused because their length varies, and so is anything longer than
:data:`MAX_DAYS` (100 years): no window, horizon or period of a decision is that long, and
larger values overflow the time arithmetic underneath.

>>> parse_duration("7d")
datetime.timedelta(days=7)
>>> format_duration(parse_duration("36h"))
'36h'
"""

from __future__ import annotations

import re
from datetime import timedelta

from valuechain.errors import SpecError

__all__ = ["MAX_DAYS", "MICROS", "format_duration", "parse_duration", "to_micros"]

MICROS = 1_000_000
#: The longest duration a spec may write, in days (100 years).
MAX_DAYS = 36_500
_UNITS = {"s": 1, "min": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|min|h|d|w)\s*$")


def parse_duration(text: str | int | float | timedelta) -> timedelta:
    """Parse ``<number><unit>`` with unit one of s, min, h, d, w.

    Raises :class:`~valuechain.errors.SpecError` (a ``ValueError``) naming what was given;
    inside the spec's models pydantic reports it with the file, line and field.

    >>> parse_duration("3mo")
    Traceback (most recent call last):
    ...
    valuechain.errors.SpecError: expected a duration such as '90s', ..., got '3mo' (months and years vary in length; write days, e.g. '30d')
    """
    if isinstance(text, timedelta):
        return text
    if isinstance(text, bool):
        raise SpecError(f"expected a duration such as '7d', got {text!r}")
    if isinstance(text, int | float):
        raise SpecError(
            f"expected a duration with a unit such as '7d' or '12h', got the bare number {text!r}"
        )
    match = _PATTERN.match(str(text))
    if not match:
        hint = " (months and years vary in length; write days, e.g. '30d')" if re.search(
            r"\d\s*(m|mo|month|y|year)s?\s*$", str(text)
        ) else ""
        raise SpecError(
            f"expected a duration such as '90s', '15min', '6h', '7d' or '2w', got {text!r}{hint}"
        )
    value, unit = match.groups()
    seconds = float(value) * _UNITS[unit]
    if not seconds <= MAX_DAYS * 86400:
        raise SpecError(
            f"duration {text!r} is longer than {MAX_DAYS:,} days (100 years), the longest "
            "allowed; write a shorter one, e.g. '365d'"
        )
    return timedelta(seconds=seconds)


def to_micros(delta: timedelta) -> int:
    """Whole microseconds in ``delta``."""
    return (delta.days * 86400 + delta.seconds) * MICROS + delta.microseconds


def format_duration(delta: timedelta) -> str:
    """The shortest spec spelling of ``delta``."""
    seconds = delta.total_seconds()
    for unit in ("w", "d", "h", "min", "s"):
        size = _UNITS[unit]
        if seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds}s"
