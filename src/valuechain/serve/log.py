"""The decision log: every decision appended durably before its response is sent.

:class:`DecisionLog` is a SQLite database in WAL mode (``synchronous=FULL`` by default: a
commit is on disk when it returns). One writer thread owns the write connection and commits appends in
*groups*: while one transaction is being synced, the appends that arrive queue up, and the
next transaction takes all of them (one ``fsync`` per batch, not per decision).
:meth:`DecisionLog.append` returns only once the batch holding its record is durable, so an
acknowledged decision survives a crash (``SIGKILL`` included) and a failed batch is reported
to every caller in it (nothing of it is in the log).

Besides the decisions, the log journals the outcome and dimension updates the service
received (table ``updates``); decisions and updates share one sequence ``seq``, so
:meth:`DecisionLog.journal` replays them in the order they were applied (the service rebuilds
its in-process feature state that way after a restart).

Schema (``PRAGMA user_version`` = :data:`SCHEMA_VERSION`)::

    decisions
      seq             INTEGER  journal order, shared with `updates` (unique)
      decision_id     TEXT     primary key (32 hex characters)
      time            TEXT     decision time: the event's own time, ISO-8601 UTC
      time_us         INTEGER  the same, microseconds since the epoch
      key             TEXT     the decision point's key (e.g. the transaction id)
      bundle_version  TEXT     the bundle that scored it (v1, v2, ...)
      policy_version  TEXT     the policy that acted on it (kind@content hash)
      event           TEXT     the normalised event, JSON (what the state was updated with)
      features        TEXT     feature values, JSON object in the model's column order
      score           REAL     calibrated probability
      policy_action   TEXT     the policy's action before capacity
      action          TEXT     the action returned (after the overflow rule)
      overflow        INTEGER  1 when the capacity was full and the overflow rule applied
      capacity_note   TEXT     e.g. "review 150/150 per 1d full: overflow approve", or NULL
      reasons         TEXT     JSON list of {feature, value, contribution}, largest first
      latency_us      TEXT     JSON object: microseconds per stage (features, model, policy)
      origin          TEXT     "serve" (the HTTP service) or "score" (batch scoring)
      created_at      TEXT     wall-clock time of the decision, ISO-8601 UTC
    updates
      seq, kind ("outcome" | "dimension"), source, row (JSON), created_at

>>> import tempfile, pathlib
>>> log = DecisionLog(pathlib.Path(tempfile.mkdtemp()) / "decisions.sqlite")
>>> log.append(DecisionRecord.example("d1"))
>>> log.count(), log.get("d1")["action"]
(1, 'approve')
>>> log.close()

**A decision id logged twice.** The id is the primary key. By default (``on_repeat="error"``,
the service's appends) a batch holding an id already in the log is refused whole
(:class:`~valuechain.errors.ArtifactError`, nothing of it written): a repeated random id is a
bug. Batch scoring gives each decision a *stable* id (the same batch scored with the same
bundle, policy and capacity gets the same ids, see
:meth:`Decider.decision_id <valuechain.serve.decider.Decider.decision_id>`) and appends with
``on_repeat="skip"``: a decision whose id is already logged is left as it was logged first
(never replaced, never duplicated), the others are appended. Re-running a batch, or resuming
one that stopped half way, therefore logs each decision once; :attr:`LogStats.repeated` counts
the decisions skipped.
"""

from __future__ import annotations

import asyncio
import json
import math
import queue
import sqlite3
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import pandas as pd
import pyarrow as pa

from valuechain.errors import ArtifactError, SpecError
from valuechain.io import write_parquet

__all__ = [
    "ON_REPEAT",
    "SCHEMA_VERSION",
    "DecisionLog",
    "DecisionRecord",
    "JournalEntry",
    "LogStats",
    "iso_us",
]

#: ``PRAGMA user_version`` of a decision log this module writes.
SCHEMA_VERSION: Final = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    seq INTEGER NOT NULL UNIQUE,
    decision_id TEXT PRIMARY KEY,
    time TEXT NOT NULL,
    time_us INTEGER NOT NULL,
    key TEXT NOT NULL,
    bundle_version TEXT NOT NULL,
    policy_version TEXT NOT NULL,
    event TEXT NOT NULL,
    features TEXT NOT NULL,
    score REAL NOT NULL,
    policy_action TEXT NOT NULL,
    action TEXT NOT NULL,
    overflow INTEGER NOT NULL,
    capacity_note TEXT,
    reasons TEXT NOT NULL,
    latency_us TEXT NOT NULL,
    origin TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS decisions_time ON decisions (time_us);
CREATE TABLE IF NOT EXISTS updates (
    seq INTEGER NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    source TEXT NOT NULL,
    row TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (name, value) VALUES ('seq', 0);
"""

_COLUMNS: Final = ("seq", "decision_id", "time", "time_us", "key", "bundle_version",
                   "policy_version", "event", "features", "score", "policy_action", "action",
                   "overflow", "capacity_note", "reasons", "latency_us", "origin",
                   "created_at")
_INSERT_DECISION = (f"INSERT INTO decisions ({', '.join(_COLUMNS)}) VALUES "
                    f"({', '.join('?' * len(_COLUMNS))})")
_INSERT_DECISION_ONCE = _INSERT_DECISION + " ON CONFLICT (decision_id) DO NOTHING"
#: What an append does with a decision id the log already holds (see the module docstring).
ON_REPEAT: Final = ("error", "skip")
_INSERT_UPDATE = "INSERT INTO updates (seq, kind, source, row, created_at) VALUES (?,?,?,?,?)"
_JSON_COLUMNS: Final = ("event", "features", "reasons", "latency_us")


def iso_us(time_us: int) -> str:
    """Microseconds since the epoch as ISO-8601 UTC text with microseconds.

    >>> iso_us(1_700_000_000_123_456)
    '2023-11-14T22:13:20.123456Z'
    """
    seconds, micros = divmod(int(time_us), 1_000_000)
    base = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{base}.{micros:06d}Z"


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=_json_default, allow_nan=False)


def _dumps_clean(value: Any) -> str:
    """``_dumps(_clean(value))``: JSON with non-finite floats as null.

    Tries the C encoder first (it refuses NaN and ±inf); only a value holding one is
    cleaned in Python. Same text either way for the string-keyed values logged here.
    """
    try:
        return _dumps(value)
    except ValueError:
        return _dumps(_clean(value))


def _json_default(value: Any) -> Any:
    """NumPy scalars, timestamps and other values as plain JSON (NaN -> null)."""
    item = getattr(value, "item", None)
    if callable(item):
        value = item()
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, int | float | str | bool):
            return value
    if isinstance(value, datetime | pd.Timestamp):
        return value.isoformat()
    return str(value)


_SCALARS: Final = frozenset({str, int, bool, type(None)})


def _clean(value: Any) -> Any:
    """Replace non-finite floats by None (JSON has no NaN), recursively for dicts and lists."""
    kind = type(value)
    if kind in _SCALARS:  # the common exact types first (no ABC checks)
        return value
    if kind is dict:
        return {str(k): _clean(v) for k, v in value.items()}
    if kind is list:
        return [_clean(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


@dataclass(frozen=True)
class DecisionRecord:
    """One decision as logged (see the module docstring for the meaning of each field)."""

    decision_id: str
    time_us: int
    key: str
    bundle_version: str
    policy_version: str
    event: Mapping[str, Any]
    features: Mapping[str, Any]
    score: float
    policy_action: str
    action: str
    overflow: bool = False
    capacity_note: str | None = None
    reasons: Sequence[Mapping[str, Any]] = ()
    latency_us: Mapping[str, int] = field(default_factory=dict)
    origin: str = "serve"
    created_at_us: int = 0

    def row(self, seq: int) -> tuple[Any, ...]:
        """The values of one ``decisions`` row, in :data:`_COLUMNS` order."""
        created = self.created_at_us or time.time_ns() // 1000
        return (seq, self.decision_id, iso_us(self.time_us), int(self.time_us), self.key,
                self.bundle_version, self.policy_version, _dumps_clean(self.event),
                _dumps_clean(self.features), float(self.score), self.policy_action,
                self.action, int(bool(self.overflow)), self.capacity_note,
                _dumps_clean(list(self.reasons)), _dumps(dict(self.latency_us)), self.origin,
                iso_us(created))

    @classmethod
    def example(cls, decision_id: str = "d1", time_us: int = 1_735_689_600_000_000,
                action: str = "approve") -> DecisionRecord:
        """A small record for examples and tests."""
        return cls(decision_id=decision_id, time_us=time_us, key="t1", bundle_version="v1",
                   policy_version="three_band@0", event={"transaction_id": "t1"},
                   features={"amount": 12.5}, score=0.01, policy_action=action,
                   action=action)


@dataclass(frozen=True)
class JournalEntry:
    """One entry of the replay journal: a decision's event, or an outcome/dimension row."""

    seq: int
    kind: str  # "decision" | "outcome" | "dimension"
    source: str | None
    row: dict[str, Any]
    action: str | None = None  # decisions: the action taken
    time_us: int | None = None  # decisions: the decision time


@dataclass(frozen=True)
class LogStats:
    """Counters of the group commit since the log was opened: records written, transactions,
    the largest transaction, and decisions skipped because their id was already logged
    (appends with ``on_repeat="skip"``)."""

    records: int
    batches: int
    max_batch: int
    repeated: int = 0


@dataclass
class _Item:
    rows: list[tuple[str, Any]]  # ("decision", DecisionRecord) | ("update", (kind, src, row))
    future: Future[int]  # the rows written (repeated decision ids skipped are not counted)
    skip_repeated: bool = False


_STOP: Final = object()


class DecisionLog:
    """An append-only, crash-safe SQLite log of decisions with group commit.

    Parameters
    ----------
    path : Path
        The database file (created with its directory when missing).
    max_batch : int, default 4096
        Most records committed in one transaction.
    sync : {"full", "normal"}, default "full"
        ``full``: every commit is synced to disk (survives a power loss or an OS crash);
        ``normal``: synced at WAL checkpoints only (survives the process being killed, which
        is what a SIGKILL test checks, but an OS crash may lose the last commits) — faster
        on disks with slow ``fsync``.

    Notes
    -----
    Several processes may append to the same file (SQLite serialises their transactions;
    each process runs its own writer thread). Reads use their own connections and never
    block the writer (WAL).

    Examples
    --------
    >>> import tempfile, pathlib
    >>> with DecisionLog(pathlib.Path(tempfile.mkdtemp()) / "log.sqlite") as log:
    ...     log.append_many([DecisionRecord.example(f"d{i}") for i in range(3)])
    ...     log.read()["decision_id"].tolist()
    3
    ['d0', 'd1', 'd2']
    """

    def __init__(self, path: Path, *, max_batch: int = 4096, sync: str = "full") -> None:
        if sync not in ("full", "normal"):
            raise SpecError(f"decision log `sync` must be 'full' or 'normal', got {sync!r}.")
        self.path = Path(path)
        self.max_batch = max_batch
        self.sync = sync
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._conn = self._connect()
        self._init_schema()
        self._queue: queue.SimpleQueue[_Item | object] = queue.SimpleQueue()
        self._records = self._batches = self._max_seen = self._repeated = 0
        self._closed = False
        self._thread = threading.Thread(target=self._writer, name="decision-log-writer",
                                        daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ setup

    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None,
                                   timeout=30.0)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(f"PRAGMA synchronous={self.sync.upper()}")
            conn.execute("PRAGMA busy_timeout=30000")
        except sqlite3.DatabaseError as err:
            raise ArtifactError(
                f"{self.path}: cannot open the decision log ({err}). It is not a SQLite "
                "database or it is damaged; move it aside (the service starts a new log) and "
                "keep the old file for audit.") from err
        return conn

    def _init_schema(self) -> None:
        try:
            version = self._conn.execute("PRAGMA user_version").fetchone()[0]
            if version not in (0, SCHEMA_VERSION):
                raise ArtifactError(
                    f"{self.path}: decision log schema version {version}; this valuechain "
                    f"writes version {SCHEMA_VERSION}. Use the valuechain that wrote it, or "
                    "move the file aside to start a new log.")
            self._conn.executescript(f"BEGIN IMMEDIATE;{_SCHEMA}"
                                     f"PRAGMA user_version={SCHEMA_VERSION};COMMIT;")
        except sqlite3.DatabaseError as err:
            raise ArtifactError(
                f"{self.path}: the decision log is damaged ({err}); move it aside and keep it "
                "for audit; the service starts a new one.") from err

    # ------------------------------------------------------------------ writing

    def _writer(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            items: list[_Item] = [first]  # type: ignore[list-item]
            count = len(items[0].rows)
            stop = False
            while count < self.max_batch:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                assert isinstance(nxt, _Item)
                items.append(nxt)
                count += len(nxt.rows)
            written = self._commit(items)
            for item, result in zip(items, written, strict=True):
                if isinstance(result, BaseException):
                    item.future.set_exception(result)
                else:
                    item.future.set_result(result)
            if stop:
                return

    def _commit(self, items: list[_Item]) -> list[int | BaseException]:
        """One transaction for ``items``; per item the rows written, or the error (the same
        for every item: nothing of the transaction is written)."""
        conn = self._conn
        written: list[int] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                seq = int(conn.execute("SELECT value FROM meta WHERE name='seq'").fetchone()[0])
                now = iso_us(time.time_ns() // 1000)
                for item in items:
                    decisions: list[tuple[Any, ...]] = []
                    updates: list[tuple[Any, ...]] = []
                    for kind, payload in item.rows:
                        seq += 1
                        if kind == "decision":
                            decisions.append(payload.row(seq))
                        else:
                            what, source, row = payload
                            updates.append((seq, what, source, _dumps(_clean(row)), now))
                    before = conn.total_changes
                    if decisions:
                        conn.executemany(_INSERT_DECISION_ONCE if item.skip_repeated
                                         else _INSERT_DECISION, decisions)
                    if updates:
                        conn.executemany(_INSERT_UPDATE, updates)
                    written.append(conn.total_changes - before)
                conn.execute("UPDATE meta SET value=? WHERE name='seq'", (seq,))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except Exception as err:  # reported to every waiter of the batch
            error = _as_log_error(self.path, err)
            return [error for _ in items]
        n = sum(written)
        self._records += n
        self._repeated += sum(len(i.rows) for i in items) - n
        self._batches += 1
        self._max_seen = max(self._max_seen, n)
        return list(written)

    def _submit(self, rows: list[tuple[str, Any]], skip_repeated: bool = False
                ) -> Future[int]:
        if self._closed:
            raise ArtifactError(f"{self.path}: the decision log is closed; open a new "
                                "DecisionLog to append.")
        future: Future[int] = Future()
        self._queue.put(_Item(rows, future, skip_repeated))
        return future

    def append(self, record: DecisionRecord) -> None:
        """Append one decision; returns once it is durable (raises if its batch failed)."""
        self._submit([("decision", record)]).result()

    def append_many(self, records: Sequence[DecisionRecord], *, on_repeat: str = "error"
                    ) -> int:
        """Append several decisions, one transaction per ``max_batch`` of them (batch
        scoring); durable on return. Returns the decisions written.

        ``on_repeat``: ``"error"`` refuses a transaction holding a decision id already in the
        log (or twice in it): :class:`~valuechain.errors.ArtifactError`, nothing of it
        written; ``"skip"`` keeps the decision logged first and writes the others (batch
        scoring's stable ids: re-running a batch logs nothing twice).
        """
        if on_repeat not in ON_REPEAT:
            raise SpecError(f"`on_repeat` must be one of {', '.join(ON_REPEAT)}, got "
                            f"{on_repeat!r}.")
        written = 0
        for start in range(0, len(records), self.max_batch):
            written += self._submit([("decision", r)
                                     for r in records[start:start + self.max_batch]],
                                    on_repeat == "skip").result()
        return written

    async def append_async(self, record: DecisionRecord) -> None:
        """:meth:`append` for an event loop: awaits durability without blocking the loop."""
        await asyncio.wrap_future(self._submit([("decision", record)]))

    def submit(self, record: DecisionRecord) -> Future[int]:
        """Queue one decision; the future resolves once it is durable."""
        return self._submit([("decision", record)])

    def append_updates(self, kind: str, source: str, rows: Sequence[Mapping[str, Any]]
                       ) -> Future[int]:
        """Journal outcome or dimension rows; the future resolves once they are durable."""
        return self._submit([("update", (kind, source, dict(r))) for r in rows])

    @property
    def stats(self) -> LogStats:
        """Records and batches committed since opening (batch size shows the grouping),
        and the decisions skipped as already logged."""
        return LogStats(self._records, self._batches, self._max_seen, self._repeated)

    def close(self) -> None:
        """Finish the queued appends, stop the writer thread and close the database."""
        if self._closed:
            return
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join()
        self._conn.close()

    def __enter__(self) -> DecisionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ reading

    def _reader(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=30.0)
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    def count(self) -> int:
        """Decisions in the log."""
        with _closing(self._reader()) as conn:
            return int(conn.execute("SELECT count(*) FROM decisions").fetchone()[0])

    def get(self, decision_id: str) -> dict[str, Any] | None:
        """One decision as a dict (JSON columns parsed), or None."""
        frame = self.read(where="decision_id = ?", params=(decision_id,))
        return None if frame.empty else {str(k): v for k, v in frame.iloc[0].items()}

    def read(self, *, since: datetime | None = None, until: datetime | None = None,
             limit: int | None = None, where: str | None = None,
             params: Sequence[Any] = (), parse_json: bool = True) -> pd.DataFrame:
        """Decisions in journal order as a DataFrame (for monitoring and audits).

        Parameters
        ----------
        since, until : datetime, optional
            Keep decisions with ``since <= time < until`` (decision time, UTC when naive).
        limit : int, optional
            At most this many rows (the first in journal order).
        where, params : str, sequence
            An extra SQL condition with ``?`` parameters, e.g. ``"action = ?", ("review",)``.
        parse_json : bool, default True
            Parse the JSON columns (event, features, reasons, latency_us) into Python values.
        """
        clauses, args = [], list(params)
        if where:
            clauses.append(f"({where})")
        if since is not None:
            clauses.append("time_us >= ?")
            args.append(_us(since))
        if until is not None:
            clauses.append("time_us < ?")
            args.append(_us(until))
        sql = f"SELECT {', '.join(_COLUMNS)} FROM decisions"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY seq"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with _closing(self._reader()) as conn:
            frame = pd.read_sql_query(sql, conn, params=args)
        frame["overflow"] = frame["overflow"].astype(bool)
        if parse_json:
            for name in _JSON_COLUMNS:
                frame[name] = [json.loads(v) for v in frame[name]]
        return frame

    def action_counts(self, per_us: int = 86_400_000_000) -> pd.DataFrame:
        """Decisions per period (epoch-aligned) and action: columns period_start, action, n."""
        sql = ("SELECT (time_us - time_us % ?) AS start_us, action, count(*) AS n FROM "
               "decisions GROUP BY start_us, action ORDER BY start_us, action")
        with _closing(self._reader()) as conn:
            frame = pd.read_sql_query(sql, conn, params=(int(per_us),))
        frame.insert(0, "period_start", pd.to_datetime(frame.pop("start_us"), unit="us",
                                                       utc=True))
        return frame

    def journal(self, *, after_seq: int = 0, origin: str | None = None
                ) -> Iterator[JournalEntry]:
        """Decisions and updates in the order they were applied (for replaying state).

        ``origin`` keeps only the decisions of that origin (``"serve"``: not batch scoring).
        """
        sql = ("SELECT seq, 'decision', NULL, event, action, time_us FROM decisions "
               "WHERE seq > ? AND (? IS NULL OR origin = ?) UNION ALL SELECT seq, kind, "
               "source, row, NULL, NULL FROM updates WHERE seq > ? ORDER BY 1")
        with _closing(self._reader()) as conn:
            for seq, kind, source, row, action, time_us in conn.execute(
                    sql, (after_seq, origin, origin, after_seq)):
                yield JournalEntry(int(seq), kind, source, json.loads(row), action,
                                   None if time_us is None else int(time_us))

    def export(self, path: Path, *, since: datetime | None = None,
               until: datetime | None = None) -> Path:
        """Write the decisions to Parquet (atomically); JSON columns stay JSON text.

        ``time`` and ``created_at`` become UTC timestamps; the other columns keep the types
        of the schema. Returns ``path``.
        """
        frame = self.read(since=since, until=until, parse_json=False)
        for name in ("time", "created_at"):
            frame[name] = pd.to_datetime(frame[name], utc=True, format="ISO8601")
        table = pa.Table.from_pandas(frame, preserve_index=False)
        write_parquet(Path(path), table)
        return Path(path)

    def integrity(self) -> str:
        """SQLite's ``PRAGMA integrity_check`` answer (``'ok'`` when the file is intact)."""
        with _closing(self._reader()) as conn:
            return str(conn.execute("PRAGMA integrity_check").fetchone()[0])


class _closing:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def __enter__(self) -> sqlite3.Connection:
        return self.conn

    def __exit__(self, *exc: object) -> None:
        self.conn.close()


def _us(when: datetime) -> int:
    stamp = pd.Timestamp(when)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return int(stamp.value // 1000)


def _as_log_error(path: Path, err: Exception) -> Exception:
    if isinstance(err, sqlite3.IntegrityError):
        return ArtifactError(f"{path}: the decision log refused a batch ({err}); a decision id "
                             "was logged twice. Nothing of the batch was written.")
    if isinstance(err, sqlite3.DatabaseError | OSError):
        return ArtifactError(f"{path}: the decision log could not commit ({err}); nothing of "
                             "the batch was written. Check the disk (space, permissions).")
    return err
