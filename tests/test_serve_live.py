"""The service as a real uvicorn process: SIGKILL in the middle of a burst, then restart."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import pytest

from valuechain.registry import Registry, default_registry
from valuechain.serve.decider import time_us
from valuechain.serve.features import OnlineFeatures
from valuechain.serve.log import DecisionLog
from valuechain.serve.state import MemoryState
from valuechain.spec.loader import load_spec

from .serve_world import HEADERS, LiveServer, event, packaged_project

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return packaged_project(tmp_path_factory.getbasetemp())


def _burst(url: str, acked: list[tuple[str, dict[str, Any]]], stop: threading.Event,
           worker: int) -> None:
    with httpx.Client(base_url=url, headers=HEADERS, timeout=10.0) as client:
        i = 0
        while not stop.is_set():
            n = worker * 10_000 + i
            ev = event(n, review=i % 4 == 0, customer=830_000_000 + n % 5)
            i += 1
            try:
                res = client.post("/v1/decide", json=ev)
            except httpx.HTTPError:
                return  # the server is gone
            if res.status_code == 200:
                acked.append((res.json()["decision_id"], ev))


def test_sigkill_mid_burst_then_restart(project: Path, tmp_path: Path) -> None:
    log_path = tmp_path / "decisions.sqlite"
    acked: list[tuple[str, dict[str, Any]]] = []
    stop = threading.Event()
    server = LiveServer(project, "--capacity-limit", "6", log=log_path).wait()
    threads = [threading.Thread(target=_burst, args=(server.url, acked, stop, w))
               for w in range(6)]
    for t in threads:
        t.start()
    while len(acked) < 120 and all(t.is_alive() for t in threads):
        threading.Event().wait(0.05)
    server.proc.kill()  # SIGKILL while six clients are sending
    server.proc.wait()
    stop.set()
    for t in threads:
        t.join()
    assert len(acked) >= 120
    # every acknowledged decision is in the log, and the log is intact
    with DecisionLog(log_path) as log:
        assert log.integrity() == "ok"
        logged = log.read()
    ids = set(logged["decision_id"])
    missing = [d for d, _ in acked if d not in ids]
    assert not missing, f"{len(missing)} acknowledged decisions are not in the log"
    reviews = int((logged["action"] == "review").sum())
    assert reviews <= 6
    # restart on the same log: the state is rebuilt from the sources and the log
    probe = event(999_999, review=True, customer=830_000_000, hour=17)
    with LiveServer(project, "--capacity-limit", "6", log=log_path) as again:
        health = httpx.get(again.url + "/health").json()
        assert health["replayed"] == len(logged)
        answer = httpx.post(again.url + "/v1/decide", json=probe, headers=HEADERS).json()
    with DecisionLog(log_path) as log:
        served = log.get(answer["decision_id"])
    assert served is not None
    # reference: the sources, then exactly the logged decisions, in log order
    loaded = load_spec(project)
    bundle = Registry(default_registry(loaded)).load()
    reference = OnlineFeatures(bundle.plan(project), MemoryState())
    reference.warm()
    for ev in logged["event"]:
        reference.apply_event(reference.check_event(ev))
    expected = reference.compute(reference.check_event(probe))
    assert served["features"] == pytest.approx(expected, nan_ok=True)
    same_customer = sum(1 for ev in logged["event"] if ev["customer_id"] == 830_000_000)
    assert served["features"]["cust_count_1d"] == same_customer + 1
    assert answer["overflow"] == (reviews >= 6)
    assert time_us(probe["ts"]) == served["time_us"]
