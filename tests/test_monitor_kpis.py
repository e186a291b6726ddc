"""Logged decisions labelled with the build's maturity rules, and the realised KPIs of the
cohorts whose labels have matured (issue 11, item 4): hand-built toy logs, hand-computed
values."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from valuechain.data.pit import is_mature
from valuechain.errors import DataError
from valuechain.monitor.kpis import KPI_METRICS, SIGNAL_COLUMNS, kpi_signals
from valuechain.monitor.outcomes import LABEL_COLUMNS, label_decisions

from .kpi_world import DAY_US, HOUR_US, T0_US, decisions_table, payments_project

H = 10 * DAY_US  # the toy horizon


def at(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1e6, UTC)


def chargebacks(rows: list[tuple[int, int, int]]) -> pd.DataFrame:
    """(transaction_id, happened_at, reported_at) rows."""
    return pd.DataFrame({"chargeback_id": np.arange(len(rows)),
                         "transaction_id": [r[0] for r in rows],
                         "happened_at": [r[1] for r in rows],
                         "reported_at": [r[2] for r in rows]})


# Five payments: three on day 0, two on day 1 (days from T0, a Monday, midnight UTC).
T = np.array([T0_US + 6 * HOUR_US, T0_US + 12 * HOUR_US, T0_US + 18 * HOUR_US,
              T0_US + DAY_US + 6 * HOUR_US, T0_US + DAY_US + 12 * HOUR_US])


@pytest.fixture
def toy(tmp_path: Path) -> tuple[pd.DataFrame, object]:
    cb = chargebacks([
        (1, T[0] + H, T[0] + H),                # exactly at t + horizon: counts
        (2, T[1], T[1]),                        # exactly at t: does not count
        (3, T[2] + H + 1, T[2] + H + 1),        # 1 µs after the horizon: does not count
        (4, T[3] + 3 * DAY_US, T[3] + 3 * DAY_US),  # day 1, reported 3 days later
    ])
    spec = payments_project(tmp_path, cb)
    decisions = decisions_table(T, np.full(5, 0.01), np.array(["approve"] * 5),
                                np.array([100.0, 50, 70, 200, 30]))
    return decisions, spec


def test_labels_follow_the_horizon_and_immature_rows_are_nan(toy) -> None:
    decisions, spec = toy
    as_of = T0_US + H + 20 * HOUR_US  # day 0 mature (t + h <= as_of), day 1 not
    lab = label_decisions(decisions, spec, as_of=at(as_of))
    assert list(lab.columns[-len(LABEL_COLUMNS):]) == list(LABEL_COLUMNS)
    assert lab["mature"].tolist() == [is_mature(int(t), H, 0, as_of) for t in T] == [
        True, True, True, False, False]
    assert lab["label"].iloc[:3].tolist() == [1.0, 0.0, 0.0]
    # Immature: NaN, never 0 — even d5, which has no chargeback (yet).
    assert lab["label"].iloc[3:].isna().all()
    assert lab["cost"].iloc[3:].isna().all()
    # An outcome already known is shown with its time, but it is no label yet.
    assert lab["outcome_known_at"].iloc[3] == pd.Timestamp(T[3] + 3 * DAY_US, unit="us",
                                                           tz="UTC")
    assert lab["outcome_known_at"].iloc[[1, 2, 4]].isna().all()
    assert str(lab["outcome_known_at"].dtype) == "datetime64[us, UTC]"
    assert lab.attrs["label_delay_basis"] == "none"


def test_cohorts_turn_mature_as_as_of_moves(toy) -> None:
    decisions, spec = toy
    shares = {}
    for hours in (17, 19, 30, 37):  # day 0 ends maturing at 10d 18h, day 1 at 11d 12h
        as_of = T0_US + H + hours * HOUR_US
        lab = label_decisions(decisions, spec, as_of=at(as_of))
        sig = kpi_signals(lab, spec, window_us=DAY_US, as_of=at(as_of))
        assert list(sig.columns) == list(SIGNAL_COLUMNS)
        rate = sig[sig["metric"] == "positive_rate"]
        shares[hours] = (sig[sig["metric"] == "mature_share"]["value"].round(3).tolist(),
                         rate["status"].tolist(), rate["value"].tolist())
    assert shares[17][:2] == ([0.667, 0.0], ["pending", "pending"])
    assert shares[19][:2] == ([1.0, 0.0], ["ok", "pending"])
    assert shares[19][2][0] == pytest.approx(1 / 3)
    assert shares[30][:2] == ([1.0, 0.5], ["ok", "pending"])
    assert shares[37][:2] == ([1.0, 1.0], ["ok", "ok"])
    assert shares[37][2] == pytest.approx([1 / 3, 1 / 2])


def test_pending_cohorts_are_nan_never_zero(toy) -> None:
    decisions, spec = toy
    as_of = T0_US + H + 20 * HOUR_US
    lab = label_decisions(decisions, spec, as_of=at(as_of))
    sig = kpi_signals(lab, spec, window_us=DAY_US, as_of=at(as_of))
    day1 = sig[sig["window"] == pd.Timestamp(T0_US + DAY_US, unit="us", tz="UTC")]
    pending = day1[day1["metric"] != "mature_share"]
    assert sorted(pending["metric"]) == sorted(KPI_METRICS)
    assert (pending["status"] == "pending").all()
    assert pending["value"].isna().all() and pending["lower"].isna().all()
    assert (pending["n"] == 2).all()
    # A share of 0.5 counts the mature half only when asked to.
    as_of = T0_US + H + 30 * HOUR_US
    lab = label_decisions(decisions, spec, as_of=at(as_of))
    half = kpi_signals(lab, spec, window_us=DAY_US, as_of=at(as_of), min_mature_share=0.5)
    rate = half[(half["metric"] == "positive_rate")]
    assert rate["status"].tolist() == ["ok", "ok"]
    assert rate["value"].tolist() == pytest.approx([1 / 3, 1.0])  # d4 only: a positive


def test_a_window_still_open_is_pending(toy) -> None:
    decisions, spec = toy
    as_of = T0_US + H + 40 * HOUR_US
    lab = label_decisions(decisions, spec, as_of=at(as_of))
    weekly = kpi_signals(lab, spec, window_us=7 * DAY_US, as_of=at(as_of))
    # Every decision is mature and the week (from Monday T0) ended at T0 + 7d: matured.
    assert weekly[weekly["metric"] == "positive_rate"]["status"].tolist() == ["ok"]
    # Seen on day 6, the week is still open: pending, whatever its labels say.
    early = kpi_signals(lab, spec, window_us=7 * DAY_US, as_of=at(T0_US + 6 * DAY_US))
    assert early[early["metric"] == "positive_rate"]["status"].tolist() == ["pending"]


def test_outcomes_known_after_as_of_are_ignored_and_late_ones_arrive(tmp_path: Path) -> None:
    t = T0_US + 6 * HOUR_US
    # Happened 2 days after the payment; reported 15 days after it (a late report).
    cb = chargebacks([(1, t + 2 * DAY_US, t + 15 * DAY_US)])
    spec = payments_project(tmp_path, cb, available_at=True, reporting_delay="1d")
    decisions = decisions_table(np.array([t]), np.array([0.2]), np.array(["approve"]),
                                np.array([80.0]))
    # Mature by the declared delay (t + 10d + 1d <= as_of), the report not yet known: 0.
    early = label_decisions(decisions, spec, as_of=at(t + 12 * DAY_US))
    assert early["mature"].tolist() == [True]
    assert early["label"].tolist() == [0.0]
    assert early.attrs["label_delay_basis"] == "declared"
    assert early["outcome_known_at"].isna().all()
    # Once reported, it counts (it happened inside the horizon).
    late = label_decisions(decisions, spec, as_of=at(t + 15 * DAY_US))
    assert late["label"].tolist() == [1.0]
    assert late["cost"].tolist() == [80.0]


def test_the_measured_delay_postpones_maturity(tmp_path: Path) -> None:
    t = T0_US + 6 * HOUR_US
    cb = chargebacks([(1, t + 2 * DAY_US, t + 7 * DAY_US),   # a 5-day reporting gap
                      (9, t - 20 * DAY_US, t - 17 * DAY_US)])  # another payment: 3 days
    spec = payments_project(tmp_path, cb, available_at=True)
    decisions = decisions_table(np.array([t]), np.array([0.2]), np.array(["approve"]),
                                np.array([80.0]))
    lab = label_decisions(decisions, spec, as_of=at(t + H + 4 * DAY_US))
    assert lab.attrs["label_delay_basis"] == "inferred"
    assert lab.attrs["label_delay_us"] == 5 * DAY_US
    assert lab["mature"].tolist() == [False]  # t + 10d + 5d > as_of
    assert lab["label"].isna().all()
    lab = label_decisions(decisions, spec, as_of=at(t + H + 5 * DAY_US))
    assert lab["label"].tolist() == [1.0]


def test_realised_precision_recall_cost_and_kpi_by_hand(tmp_path: Path) -> None:
    t = T0_US + np.arange(1, 7) * HOUR_US
    amount = np.array([100.0, 50, 200, 80, 40, 60])
    action = np.array(["approve", "approve", "review", "review", "decline", "decline"])
    score = np.array([0.1, 0.05, 0.3, 0.2, 0.9, 0.6])
    positive = [1, 3, 5]  # transaction ids (1-based rows): approve, review, decline
    cb = chargebacks([(i, t[i - 1] + DAY_US, t[i - 1] + DAY_US) for i in positive])
    spec = payments_project(tmp_path, cb)
    as_of = T0_US + 20 * DAY_US
    lab = label_decisions(decisions_table(t, score, action, amount), spec, as_of=at(as_of))
    assert lab["label"].tolist() == [1.0, 0, 1, 0, 1, 0]
    fp = 0.1 * amount + 5
    # approve: y FN; review: 3 + y (1 - 0.9) FN + (1 - y) 0.02 FP; decline: (1 - y) FP.
    by_hand = [100.0, 0.0, 3 + 0.1 * 200, 3 + 0.02 * fp[3], 0.0, fp[5]]
    assert lab["cost"].tolist() == pytest.approx(by_hand)
    expected = [0.1 * 100, 0.05 * 50, 3 + 0.3 * 0.1 * 200 + 0.7 * 0.02 * fp[2],
                3 + 0.2 * 0.1 * 80 + 0.8 * 0.02 * fp[3], 0.1 * fp[4], 0.4 * fp[5]]
    assert lab["expected_cost"].tolist() == pytest.approx(expected)
    sig = kpi_signals(lab, spec, window_us=DAY_US, as_of=at(as_of))
    got = dict(zip(sig["metric"], sig["value"], strict=True))
    assert got["precision"] == pytest.approx(2 / 4)       # flagged: 2 reviews + 2 declines
    assert got["recall"] == pytest.approx(2 / 3)          # positives caught: review, decline
    assert got["positive_rate"] == pytest.approx(3 / 6)
    assert got["false_decline_rate"] == pytest.approx(1 / 3)  # 1 of 3 negatives declined
    assert got["loss_per_1000"] == pytest.approx(1000 * 100 / 150)  # lost 100 of 150 approved
    assert got["cost"] == pytest.approx(sum(by_hand))
    assert got["expected_cost"] == pytest.approx(sum(expected))
    n = dict(zip(sig["metric"], sig["n"], strict=True))
    assert (n["precision"], n["loss_per_1000"], n["cost"]) == (4, 2, 6)
    for _, row in sig[sig["metric"] != "mature_share"].iterrows():
        assert row["lower"] <= row["value"] <= row["upper"], row["metric"]


def test_nothing_flagged_is_insufficient_not_zero(tmp_path: Path) -> None:
    spec = payments_project(tmp_path, chargebacks([]))
    t = T0_US + np.arange(1, 4) * HOUR_US
    lab = label_decisions(decisions_table(t, np.full(3, 0.01), np.array(["approve"] * 3),
                                          np.full(3, 10.0)), spec, as_of=at(T0_US + H + DAY_US))
    sig = kpi_signals(lab, spec, window_us=DAY_US, as_of=at(T0_US + H + DAY_US))
    row = sig[sig["metric"] == "precision"].iloc[0]
    assert row["status"] == "insufficient" and np.isnan(row["value"]) and row["n"] == 0
    assert sig[sig["metric"] == "positive_rate"]["value"].tolist() == [0.0]  # mature: a real 0


def test_user_errors_name_the_column(toy) -> None:
    decisions, spec = toy
    with pytest.raises(DataError, match=r"columns \['score'\] are missing"):
        label_decisions(decisions.drop(columns="score"), spec, as_of=at(T0_US))
    with pytest.raises(DataError, match=r"'amount' is neither a model feature.*event.amount"):
        label_decisions(decisions.drop(columns="amount"), spec, as_of=at(T0_US + H))
    with pytest.raises(DataError, match=r"actions \['hold'\] have no cost role"):
        label_decisions(decisions.assign(action="hold"), spec, as_of=at(T0_US + H))
    renamed = decisions.assign(action="hold")
    lab = label_decisions(renamed, spec, as_of=at(T0_US + 30 * DAY_US),
                          roles={"hold": "review"})
    assert set(lab["role"]) == {"review"}
    with pytest.raises(DataError, match="label the decisions first"):
        kpi_signals(decisions, spec, window_us=DAY_US, as_of=at(T0_US))


def test_the_logged_key_joins_when_the_event_field_is_absent(toy) -> None:
    decisions, spec = toy
    as_of = T0_US + 30 * DAY_US
    by_key = label_decisions(decisions.drop(columns="event.transaction_id"), spec,
                             as_of=at(as_of))  # `key` is text: cast to the outcome's int
    assert by_key["label"].tolist() == [1.0, 0.0, 0.0, 1.0, 0.0]


def test_an_empty_log_gives_an_empty_signals_table(toy) -> None:
    decisions, spec = toy
    lab = label_decisions(decisions.iloc[:0], spec, as_of=at(T0_US + 30 * DAY_US))
    assert len(lab) == 0 and "label" in lab.columns
    sig = kpi_signals(lab, spec, window_us=DAY_US, as_of=at(T0_US + 30 * DAY_US))
    assert list(sig.columns) == list(SIGNAL_COLUMNS) and len(sig) == 0


def test_reference_kpis_are_rows_with_status_reference(tmp_path: Path) -> None:
    from valuechain.monitor.kpis import reference_kpis

    spec = payments_project(tmp_path, chargebacks([]))
    frame = pd.DataFrame({
        "time": pd.to_datetime(T0_US + np.array([1, 2, 26, 27]) * HOUR_US, unit="us",
                               utc=True),
        "score": [0.1, 0.6, 0.2, 0.9], "action": ["approve", "review", "approve", "decline"],
        "label": [1.0, 1.0, 0.0, np.nan], "amount": [100.0, 20.0, 300.0, 50.0]})
    sig = reference_kpis(frame, spec)
    assert list(sig.columns) == list(SIGNAL_COLUMNS)
    got = dict(zip(sig["metric"], sig["value"], strict=True))
    assert got["positive_rate"] == pytest.approx(2 / 3)  # the unlabelled row is left out
    assert got["loss_per_1000"] == pytest.approx(1000 * 100 / 400)
    assert got["precision"] == pytest.approx(1.0)
    assert (sig["status"] == "reference").all()
    assert (sig["window"] == pd.Timestamp(T0_US, unit="us", tz="UTC")).all()
    # Without the columns the costs read: the count metrics only.
    counts = reference_kpis(frame.drop(columns="amount"), spec)
    assert "loss_per_1000" not in set(counts["metric"]) and "recall" in set(counts["metric"])


def test_a_column_label_is_known_at_t_plus_horizon(tmp_path: Path) -> None:
    import yaml

    from valuechain.spec.loader import load_spec

    pd.DataFrame({"order_id": [1], "ts": pd.to_datetime([T0_US], unit="us"),
                  "y": [0]}).to_parquet(tmp_path / "orders.parquet")
    (tmp_path / "valuechain.yaml").write_text(yaml.safe_dump({
        "project": {"name": "orders"},
        "decision": {"statement": "s", "owner": "o", "moment": "m",
                     "actions": ["approve", "review"]},
        "decision_points": {"source": "orders"},
        "sources": {"orders": {"path": "orders.parquet", "keys": ["order_id"],
                               "event_time": "ts"}},
        "label": {"column": "y", "horizon": "1h"},
        "features": [{"name": "one", "expr": "1"}]}))
    spec = load_spec(tmp_path)
    t = T0_US + np.array([0, 2]) * HOUR_US
    decisions = decisions_table(t, np.array([0.5, 0.5]), np.array(["approve", "review"]),
                                np.array([1.0, 1.0])).assign(**{"event.y": [1, 0]})
    lab = label_decisions(decisions, spec, as_of=at(T0_US + 2 * HOUR_US))
    assert lab["mature"].tolist() == [True, False]
    assert lab["label"].tolist()[0] == 1.0 and np.isnan(lab["label"].iloc[1])
    assert lab["outcome_known_at"].notna().tolist() == [True, False]
    assert lab["cost"].isna().all()  # no `value.costs`: nothing priced, nothing zero
    sig = kpi_signals(lab, spec, window_us=DAY_US, as_of=at(T0_US + 2 * DAY_US))
    assert "cost" not in set(sig["metric"])
