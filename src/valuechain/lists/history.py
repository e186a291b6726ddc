"""The contact history: every list's assignment, append-only, in the workspace.

``<workspace>/lists/assignments.sqlite`` holds one row per customer and week listed
(``customer``, ``week``, ``list_group`` = ``treated``/``control``, ``rank``, ``score``,
``expected_value``, ``run_id``, ``written_at``), primary key ``(customer, week)``. A week is
written in one transaction: all its rows or none. Writing a week again is idempotent when
the assignment is the same (the same customers in the same groups: the same run, seed and
history give the same list), and refused otherwise — a randomised control group is drawn
once; a second, different draw for the same week would make the measurement meaningless.
Rows are never updated or deleted by valuechain.

The history serves the cooldown (:meth:`AssignmentLog.listed_between`: who was listed in
``[start, end)``) and the report (list composition, control vs treated counts).

>>> import tempfile
>>> from pathlib import Path
>>> log = AssignmentLog(Path(tempfile.mkdtemp()) / "assignments.sqlite")
>>> rows = [Assignment("c1", "2025-06-02", "treated", 1, 0.4), Assignment("c2", "2025-06-02",
...         "control", 2, 0.3)]
>>> log.record(rows, run_id="r1")
2
>>> log.record(rows, run_id="r1")  # the same week again: nothing new
0
>>> sorted(log.listed_between("2025-05-01", "2025-06-03"))
['c1', 'c2']
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from valuechain.errors import DataError

__all__ = ["Assignment", "AssignmentLog"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS assignments (
    customer TEXT NOT NULL,
    week TEXT NOT NULL,
    list_group TEXT NOT NULL CHECK (list_group IN ('treated', 'control')),
    rank INTEGER NOT NULL,
    score REAL,
    expected_value REAL,
    run_id TEXT,
    written_at TEXT NOT NULL,
    PRIMARY KEY (customer, week)
);
CREATE INDEX IF NOT EXISTS assignments_week ON assignments (week);
CREATE TRIGGER IF NOT EXISTS assignments_no_update BEFORE UPDATE ON assignments
BEGIN SELECT RAISE(ABORT, 'assignments are append-only'); END;
CREATE TRIGGER IF NOT EXISTS assignments_no_delete BEFORE DELETE ON assignments
BEGIN SELECT RAISE(ABORT, 'assignments are append-only'); END;
"""


@dataclass(frozen=True)
class Assignment:
    """One customer on one week's list."""

    customer: str
    week: str  # ISO date of the Monday
    group: str  # "treated" or "control"
    rank: int
    score: float | None = None
    expected_value: float | None = None


class AssignmentLog:
    """The append-only assignments table (SQLite, one transaction per week)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        except sqlite3.Error as exc:
            raise DataError(f"{self.path}: the assignments table cannot be opened ({exc}); "
                            "check the workspace is writable.") from exc
        with closing(con):
            try:
                con.executescript(_SCHEMA)
            except sqlite3.DatabaseError as exc:
                raise DataError(f"{self.path}: not an assignments table ({exc}); move the "
                                "file away (it is the contact history: keep a copy) and "
                                "write the list again.") from exc
            yield con

    def week(self, week: str) -> list[Assignment]:
        """The assignment of ``week`` (empty when the week was never listed), by rank."""
        if not self.path.exists():
            return []
        with self._connect() as con:
            rows = con.execute(
                "SELECT customer, week, list_group, rank, score, expected_value "
                "FROM assignments WHERE week = ? ORDER BY rank", (week,)).fetchall()
        return [Assignment(*row) for row in rows]

    def weeks(self) -> list[str]:
        """Every week with a list, oldest first."""
        if not self.path.exists():
            return []
        with self._connect() as con:
            return [r[0] for r in con.execute(
                "SELECT DISTINCT week FROM assignments ORDER BY week")]

    def listed_between(self, start: str, end: str) -> set[str]:
        """Customers listed (treated or control) in a week in ``[start, end)``."""
        if not self.path.exists():
            return set()
        with self._connect() as con:
            return {r[0] for r in con.execute(
                "SELECT DISTINCT customer FROM assignments WHERE week >= ? AND week < ?",
                (start, end))}

    def record(self, rows: Sequence[Assignment], *, run_id: str | None = None) -> int:
        """Append one week's assignment in one transaction; returns the rows written.

        Raises
        ------
        DataError
            When the rows span several weeks, or the week already holds a *different*
            assignment (the same one again writes nothing and returns 0).
        """
        weeks = {r.week for r in rows}
        if len(weeks) > 1:
            raise DataError(f"{self.path}: one week per write, got {sorted(weeks)}.")
        if not rows:
            return 0
        (week,) = weeks
        now = datetime.now(UTC).isoformat(timespec="seconds")
        with self._connect() as con:
            con.execute("BEGIN IMMEDIATE")
            try:
                have = {(c, g) for c, g in con.execute(
                    "SELECT customer, list_group FROM assignments WHERE week = ?", (week,))}
                want = {(r.customer, r.group) for r in rows}
                if have == want:
                    con.execute("ROLLBACK")
                    return 0
                if have:
                    changed = len(have ^ want)
                    raise DataError(
                        f"{self.path}: week {week} already has a list of {len(have):,} "
                        f"customers, assigned by an earlier `valuechain list` ({changed:,} "
                        "customer/group pairs differ from this one: another run, seed or "
                        "history). A control group is drawn once per week; keep the list "
                        "already handed out (its files are in the workspace's `lists/`), or "
                        "list another week.")
                con.executemany(
                    "INSERT INTO assignments (customer, week, list_group, rank, score, "
                    "expected_value, run_id, written_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [(r.customer, r.week, r.group, int(r.rank), r.score, r.expected_value,
                      run_id, now) for r in rows])
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise
        return len(rows)
