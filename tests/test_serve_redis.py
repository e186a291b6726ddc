"""The service on a real redis-server: same decisions as in-process state; two replicas
(two uvicorn processes) keep one review queue."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from valuechain.serve.log import DecisionLog
from valuechain.serve.service import open_service

from .redis_server import redis_url
from .serve_world import HEADERS, LiveServer, event, packaged_project

__all__ = ["redis_url"]  # the fixture, imported for pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return packaged_project(tmp_path_factory.getbasetemp())


def test_redis_and_memory_state_give_identical_decisions(project: Path, redis_url: str,
                                                         tmp_path: Path) -> None:
    events = [event(300 + i, review=i % 3 == 0, customer=840_000_000 + i % 3, hour=10 + i % 5)
              for i in range(24)]
    results: dict[str, list[Any]] = {}
    for name, state in (("memory", "memory"), ("redis", redis_url)):
        service = open_service(project, state=state, log_path=tmp_path / f"{name}.sqlite",
                               namespace="vc-test-identical", capacity_limit=5)
        try:
            results[name] = [service.decider.decide(e) for e in events]
        finally:
            service.close()
        with DecisionLog(tmp_path / f"{name}.sqlite") as log:
            results[name + "-features"] = log.read()["features"].tolist()
    memory, redis = results["memory"], results["redis"]
    assert [d.score for d in memory] == [d.score for d in redis]
    assert [d.action for d in memory] == [d.action for d in redis]
    assert [d.overflow for d in memory] == [d.overflow for d in redis]
    assert results["memory-features"] == results["redis-features"]
    assert sum(d.overflow for d in memory) == 8 - 5  # 8 reviews asked, 5 fit


def test_two_replicas_on_one_redis_keep_one_review_queue(project: Path, redis_url: str,
                                                        tmp_path: Path) -> None:
    limit = 7
    args = ("--state", redis_url, "--namespace", "vc-test-replicas", "--capacity-limit",
            str(limit))
    a = LiveServer(project, *args, log=tmp_path / "a.sqlite")
    b = LiveServer(project, *args, log=tmp_path / "b.sqlite")
    with a, b:
        b.wait()
        answers: list[dict[str, Any]] = []

        def send(url: str, offset: int) -> None:
            with httpx.Client(base_url=url, headers=HEADERS, timeout=30.0) as client:
                for i in range(15):
                    res = client.post("/v1/decide", json=event(
                        offset + i, review=True, day="2025-10-01"))
                    assert res.status_code == 200, res.text
                    answers.append(res.json())

        threads = [threading.Thread(target=send, args=(s.url, k * 1000))
                   for k, s in enumerate((a, b, a, b))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(answers) == 60
    assert all(x["policy_action"] == "review" for x in answers)
    assert sum(x["action"] == "review" for x in answers) == limit
    assert sum(x["overflow"] for x in answers) == 60 - limit
    reviews = 0
    for name in ("a", "b"):
        with DecisionLog(tmp_path / f"{name}.sqlite") as log:
            frame = log.read()
            reviews += int((frame["action"] == "review").sum())
            assert len(frame) == 30  # each replica logged what it decided
    assert reviews == limit


def test_two_worker_processes_share_redis_and_one_log_file(project: Path, redis_url: str,
                                                          tmp_path: Path) -> None:
    log_path = tmp_path / "shared.sqlite"
    args = ("--state", redis_url, "--namespace", "vc-test-workers", "--workers", "2")
    answers: list[dict[str, Any]] = []
    with LiveServer(project, *args, log=log_path) as server:

        def send(offset: int) -> None:
            with httpx.Client(base_url=server.url, headers=HEADERS, timeout=30.0) as client:
                for i in range(10):
                    res = client.post("/v1/decide", json=event(
                        offset + i, customer=860_000_001, day="2025-10-02", minute=i))
                    assert res.status_code == 200, res.text
                    answers.append(res.json())

        threads = [threading.Thread(target=send, args=(k * 100,)) for k in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert len(answers) == 30
    with DecisionLog(log_path) as log:
        frame = log.read()
        assert log.integrity() == "ok"
    assert sorted(frame["decision_id"]) == sorted(a["decision_id"] for a in answers)
    assert frame["seq"].is_unique  # both processes' group commits share one sequence
