"""The decider: fast scoring equals the bundle's, failures leave no state, replay restores it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from valuechain.errors import ArtifactError, DataError
from valuechain.registry import Registry, default_registry
from valuechain.serve.decider import Decider, time_us
from valuechain.serve.features import OnlineFeatures
from valuechain.serve.log import DecisionLog
from valuechain.serve.service import open_service
from valuechain.serve.state import MemoryState
from valuechain.spec.loader import load_spec

from .serve_world import event, packaged_project

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return packaged_project(tmp_path_factory.getbasetemp())


def _decider(project: Path, log: DecisionLog | None, **kwargs: object) -> Decider:
    loaded = load_spec(project)
    bundle = Registry(default_registry(loaded)).load()
    online = OnlineFeatures(bundle.plan(project), MemoryState())
    online.warm()
    return Decider(bundle, online, log, **kwargs)  # type: ignore[arg-type]


def test_scoring_feature_mappings_is_bit_identical_to_frames(project: Path) -> None:
    decider = _decider(project, None)
    tx = pd.read_parquet(project / "data" / "transactions.parquet").tail(400)
    rows = []
    for row in tx.to_dict("records"):
        ev = {str(k): v for k, v in row.items()}
        rows.append(decider.online.compute(decider.online.check_event(ev)))
    rows.append({n: None for n in decider.feature_names})  # everything missing
    rows.append({**rows[0], "risk_tier": "never-seen-level", "amount": float("inf")})
    names = list(decider.feature_names)
    frame = pd.DataFrame([[r.get(n) for n in names] for r in rows], columns=names)
    scores, contrib = decider.scorer(rows)
    assert np.array_equal(scores, decider.bundle.score(frame))
    assert np.array_equal(contrib, decider.bundle.contributions(frame))
    one, _ = decider.scorer(rows[:1])  # one row at a time gives the same bits
    assert one[0] == scores[0]


def test_a_failed_log_append_changes_no_state(project: Path, tmp_path: Path) -> None:
    log = DecisionLog(tmp_path / "log.sqlite")
    decider = _decider(project, log, capacity_limit=5)
    probe = event(1, customer=777_000_001, hour=15)
    before = decider.online.compute(decider.online.check_event(probe))
    cap = decider.capacity
    assert cap is not None
    start = cap.period_start(time_us(event(2)["ts"]))
    log.close()  # appends now fail
    with pytest.raises(ArtifactError, match="closed"):
        decider.decide(event(2, review=True, customer=777_000_001))
    after = decider.online.compute(decider.online.check_event(probe))
    assert after == before  # the event was not applied
    assert decider.state.capacity_used("review", start) == 0  # its review slot was given back


def test_invalid_event_is_a_data_error_and_takes_nothing(project: Path, tmp_path: Path) -> None:
    with DecisionLog(tmp_path / "log.sqlite") as log:
        decider = _decider(project, log)
        with pytest.raises(DataError, match="amount"):
            decider.decide({k: v for k, v in event(3).items() if k != "amount"})
        assert log.count() == 0


def test_batch_equals_one_at_a_time(project: Path, tmp_path: Path) -> None:
    events = [event(10 + i, review=i % 3 == 0, customer=800_000_000 + i % 4)
              for i in range(30)]
    with DecisionLog(tmp_path / "a.sqlite") as log_a, DecisionLog(tmp_path / "b.sqlite") as log_b:
        one = _decider(project, log_a, capacity_limit=4)
        batch = _decider(project, log_b, capacity_limit=4)
        singles = [one.decide(e) for e in events]
        batched = batch.decide_batch(events)
    assert [d.score for d in singles] == [d.score for d in batched]
    assert [d.action for d in singles] == [d.action for d in batched]
    assert [d.reasons for d in singles] == [d.reasons for d in batched]
    assert sum(d.action == "review" for d in singles) == 4
    assert sum(d.overflow for d in singles) == 10 - 4


def test_replay_restores_features_and_capacity(project: Path, tmp_path: Path) -> None:
    log_path = tmp_path / "log.sqlite"
    first = open_service(project, log_path=log_path, capacity_limit=3)
    for i in range(6):
        first.decider.decide(event(40 + i, review=i % 2 == 0, customer=810_000_001))
    probe = event(60, review=True, customer=810_000_001, hour=16)
    expected = first.decider.online.compute(first.decider.online.check_event(probe))
    used = first.decider.state.capacity_used(  # type: ignore[union-attr]
        "review", first.decider.capacity.period_start(time_us(probe["ts"])))  # type: ignore[union-attr]
    first.close()
    second = open_service(project, log_path=log_path, capacity_limit=3)
    assert second.replayed == 6
    got = second.decider.online.compute(second.decider.online.check_event(probe))
    assert got == expected and got["cust_count_1d"] == 7
    assert second.decider.state.capacity_used(  # type: ignore[union-attr]
        "review", second.decider.capacity.period_start(time_us(probe["ts"]))) == used == 3  # type: ignore[union-attr]
    assert second.decider.decide(probe).overflow  # the queue is still full after restart
    second.close()


def test_flagged_reasons_skip_the_lowest_action_only(project: Path, tmp_path: Path) -> None:
    events = [event(200 + i, review=i % 3 == 0, customer=810_000_000 + i % 4)
              for i in range(30)]
    with DecisionLog(tmp_path / "a.sqlite") as log_a, DecisionLog(tmp_path / "b.sqlite") as log_b:
        full = _decider(project, log_a)
        flagged = _decider(project, log_b, reasons="flagged")
        assert flagged.lowest_action == "approve"
        all_reasons = [full.decide(e) for e in events]
        some = [flagged.decide(e) for e in events]
    assert [d.action for d in all_reasons] == [d.action for d in some]
    assert {d.action for d in some} >= {"approve", "review"}
    for a, b in zip(all_reasons, some, strict=True):
        assert a.score == b.score
        assert b.reasons == (() if b.action == "approve" else a.reasons)
        assert a.reasons  # the default gives every decision its reasons
    with pytest.raises(Exception, match="`reasons` must be one of all, flagged, none"):
        _decider(project, None, reasons="some")
