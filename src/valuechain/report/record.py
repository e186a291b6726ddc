"""Strict reading of stage outputs: a key that must exist and does not is an error, not "–".

A report section reads a stage's JSON through a :class:`Record`, which knows the file it came
from and the command that rewrites it. A required key that is missing, or holds the wrong type,
raises a :class:`~valuechain.errors.DataError` naming the file, the dotted key and the command:
the section then shows as an *error* in the report (and ``valuechain report`` exits non-zero)
instead of rendering an en dash where a number should be. Only keys documented as optional
are read with :meth:`Record.get`.

A recorded ``null`` is not missing: stage outputs are strict JSON, so an undefined metric
(NaN) is stored as ``null`` and :meth:`Record.number` returns ``None`` for it.

>>> run = Record({"run_id": "r1", "test": {"roc_auc": 0.91, "brier": None}},
...              "runs/r1/metrics.json", "valuechain train")
>>> run.text("run_id"), run.sub("test").number("roc_auc"), run.sub("test").number("brier")
('r1', 0.91, None)
>>> run.sub("test").number("average_precision")
Traceback (most recent call last):
...
valuechain.errors.DataError: runs/r1/metrics.json: key `test.average_precision` is missing (it has `brier`, `roc_auc`). The file was written by another version of valuechain, or edited; run `valuechain train` to write it again.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from valuechain.errors import DataError

__all__ = ["Record"]

_TYPE_WORDS = {dict: "a mapping", list: "a list", str: "text", float: "a number"}


@dataclass(frozen=True)
class Record:
    """A JSON mapping from a stage output, read strictly.

    Parameters
    ----------
    data
        The mapping (a whole file, or a part of one).
    file
        The file as the reader should see it, e.g. ``runs/r1/metrics.json``.
    command
        The command that writes the file again, e.g. ``valuechain train``.
    at
        The dotted key of ``data`` inside the file (empty for the whole file).
    """

    data: Mapping[str, Any]
    file: str
    command: str
    at: str = ""

    def _key(self, key: str) -> str:
        return f"{self.at}.{key}" if self.at else key

    def _fail(self, key: str, problem: str) -> DataError:
        return DataError(
            f"{self.file}: key `{self._key(key)}` {problem}. The file was written by another "
            f"version of valuechain, or edited; run `{self.command}` to write it again.")

    def __contains__(self, key: str) -> bool:
        return key in self.data

    def __getitem__(self, key: str) -> Any:
        """The value of a required key (any type, ``None`` allowed)."""
        if key not in self.data:
            known = ", ".join(f"`{k}`" for k in sorted(map(str, self.data))) or "no keys"
            raise self._fail(key, f"is missing (it has {known})")
        return self.data[key]

    def get(self, key: str, default: Any = None) -> Any:
        """The value of an optional key."""
        return self.data.get(key, default)

    def _typed(self, key: str, kind: type) -> Any:
        value = self[key]
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise self._fail(key, f"should be {_TYPE_WORDS.get(kind, kind.__name__)}, "
                                  f"not {type(value).__name__} {value!r:.60}")
        return value

    def sub(self, key: str) -> Record:
        """A required mapping, as a :class:`Record`."""
        return Record(self._typed(key, dict), self.file, self.command, self._key(key))

    def subs(self, key: str) -> list[Record]:
        """A required list of mappings, each as a :class:`Record`."""
        items = self._typed(key, list)
        out = []
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise self._fail(f"{key}[{i}]", f"should be a mapping, not {item!r:.60}")
            out.append(Record(item, self.file, self.command, f"{self._key(key)}[{i}]"))
        return out

    def items(self) -> Iterator[tuple[str, Record]]:
        """Every ``(key, mapping)`` of this record (each value must be a mapping)."""
        for key in self.data:
            yield key, self.sub(key)

    def sequence(self, key: str) -> list[Any]:
        """A required list."""
        return list(self._typed(key, list))

    def text(self, key: str) -> str:
        """A required string."""
        return str(self._typed(key, str))

    def number(self, key: str) -> float | None:
        """A required number; ``None`` when it was recorded as ``null`` (undefined)."""
        value = self[key]
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._fail(key, f"should be a number, not {value!r:.60}")
        number = float(value)
        return number if math.isfinite(number) else None

    def integer(self, key: str) -> int:
        """A required whole number (a count: never ``null``)."""
        value = self[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or value != int(value):
            raise self._fail(key, f"should be a whole number, not {value!r:.60}")
        return int(value)

    def optional(self, key: str) -> Record | None:
        """An optional mapping (absent or ``null``: ``None``)."""
        if self.data.get(key) is None:
            return None
        return self.sub(key)
