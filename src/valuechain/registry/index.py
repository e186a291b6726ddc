"""The registry: a folder of immutable bundles and a SQLite index of their versions and stages.

``<root>/bundles/<version>/`` holds each bundle (read-only files, see
:mod:`valuechain.registry.layout`); ``<root>/index.sqlite`` holds one row per version (its
stage, headline metrics, gates) and every stage change (``events``). Every write is one
SQLite transaction opened with ``BEGIN IMMEDIATE``, so two processes packaging or promoting
at once queue on the database lock instead of both taking the same version number.

Stages: ``staging`` (packaged), ``production`` (at most one version), ``archived``
(production before). :meth:`Registry.promote` moves a version to production only when its
gates pass; :meth:`Registry.rollback` brings back the version that was production before the
current one.

>>> import tempfile
>>> registry = Registry(Path(tempfile.mkdtemp()))
>>> registry.versions(), registry.production()
([], None)
>>> registry.rollback()
Traceback (most recent call last):
...
valuechain.errors.ArtifactError: no version is in production in the registry at ...
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from valuechain.errors import ArtifactError
from valuechain.registry.bundle import Bundle, load_bundle, verify_bundle
from valuechain.registry.gates import Gate, PromotionError, promotion_message

__all__ = ["INDEX", "SCHEMA", "Promotion", "Registry", "VersionInfo"]

INDEX: Final = "index.sqlite"
STAGES: Final = ("staging", "production", "archived")
#: Names :meth:`Registry.get` accepts besides ``v<N>``.
ALIASES: Final = ("production", "latest")

SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS versions (
    version       TEXT PRIMARY KEY,          -- v1, v2, ...
    number        INTEGER NOT NULL UNIQUE,   -- 1, 2, ... (monotonic)
    content_hash  TEXT NOT NULL UNIQUE,      -- sha256 of the bundle's content files
    stage         TEXT NOT NULL CHECK (stage IN ('staging', 'production', 'archived')),
    created_at    TEXT NOT NULL,             -- ISO 8601, UTC
    run_id        TEXT NOT NULL,
    candidate     TEXT NOT NULL,
    spec_hash     TEXT,
    test_auc      REAL,
    test_ap       REAL,
    savings       REAL,                      -- test savings of the policy vs savings_vs
    savings_vs    TEXT,                      -- 'rules' (today's rule) or 'approve_all'
    currency      TEXT,
    gates_passed  INTEGER NOT NULL,
    gates         TEXT NOT NULL,             -- JSON list of {name, passed, detail, fix}
    path          TEXT NOT NULL              -- bundles/<version>, relative to the root
);
CREATE TABLE IF NOT EXISTS events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    at        TEXT NOT NULL,
    action    TEXT NOT NULL,                 -- package, promote, rollback
    version   TEXT NOT NULL,                 -- the version the action is about
    previous  TEXT,                          -- production before the action (promote/rollback)
    detail    TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS one_production ON versions (stage)
    WHERE stage = 'production';
"""


def now() -> str:
    """The current UTC time, ISO 8601 to the second."""
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class VersionInfo:
    """One version as the index records it (stage, headline metrics, gates)."""

    version: str
    number: int
    stage: str
    created_at: str
    run_id: str
    candidate: str
    content_hash: str
    path: Path
    test_auc: float | None
    test_ap: float | None
    savings: float | None
    savings_vs: str | None
    currency: str | None
    gates: tuple[Gate, ...]
    spec_hash: str | None = None

    @property
    def gates_passed(self) -> bool:
        return all(g.passed for g in self.gates)

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "stage": self.stage, "created_at": self.created_at,
                "run_id": self.run_id, "candidate": self.candidate,
                "content_hash": self.content_hash, "path": str(self.path),
                "test_auc": self.test_auc, "test_ap": self.test_ap, "savings": self.savings,
                "savings_vs": self.savings_vs, "currency": self.currency,
                "gates_passed": self.gates_passed, "gates": [g.to_json() for g in self.gates]}


@dataclass(frozen=True)
class Promotion:
    """What a promotion or rollback changed: the version now in production and the one before."""

    version: str
    previous: str | None
    action: str
    gates: tuple[Gate, ...] = ()
    changed: bool = True

    def to_json(self) -> dict[str, Any]:
        return {"action": self.action, "version": self.version, "previous": self.previous,
                "changed": self.changed, "gates": [g.to_json() for g in self.gates]}


class Registry:
    """A registry of bundles at ``root`` (default ``<workspace>/registry``).

    Parameters
    ----------
    root : Path
        The registry folder (created on the first write).
    """

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"Registry({str(self.root)!r})"

    @property
    def bundles(self) -> Path:
        return self.root / "bundles"

    # ------------------------------------------------------------------ the database
    def connect(self) -> sqlite3.Connection:
        """A connection to the index (autocommit; writes go through :meth:`transaction`)."""
        self.root.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(self.root / INDEX, timeout=60.0, isolation_level=None)
        conn.row_factory = sqlite3.Row
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on any error): one writer at once."""
        conn = self.connect()
        try:
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.DatabaseError as err:
                raise ArtifactError(
                    f"{self.root / INDEX}: the registry index cannot be written ({err}). If "
                    "another valuechain process holds it (a long package or promote), wait "
                    "and retry; if the file is damaged, restore it from a backup or move the "
                    "registry aside and package the runs again.") from None
            try:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        conn.execute(statement)
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        finally:
            conn.close()

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[sqlite3.Row]:
        if not (self.root / INDEX).is_file():
            return []
        conn = self.connect()
        try:
            exists = conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'versions'").fetchone()
            return list(conn.execute(sql, args).fetchall()) if exists else []
        except sqlite3.DatabaseError as err:
            raise ArtifactError(f"{self.root / INDEX}: the registry index cannot be read "
                                f"({err}). Restore it from a backup, or move the registry "
                                "aside and package the runs again.") from None
        finally:
            conn.close()

    def _info(self, row: sqlite3.Row) -> VersionInfo:
        return VersionInfo(
            version=row["version"], number=int(row["number"]), stage=row["stage"],
            created_at=row["created_at"], run_id=row["run_id"], candidate=row["candidate"],
            content_hash=row["content_hash"], path=self.root / row["path"],
            test_auc=row["test_auc"], test_ap=row["test_ap"], savings=row["savings"],
            savings_vs=row["savings_vs"], currency=row["currency"],
            gates=tuple(Gate.from_json(g) for g in json.loads(row["gates"])),
            spec_hash=row["spec_hash"])

    # ------------------------------------------------------------------ reading
    def versions(self) -> list[VersionInfo]:
        """Every version, oldest first."""
        return [self._info(r) for r in self._rows("SELECT * FROM versions ORDER BY number")]

    def get(self, version: str) -> VersionInfo:
        """One version (``v3``, or the aliases ``production`` and ``latest``).

        Raises
        ------
        ArtifactError
            Listing the known versions when there is no such version.
        """
        if version in ALIASES:
            sql = ("SELECT * FROM versions WHERE stage = 'production'" if version ==
                   "production" else "SELECT * FROM versions ORDER BY number DESC LIMIT 1")
            found = self._rows(sql)
            if not found:
                raise ArtifactError(
                    f"the registry at {self.root} has no {version} version yet. "
                    + ("Promote one with `valuechain promote VERSION --spec DIR`."
                       if version == "production" else
                       "Package a run with `valuechain package --spec DIR`."))
            return self._info(found[0])
        rows = self._rows("SELECT * FROM versions WHERE version = ?", (version,))
        if not rows:
            known = [v.version for v in self.versions()]
            raise ArtifactError(
                f"version {version!r} is not in the registry at {self.root} (versions: "
                f"{', '.join(known) or 'none yet'}). List them with `valuechain registry`; "
                "package a run with `valuechain package --spec DIR`.")
        return self._info(rows[0])

    def production(self) -> VersionInfo | None:
        """The version in production, if any."""
        rows = self._rows("SELECT * FROM versions WHERE stage = 'production'")
        return self._info(rows[0]) if rows else None

    def load(self, version: str | None = None) -> Bundle:
        """The verified bundle of ``version`` (default: the production version)."""
        if version is None:
            current = self.production()
            if current is None:
                raise ArtifactError(
                    f"no version is in production in the registry at {self.root}. Promote "
                    "one with `valuechain promote VERSION --spec DIR` (`valuechain registry` "
                    "lists them), or name one explicitly.")
            version = current.version
        return load_bundle(self.get(version).path)

    def verify(self) -> list[tuple[str, str | None]]:
        """Every version's bundle checked against its checksums: ``(version, problem or None)``.

        Also lists a ``bundles/v<N>`` folder the index does not know (left by a ``package``
        killed between its rename and its commit) as ``(name, "not in the index ...")``.
        """
        out: list[tuple[str, str | None]] = []
        known = set()
        for info in self.versions():
            known.add(info.path.name)
            try:
                verify_bundle(info.path)
                out.append((info.version, None))
            except ArtifactError as err:
                out.append((info.version, str(err)))
        if self.bundles.is_dir():
            for folder in sorted(p for p in self.bundles.glob("v*") if p.name not in known):
                out.append((folder.name, f"{folder} is not in the index (a `valuechain "
                            "package` stopped before recording it); it is never loaded "
                            "through the registry and can be deleted"))
        return out

    def history(self) -> list[dict[str, Any]]:
        """Every package, promote and rollback event, oldest first."""
        return [dict(r) for r in self._rows("SELECT * FROM events ORDER BY id")]

    # ------------------------------------------------------------------ stage changes
    def gates(self, version: str) -> tuple[Gate, ...]:
        """The gates of ``version``, evaluated again from its verified files."""
        from valuechain.registry.pack import bundle_gates

        return bundle_gates(self.get(version).path)

    def promote(self, version: str) -> Promotion:
        """Move ``version`` to production when every gate passes; production before is archived.

        Raises
        ------
        PromotionError
            Naming every failing gate, its figures and its fix.
        ArtifactError
            When the version is unknown or its bundle does not match its checksums.
        """
        info = self.get(version)
        gates = self.gates(version)  # verifies every checksum first
        if not all(g.passed for g in gates):
            raise PromotionError(promotion_message(version, gates))
        with self.transaction() as conn:
            row = conn.execute("SELECT version FROM versions WHERE stage = 'production'"
                               ).fetchone()
            previous = row["version"] if row else None
            conn.execute("UPDATE versions SET gates = ?, gates_passed = 1 WHERE version = ?",
                         (json.dumps([g.to_json() for g in gates]), info.version))
            if previous == info.version:
                return Promotion(info.version, previous, "promote", gates, changed=False)
            conn.execute("UPDATE versions SET stage = 'archived' WHERE stage = 'production'")
            conn.execute("UPDATE versions SET stage = 'production' WHERE version = ?",
                         (info.version,))
            conn.execute("INSERT INTO events (at, action, version, previous, detail) VALUES "
                         "(?, 'promote', ?, ?, ?)", (now(), info.version, previous,
                                                     "gates passed"))
        return Promotion(info.version, previous, "promote", gates)

    def rollback(self) -> Promotion:
        """Bring back the version that was production before the current one.

        The current version is archived. Rolling back again walks further back, one
        production version at a time. The version brought back is verified (checksums)
        first; its gates passed when it was promoted.

        Raises
        ------
        ArtifactError
            When nothing is in production.
        PromotionError
            When the current production version had no predecessor.
        """
        with self.transaction() as conn:  # read and switch under one lock
            row = conn.execute("SELECT version FROM versions WHERE stage = 'production'"
                               ).fetchone()
            if row is None:
                raise ArtifactError(
                    f"no version is in production in the registry at {self.root}: nothing to "
                    "roll back. Promote one with `valuechain promote VERSION --spec DIR`.")
            current = str(row["version"])
            events = [dict(r) for r in conn.execute("SELECT * FROM events ORDER BY id")]
            back = _before(events, current)
            if back is None:
                raise PromotionError(
                    f"{current} is the first version put in production in the registry at "
                    f"{self.root}: there is no earlier production version to roll back to. "
                    "Promote another version instead (`valuechain promote VERSION`).")
            path = conn.execute("SELECT path FROM versions WHERE version = ?", (back,)
                                ).fetchone()["path"]
            load_bundle(self.root / path)  # refuse a damaged bundle before switching to it
            conn.execute("UPDATE versions SET stage = 'archived' WHERE version = ?", (current,))
            conn.execute("UPDATE versions SET stage = 'production' WHERE version = ?", (back,))
            conn.execute("INSERT INTO events (at, action, version, previous, detail) VALUES "
                         "(?, 'rollback', ?, ?, ?)", (now(), back, current,
                                                      f"rolled back from {current}"))
        return Promotion(back, current, "rollback")


def _before(events: list[dict[str, Any]], version: str) -> str | None:
    """The production version before ``version`` became production (walking rollbacks)."""
    for event in reversed(events):
        if event["version"] != version:
            continue
        if event["action"] == "promote":
            return str(event["previous"]) if event["previous"] else None
        if event["action"] == "rollback":
            # brought back by a rollback: what was before it when it was first promoted
            earlier = [e for e in events[:events.index(event)]
                       if e["version"] == version and e["action"] == "promote"]
            if not earlier:
                return None
            previous = earlier[-1]["previous"]
            return str(previous) if previous else None
    return None
