"""State backends: one conformance suite for MemoryState (with and without a file) and
RedisState (against a real redis-server), persistence, and atomic capacity counting."""

from __future__ import annotations

import multiprocessing
import re
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.redis_server import redis_url
from valuechain.errors import ArtifactError, DataError
from valuechain.serve.redis_state import RedisState
from valuechain.serve.state import MIN_TIME, MemoryState, StateStore

__all__ = ["redis_url"]

BACKENDS = ["memory", "memory-file", "redis"]


@pytest.fixture(params=BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StateStore]:
    state: StateStore
    if request.param == "memory":
        state = MemoryState()
    elif request.param == "memory-file":
        state = MemoryState(tmp_path / "state.sqlite")
    else:
        state = RedisState(request.getfixturevalue("redis_url"), namespace=f"t{id(tmp_path)}")
    yield state
    state.clear()
    state.close()


def test_write_read_replace_trim(store: StateStore) -> None:
    t0 = 1_735_689_600_123_456  # epoch µs: must survive exactly in every backend
    store.write([("b|x", t0 + 2, "c", {"v": 0.1 + 0.2, "s": "é|[1]"}),
                 ("b|x", t0, "a", [1, None, True]),
                 ("b|x", t0, "b", None),
                 ("d", MIN_TIME, "u", {"k": -(2**53)})])
    assert store.read(["b|x", "d", "missing"], [None, None, None]) == [
        [(t0, "a", [1, None, True]), (t0, "b", None),
         (t0 + 2, "c", {"v": 0.30000000000000004, "s": "é|[1]"})],
        [(MIN_TIME, "u", {"k": -(2**53)})], []]
    assert store.read(["b|x"], [t0]) == [[(t0 + 2, "c", {"v": 0.30000000000000004,
                                                          "s": "é|[1]"})]]
    store.write([("b|x", t0 + 1, "a", "moved")], trims=[("b|x", t0)])  # replace, then trim
    assert store.read(["b|x"], [None]) == [[(t0 + 1, "a", "moved"),
                                            (t0 + 2, "c", {"v": 0.30000000000000004,
                                                           "s": "é|[1]"})]]
    assert store.get("b|x", ["c", "zz"]) == [{"v": 0.30000000000000004, "s": "é|[1]"}, None]
    assert store.get("nothing", ["a"]) == [None]


def test_meta_and_clear(store: StateStore) -> None:
    assert store.get_meta("warmed_until") is None
    store.set_meta("warmed_until", "123")
    store.write([("b", 1, "u", 1)])
    assert store.take_capacity("review", 0, 5)
    assert store.get_meta("warmed_until") == "123"
    store.clear()
    assert store.get_meta("warmed_until") is None
    assert store.read(["b"], [None]) == [[]]
    assert store.capacity_used("review", 0) == 0


def test_capacity_counts_per_action_and_period(store: StateStore) -> None:
    assert [store.take_capacity("review", 0, 2) for _ in range(3)] == [True, True, False]
    assert store.take_capacity("review", 86_400_000_000, 2)  # the next period
    assert store.take_capacity("decline", 0, 1)
    assert store.capacity_used("review", 0) == 2
    assert store.capacity_used("review", 86_400_000_000) == 1


def test_released_capacity_can_be_taken_again(store: StateStore) -> None:
    assert [store.take_capacity("review", 0, 2) for _ in range(3)] == [True, True, False]
    store.release_capacity("review", 0)  # a decision that was not logged gives its slot back
    assert store.capacity_used("review", 0) == 1
    assert store.take_capacity("review", 0, 2) and not store.take_capacity("review", 0, 2)
    for _ in range(5):
        store.release_capacity("review", 0)
        store.release_capacity("review", 7)  # a period never counted
    assert store.capacity_used("review", 0) == 0 and store.capacity_used("review", 7) == 0


def test_capacity_is_atomic_under_threads(store: StateStore) -> None:
    taken: list[bool] = []
    lock = threading.Lock()

    def worker() -> None:
        mine = [store.take_capacity("review", 7, 100) for _ in range(40)]
        with lock:
            taken.extend(mine)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(taken) == 100 and len(taken) == 240
    assert store.capacity_used("review", 7) == 100


def _take_many(kind: str, where: str, attempts: int) -> int:
    state: StateStore = (RedisState(where, namespace="procs") if kind == "redis"
                         else MemoryState(Path(where)))
    try:
        return sum(state.take_capacity("review", 0, 150) for _ in range(attempts))
    finally:
        state.close()


@pytest.mark.parametrize("kind", ["redis", "memory-file"])
def test_capacity_is_atomic_across_processes(kind: str, tmp_path: Path,
                                             request: pytest.FixtureRequest) -> None:
    """Several replicas (processes) share one review queue: never more than the limit."""
    where = (request.getfixturevalue("redis_url") if kind == "redis"
             else str(tmp_path / "shared.sqlite"))
    if kind == "memory-file":
        MemoryState(Path(where)).close()  # create the file once
    context = multiprocessing.get_context("fork")
    with context.Pool(4) as pool:
        counts = pool.starmap(_take_many, [(kind, where, 60)] * 4)
    assert sum(counts) == 150
    if kind == "redis":
        RedisState(where, namespace="procs").clear()


def test_memory_state_survives_reopen_and_crash_mid_write(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    state = MemoryState(path)
    state.write([("b", 5, "a", {"x": 1.5})])
    state.take_capacity("review", 0, 10)
    state.set_meta("warmed_until", "5")

    with pytest.raises(TypeError):  # the second payload is not JSON: nothing is written
        state.write([("b", 6, "ok", 1), ("b", 7, "bad", {"x": {1j}})])
    assert state.read(["b"], [None]) == [[(5, "a", {"x": 1.5})]]
    state.close()
    again = MemoryState(path)
    # the failed write left nothing, the earlier one everything
    assert again.read(["b"], [None]) == [[(5, "a", {"x": 1.5})]]
    assert again.capacity_used("review", 0) == 1
    assert again.get_meta("warmed_until") == "5"
    again.close()


def test_damaged_state_file_is_refused_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    path.write_bytes(b"not a database" * 100)
    with pytest.raises(ArtifactError, match="move it away"):
        MemoryState(path)
    ok = tmp_path / "ok.sqlite"
    MemoryState(ok).close()
    with sqlite3.connect(ok) as db:
        db.execute("INSERT INTO entries VALUES ('b', 'u', 1, '{not json')")
    with pytest.raises(ArtifactError, match=re.escape(str(ok))):
        MemoryState(ok)


def test_unreachable_redis_names_the_url() -> None:
    with pytest.raises(DataError, match=re.escape("redis://127.0.0.1:1/0")):
        RedisState("redis://127.0.0.1:1/0")
