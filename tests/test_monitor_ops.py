"""Operational signals on a toy decision log: action mix, capacity, overflow, latency, volume."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from valuechain.monitor.inputs import read_decisions
from valuechain.monitor.kpis import SIGNAL_COLUMNS
from valuechain.monitor.ops import ops_signals, robust_z, wilson
from valuechain.policy.capacity import PERIOD_ANCHOR_US
from valuechain.serve.log import DecisionLog, DecisionRecord

DAY = 86_400_000_000
START = PERIOD_ANCHOR_US + 20_000 * DAY  # a window start (days from the Monday anchor)


def _record(i: int, day: int, action: str, *, overflow: bool = False, origin: str = "serve",
            latency: int = 1000) -> DecisionRecord:
    return DecisionRecord(
        decision_id=f"d{i}", time_us=START + day * DAY + i, key=f"k{i}", bundle_version="v1",
        policy_version="three_band@x", event={"transaction_id": i, "amount": 10.0 + i},
        features={"amount": 10.0 + i}, score=0.1, policy_action="review" if overflow else action,
        action=action, overflow=overflow, latency_us={"features": latency, "model": 2 * latency},
        origin=origin)


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> pd.DataFrame:
    """Day 0: 6 approve, 3 review, 1 decline. Day 1: 2 approve (1 overflow), 3 review.
    Day 2: nothing. Day 3: 4 approve by batch scoring (no latency)."""
    records, i = [], 0
    plan = [(0, "approve", 6, False, "serve"), (0, "review", 3, False, "serve"),
            (0, "decline", 1, False, "serve"), (1, "approve", 1, False, "serve"),
            (1, "approve", 1, True, "serve"), (1, "review", 3, False, "serve"),
            (3, "approve", 4, False, "score")]
    for day, action, count, overflow, origin in plan:
        for _ in range(count):
            records.append(_record(i, day, action, overflow=overflow, origin=origin,
                                   latency=1000 * (i + 1)))
            i += 1
    path = tmp_path_factory.mktemp("ops") / "decisions.sqlite"
    with DecisionLog(path) as log:
        log.append_many(records)
    return read_decisions(path)


def _metric(signals: pd.DataFrame, metric: str, subject: str = "") -> list[float]:
    rows = signals[(signals.metric == metric) & (signals.subject == subject)]
    return rows["value"].tolist()


def test_action_mix_per_window_with_wilson_intervals(toy: pd.DataFrame) -> None:
    s = ops_signals(toy, window_us=DAY, capacity=None, min_samples=1)
    assert list(s.columns) == list(SIGNAL_COLUMNS)
    assert set(s["section"]) == {"ops"}
    assert s["window"].drop_duplicates().dt.strftime("%Y-%m-%d").tolist() == [
        str((pd.Timestamp(START, unit="us") + pd.Timedelta(days=d)).date()) for d in range(4)]
    assert _metric(s, "approve_rate", "approve")[:2] == [0.6, 0.4]
    assert _metric(s, "review_rate", "review")[:2] == [0.3, 0.6]
    assert _metric(s, "decline_rate", "decline")[:2] == [0.1, 0.0]
    assert math.isnan(_metric(s, "review_rate", "review")[2])  # the empty day
    assert _metric(s, "approve_rate", "approve")[3] == 1.0
    row = s[(s.metric == "review_rate")].iloc[0]
    lo, hi = wilson([3], [10])
    assert (row["lower"], row["upper"], row["n"]) == (lo[0], hi[0], 10)
    assert row["lower"] < 0.3 < row["upper"]


def test_queue_against_capacity_and_days_at_the_limit(toy: pd.DataFrame) -> None:
    s = ops_signals(toy, window_us=DAY, capacity=("review", 3, DAY, "approve"), min_samples=1)
    assert _metric(s, "queue_count", "review") == [3.0, 3.0, 0.0, 0.0]
    assert _metric(s, "queue_limit", "review") == [3.0] * 4
    assert _metric(s, "queue_fill", "review") == [1.0, 1.0, 0.0, 0.0]
    assert _metric(s, "days_at_limit", "review") == [1.0, 1.0, 0.0, 0.0]
    # a two-day window holds two capacity periods: limit 6, both days at the limit
    weekly = ops_signals(toy, window_us=2 * DAY, capacity=("review", 3, DAY, "approve"),
                         min_samples=1)
    assert _metric(weekly, "queue_limit", "review")[0] == 6.0
    assert _metric(weekly, "queue_fill", "review")[0] == 1.0
    assert _metric(weekly, "days_at_limit", "review")[0] == 2.0
    roomy = ops_signals(toy, window_us=DAY, capacity=("review", 10, DAY, "approve"),
                        min_samples=1)
    assert _metric(roomy, "days_at_limit", "review") == [0.0] * 4
    assert _metric(roomy, "queue_fill", "review")[:2] == [0.3, 0.3]


def test_overflow_share_latency_percentiles_and_minimum_samples(toy: pd.DataFrame) -> None:
    s = ops_signals(toy, window_us=DAY, capacity=None, min_samples=5)
    assert _metric(s, "overflow_share") == [0.0, 0.2, pytest.approx(np.nan, nan_ok=True),
                                            0.0]
    # day 0: latencies 3, 6, ..., 30 ms (features i ms + model 2i ms)
    day0 = 3.0 * np.arange(1, 11)
    assert _metric(s, "latency_p50_ms")[0] == pytest.approx(np.percentile(day0, 50))
    assert _metric(s, "latency_p99_ms")[0] == pytest.approx(np.percentile(day0, 99))
    batch = s[(s.metric == "latency_p95_ms")].iloc[3]
    assert math.isnan(batch["value"]) and batch["n"] == 0 and batch["status"] == "insufficient"
    status = s[s.metric == "approve_rate"]["status"].tolist()
    assert status == ["ok", "ok", "insufficient", "insufficient"]  # 10, 5, 0, 4 decisions


def test_volume_and_its_robust_z_score() -> None:
    counts = [100] * 10 + [40]
    rows = np.repeat(np.arange(len(counts)), counts)
    table = pd.DataFrame({"time_us": START + rows * DAY, "action": "approve"})
    s = ops_signals(table, window_us=DAY, capacity=None)
    assert _metric(s, "volume") == [float(c) for c in counts]
    z = s[s.metric == "volume_z"]
    assert z["status"].tolist()[:7] == ["insufficient"] * 7
    assert z["value"].iloc[7] == 0.0  # a steady history: median 100, MAD 0
    # MAD 0: the scale falls back to the Poisson sd sqrt(100) = 10 -> (40 - 100) / 10
    assert z["value"].iloc[-1] == pytest.approx(-6.0)
    assert robust_z([10, 12, 8, 11, 9, 10, 10, 10, 30])[-1] == pytest.approx(
        (30 - 10) / max(1.4826 * 1.0, math.sqrt(10), 1.0))


def test_no_decisions_give_an_empty_signals_table() -> None:
    empty = pd.DataFrame({"time_us": np.array([], dtype=np.int64), "action": []})
    s = ops_signals(empty, window_us=DAY, capacity=("review", 3, DAY, "approve"))
    assert s.empty and list(s.columns) == list(SIGNAL_COLUMNS)


def test_the_log_path_is_read_through_read_decisions(toy: pd.DataFrame, tmp_path: Path) -> None:
    assert toy["latency_ms"].iloc[:10].tolist() == (3.0 * np.arange(1, 11)).tolist()
    assert toy["latency_ms"].iloc[-4:].isna().all()  # batch scoring: no per-decision latency
    assert toy["overflow"].sum() == 1
