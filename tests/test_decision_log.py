"""The decision log: group commit, durability under SIGKILL, journal order, export."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from valuechain.errors import ArtifactError, SpecError
from valuechain.serve.log import DecisionLog, DecisionRecord

SRC = Path(__file__).resolve().parents[1] / "src"


def test_concurrent_appends_are_grouped_and_all_durable(tmp_path: Path) -> None:
    log = DecisionLog(tmp_path / "log.sqlite")
    n_threads, per_thread = 16, 50

    def worker(w: int) -> None:
        for i in range(per_thread):
            log.append(DecisionRecord.example(f"w{w}-{i}", time_us=1_000_000 * i))

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats = log.stats
    log.close()
    reopened = DecisionLog(tmp_path / "log.sqlite")
    assert reopened.count() == n_threads * per_thread == stats.records
    # group commit: concurrent appends shared transactions
    assert stats.batches < stats.records
    assert stats.max_batch > 1
    frame = reopened.read()
    assert frame["seq"].is_unique and frame["seq"].is_monotonic_increasing
    assert reopened.integrity() == "ok"
    reopened.close()


def test_a_failed_batch_raises_for_its_callers_and_writes_nothing(tmp_path: Path) -> None:
    with DecisionLog(tmp_path / "log.sqlite") as log:
        log.append(DecisionRecord.example("same"))
        with pytest.raises(ArtifactError, match="logged twice"):
            log.append_many([DecisionRecord.example("other"), DecisionRecord.example("same")])
        assert log.count() == 1
        log.append(DecisionRecord.example("after"))  # the writer keeps working
        assert log.read()["decision_id"].tolist() == ["same", "after"]


def test_a_repeated_decision_id_is_refused_or_skipped_as_asked(tmp_path: Path) -> None:
    """The service's appends refuse a logged id (a random id seen twice is a bug); batch
    scoring's (``on_repeat="skip"``, stable ids) keep the decision logged first, append the
    others and count the skipped ones: re-running a batch logs nothing twice."""
    with DecisionLog(tmp_path / "log.sqlite") as log:
        assert log.append_many([DecisionRecord.example(f"d{i}") for i in range(3)]) == 3
        again = [DecisionRecord.example("d1", action="review"),
                 DecisionRecord.example("d3"), DecisionRecord.example("d3")]
        with pytest.raises(ArtifactError, match="logged twice"):
            log.append_many(again)
        assert log.append_many(again, on_repeat="skip") == 1
        assert log.append_many(again, on_repeat="skip") == 0
        frame = log.read()
        assert frame["decision_id"].tolist() == ["d0", "d1", "d2", "d3"]
        assert log.get("d1")["action"] == "approve"  # never replaced
        assert frame["seq"].is_unique and frame["seq"].is_monotonic_increasing
        assert log.stats.records == 4 and log.stats.repeated == 5
        with pytest.raises(SpecError, match="on_repeat"):
            log.append_many(again, on_repeat="replace")


def test_read_json_columns_journal_and_export(tmp_path: Path) -> None:
    with DecisionLog(tmp_path / "log.sqlite") as log:
        rec = DecisionRecord(
            decision_id="d1", time_us=1_735_732_800_000_000, key="tx1", bundle_version="v3",
            policy_version="three_band@abc", event={"transaction_id": "tx1", "amount": 9.5},
            features={"amount": 9.5, "ratio": float("nan")}, score=0.42,
            policy_action="review", action="approve", overflow=True,
            capacity_note="full", reasons=[{"feature": "amount", "value": 9.5,
                                            "contribution": 0.3}],
            latency_us={"features": 10, "model": 20, "policy": 1})
        log.append(rec)
        log.append_updates("outcome", "chargebacks", [{"transaction_id": "tx1"}]).result()
        log.append(DecisionRecord.example("d2", time_us=1_735_819_200_000_000,
                                          action="review"))
        got = log.get("d1")
        assert got is not None
        assert got["time"] == "2025-01-01T12:00:00.000000Z"
        assert got["features"] == {"amount": 9.5, "ratio": None}  # NaN is stored as null
        assert got["overflow"] is True or got["overflow"] == 1
        assert got["reasons"][0]["feature"] == "amount"
        kinds = [(e.kind, e.source) for e in log.journal()]
        assert kinds == [("decision", None), ("outcome", "chargebacks"), ("decision", None)]
        assert [e.seq for e in log.journal(after_seq=1)] == [2, 3]
        counts = log.action_counts()
        assert counts["n"].sum() == 2 and set(counts["action"]) == {"approve", "review"}
        assert len(log.read(since=pd.Timestamp("2025-01-02"))) == 1
        out = log.export(tmp_path / "out" / "decisions.parquet")
    table = pd.read_parquet(out)
    assert table["decision_id"].tolist() == ["d1", "d2"]
    assert str(table["time"].dtype).startswith("datetime64") and table["score"].iloc[0] == 0.42


def test_not_a_database_is_an_artifact_error(tmp_path: Path) -> None:
    bad = tmp_path / "log.sqlite"
    bad.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(ArtifactError, match=r"log\.sqlite"):
        DecisionLog(bad)


_WRITER = textwrap.dedent("""
    import sys, threading
    from pathlib import Path
    from valuechain.serve.log import DecisionLog, DecisionRecord
    log = DecisionLog(Path(sys.argv[1]))
    lock = threading.Lock()
    def worker(w):
        i = 0
        while True:
            rid = f"w{w}-{i}"
            log.append(DecisionRecord.example(rid, time_us=i))
            with lock:
                sys.stdout.write(rid + "\\n")
                sys.stdout.flush()
            i += 1
    for w in range(8):
        threading.Thread(target=worker, args=(w,), daemon=True).start()
    threading.Event().wait()
""")


def test_sigkill_mid_burst_keeps_every_acknowledged_record(tmp_path: Path) -> None:
    path = tmp_path / "log.sqlite"
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE,
                            env=env, text=True)
    assert proc.stdout is not None
    acked: list[str] = []
    deadline = time.monotonic() + 60
    while len(acked) < 400 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        acked.append(line.strip())
    proc.send_signal(signal.SIGKILL)  # mid-burst: 8 writers are appending right now
    proc.wait()
    acked += [line.strip() for line in proc.stdout if line.strip()]
    assert len(acked) >= 400
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    stored = {r[0] for r in conn.execute("SELECT decision_id FROM decisions")}
    conn.close()
    missing = set(acked) - stored
    assert not missing, f"{len(missing)} acknowledged records lost, e.g. {sorted(missing)[:3]}"
    with DecisionLog(path) as log:  # the log opens and appends after the crash
        log.append(DecisionRecord.example("after-crash"))
        assert log.count() == len(stored) + 1
