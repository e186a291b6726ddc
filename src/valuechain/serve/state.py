"""Online feature state: the :class:`StateStore` interface and its in-process backend.

A store holds *buckets*: named sets of entries ``(time, uid, payload)`` ordered by time, one
bucket per ``(source, key column, key value)`` for the rows a window aggregates, per dimension
key for the versions an as-of lookup reads, per decision for the outcomes reported on it
(:mod:`valuechain.serve.features` decides what goes where). A store does four things:

* :meth:`~StateStore.write` adds entries (an entry with the same ``uid`` in the same bucket
  is replaced, so applying an event twice is harmless) and drops entries at or before a cutoff
  (``trims``), all in one atomic step;
* :meth:`~StateStore.read` returns the entries of several buckets after given times;
* :meth:`~StateStore.take_capacity` atomically counts one action in a period unless the
  period is full (the review queue's capacity, shared by every replica);
* :meth:`~StateStore.get_meta` / :meth:`~StateStore.set_meta` keep small facts such as the
  time up to which the state was warmed.

Payloads are JSON values (``None``, bool, int, float, str, lists and dicts of them); times
are integers (epoch microseconds) within ``±2**53`` so that every backend stores them exactly.
Two backends ship: :class:`MemoryState` (in-process, optionally persisted to a SQLite file,
one transaction per write) and :class:`valuechain.serve.redis_state.RedisState` (several
replicas on one Redis). Both give identical reads for identical writes.

>>> state = MemoryState()
>>> state.write([("b", 10, "x", {"v": 1}), ("b", 5, "y", [2])])
>>> state.read(["b"], [None])
[[(5, 'y', [2]), (10, 'x', {'v': 1})]]
>>> state.read(["b", "c"], [5, None])
[[(10, 'x', {'v': 1})], []]
>>> state.take_capacity("review", 0, limit=1), state.take_capacity("review", 0, limit=1)
(True, False)
"""

from __future__ import annotations

import bisect
import json
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from valuechain.errors import ArtifactError

__all__ = ["MIN_TIME", "Entry", "MemoryState", "StateStore", "WriteItem"]

Entry = tuple[int, str, Any]
"""``(time, uid, payload)``: one entry of a bucket."""
WriteItem = tuple[str, int, str, Any]
"""``(bucket, time, uid, payload)``: one entry to add."""

MIN_TIME = -(2**53)
"""The time of entries that are always known (dimension rows without a version time)."""


@runtime_checkable
class StateStore(Protocol):
    """What :class:`~valuechain.serve.features.OnlineFeatures` needs from a backend."""

    def write(self, items: Sequence[WriteItem], trims: Sequence[tuple[str, int]] = ()) -> None:
        """Add ``items`` (replacing same ``(bucket, uid)``), then drop the entries of each
        ``(bucket, cutoff)`` in ``trims`` whose time is ``<= cutoff``; atomically."""
        ...

    def read(self, buckets: Sequence[str], after: Sequence[int | None]) -> list[list[Entry]]:
        """For each bucket, its entries with time ``> after`` (all when None), by
        ``(time, uid)``."""
        ...

    def get(self, bucket: str, uids: Sequence[str]) -> list[Any]:
        """The payloads of the entries ``uids`` of ``bucket`` (None where absent)."""
        ...

    def take_capacity(self, action: str, period_start_us: int, limit: int) -> bool:
        """Atomically count one ``action`` in the period starting at ``period_start_us``;
        False (and nothing counted) when ``limit`` are already counted."""
        ...

    def release_capacity(self, action: str, period_start_us: int) -> None:
        """Give back one ``action`` counted in the period (a decision that was not logged);
        the count never goes below zero."""
        ...

    def capacity_used(self, action: str, period_start_us: int) -> int:
        """How many ``action`` were counted in the period."""
        ...

    def get_meta(self, name: str) -> str | None:
        """A small fact stored with the state (None when unset)."""
        ...

    def set_meta(self, name: str, value: str) -> None:
        """Store a small fact with the state."""
        ...

    def clear(self) -> None:
        """Forget everything (entries, capacity counts, facts)."""
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...


class _Bucket:
    """One key's entries in time order: ``order`` (time, uid) for searching, ``entries``
    (time, uid, payload) in the same order, so a read is one slice."""

    __slots__ = ("entries", "order", "payloads")

    def __init__(self) -> None:
        self.order: list[tuple[int, str]] = []
        self.entries: list[Entry] = []
        self.payloads: dict[str, tuple[int, Any]] = {}

    def put(self, time: int, uid: str, payload: Any) -> None:
        old = self.payloads.get(uid)
        if old is not None:
            at = bisect.bisect_left(self.order, (old[0], uid))
            del self.order[at]
            del self.entries[at]
        at = bisect.bisect_right(self.order, (time, uid))
        self.order.insert(at, (time, uid))
        self.entries.insert(at, (time, uid, payload))
        self.payloads[uid] = (time, payload)

    def trim(self, cutoff: int) -> list[str]:
        cut = bisect.bisect_right(self.order, (cutoff, "\U0010ffff"))
        gone = [uid for _, uid in self.order[:cut]]
        del self.order[:cut]
        del self.entries[:cut]
        for uid in gone:
            del self.payloads[uid]
        return gone

    def after(self, time: int | None) -> list[Entry]:
        if time is None:
            return self.entries[:]
        return self.entries[bisect.bisect_right(self.order, (time, "\U0010ffff")):]


_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (bucket TEXT NOT NULL, uid TEXT NOT NULL,
    time INTEGER NOT NULL, payload TEXT NOT NULL, PRIMARY KEY (bucket, uid));
CREATE INDEX IF NOT EXISTS entries_time ON entries (bucket, time);
CREATE TABLE IF NOT EXISTS capacity (action TEXT NOT NULL, period INTEGER NOT NULL,
    used INTEGER NOT NULL, PRIMARY KEY (action, period));
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
"""


class MemoryState:
    """In-process state; persisted to a SQLite file when ``path`` is given.

    Reads are served from memory. Each :meth:`write` is one SQLite transaction (WAL), so a
    crash keeps either all or none of it, and reopening the file restores the state.
    :meth:`take_capacity` goes through the file when there is one, so several processes
    sharing it keep one count.

    By default a commit is handed to the operating system without waiting for the disk
    (``PRAGMA synchronous=OFF``): every committed write survives the process being killed,
    at a fraction of a millisecond per write; a power loss may lose the last writes. The
    state is derived data (the sources and the decision log rebuild it: ``warm`` and
    idempotent ``apply_event``); pass ``fsync=True`` to sync the write-ahead log at
    checkpoints (``synchronous=NORMAL``).

    Parameters
    ----------
    path : Path, optional
        The SQLite file (created when missing). Without it the state lives and dies with the
        process.
    fsync : bool
        Sync to disk at checkpoints (slower; see above).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> file = pathlib.Path(tempfile.mkdtemp()) / "state.sqlite"
    >>> MemoryState(file).write([("b", 1, "u", {"x": 1.5})])
    >>> MemoryState(file).read(["b"], [None])
    [[(1, 'u', {'x': 1.5})]]
    """

    def __init__(self, path: Path | str | None = None, *, fsync: bool = False) -> None:
        self.path = Path(path) if path is not None else None
        self.fsync = fsync
        self._buckets: dict[str, _Bucket] = {}
        self._capacity: dict[tuple[str, int], int] = {}
        self._meta: dict[str, str] = {}
        self._lock = threading.RLock()
        self._db: sqlite3.Connection | None = None
        if self.path is not None:
            self._open(self.path)

    def __repr__(self) -> str:
        return f"MemoryState({str(self.path) if self.path else ''})"

    def _open(self, path: Path) -> None:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(path, check_same_thread=False, isolation_level=None,
                                 timeout=30)
            db.execute("PRAGMA journal_mode=WAL")
            db.execute(f"PRAGMA synchronous={'NORMAL' if self.fsync else 'OFF'}")
            db.executescript(_SCHEMA)
            for bucket, uid, time, payload in db.execute(
                    "SELECT bucket, uid, time, payload FROM entries"):
                self._bucket(bucket).put(int(time), uid, json.loads(payload))
            self._meta = dict(db.execute("SELECT name, value FROM meta").fetchall())
        except (sqlite3.Error, json.JSONDecodeError) as err:
            raise ArtifactError(
                f"{path}: cannot open the online feature state ({err}). Expected a SQLite file "
                "written by valuechain's MemoryState; move it away to start from empty state "
                "(then warm it again)."
            ) from err
        self._db = db

    def _bucket(self, name: str) -> _Bucket:
        bucket = self._buckets.get(name)
        if bucket is None:
            bucket = self._buckets[name] = _Bucket()
        return bucket

    def write(self, items: Sequence[WriteItem], trims: Sequence[tuple[str, int]] = ()) -> None:
        with self._lock:
            if self._db is not None:
                db = self._db
                rows = [(b, u, t, json.dumps(p, separators=(",", ":"))) for b, t, u, p in items]
                # only the trims that remove something (most remove nothing)
                due = [(b, c) for b, c in trims
                       if (held := self._buckets.get(b)) is not None and held.order
                       and held.order[0][0] <= c]
                db.execute("BEGIN")
                try:
                    db.executemany("INSERT OR REPLACE INTO entries (bucket, uid, time, payload) "
                                   "VALUES (?, ?, ?, ?)", rows)
                    db.executemany("DELETE FROM entries WHERE bucket = ? AND time <= ?", due)
                    db.execute("COMMIT")
                except BaseException:
                    db.execute("ROLLBACK")
                    raise
            for bucket, time, uid, payload in items:
                self._bucket(bucket).put(time, uid, payload)
            for bucket, cutoff in trims:
                held = self._buckets.get(bucket)
                if held is not None:
                    held.trim(cutoff)
                    if not held.order:
                        del self._buckets[bucket]

    def read(self, buckets: Sequence[str], after: Sequence[int | None]) -> list[list[Entry]]:
        with self._lock:
            out: list[list[Entry]] = []
            for name, time in zip(buckets, after, strict=True):
                bucket = self._buckets.get(name)
                out.append(bucket.after(time) if bucket is not None else [])
            return out

    def get(self, bucket: str, uids: Sequence[str]) -> list[Any]:
        with self._lock:
            held = self._buckets.get(bucket)
            if held is None:
                return [None] * len(uids)
            return [held.payloads[u][1] if u in held.payloads else None for u in uids]

    def take_capacity(self, action: str, period_start_us: int, limit: int) -> bool:
        with self._lock:
            if self._db is None:
                used = self._capacity.get((action, period_start_us), 0)
                if used >= limit:
                    return False
                self._capacity[(action, period_start_us)] = used + 1
                return True
            db = self._db
            db.execute("BEGIN IMMEDIATE")  # one writer at a time, across processes
            try:
                db.execute("INSERT OR IGNORE INTO capacity VALUES (?, ?, 0)",
                           (action, period_start_us))
                taken = db.execute(
                    "UPDATE capacity SET used = used + 1 WHERE action = ? AND period = ? "
                    "AND used < ?", (action, period_start_us, limit)).rowcount
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
            return bool(taken)

    def release_capacity(self, action: str, period_start_us: int) -> None:
        with self._lock:
            if self._db is None:
                used = self._capacity.get((action, period_start_us), 0)
                if used > 0:
                    self._capacity[(action, period_start_us)] = used - 1
                return
            self._db.execute("UPDATE capacity SET used = used - 1 WHERE action = ? AND "  # atomic
                             "period = ? AND used > 0", (action, period_start_us))

    def capacity_used(self, action: str, period_start_us: int) -> int:
        with self._lock:
            if self._db is None:
                return self._capacity.get((action, period_start_us), 0)
            row = self._db.execute("SELECT used FROM capacity WHERE action = ? AND period = ?",
                                   (action, period_start_us)).fetchone()
            return int(row[0]) if row else 0

    def get_meta(self, name: str) -> str | None:
        with self._lock:
            return self._meta.get(name)

    def set_meta(self, name: str, value: str) -> None:
        with self._lock:
            if self._db is not None:
                self._db.execute("INSERT OR REPLACE INTO meta VALUES (?, ?)", (name, value))
            self._meta[name] = value

    def clear(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.executescript("BEGIN; DELETE FROM entries; DELETE FROM capacity; "
                                       "DELETE FROM meta; COMMIT;")
            self._buckets.clear()
            self._capacity.clear()
            self._meta.clear()

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    def stats(self) -> dict[str, int]:
        """Buckets and entries held (for warm-up reports)."""
        with self._lock:
            return {"buckets": len(self._buckets),
                    "entries": sum(len(b.order) for b in self._buckets.values())}
