"""Metrics: agreement with scikit-learn, hand-computed decision metrics, degenerate inputs."""

from __future__ import annotations

import warnings
from datetime import timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as skm

from valuechain.errors import DataError
from valuechain.evaluate.metrics import (
    GREATER_IS_BETTER,
    all_metrics,
    average_precision,
    brier,
    card_precision_at_k,
    ece,
    expected_cost,
    k_per_period,
    log_loss,
    precision_recall_at_capacity,
    reliability_table,
    roc_auc,
)


@pytest.fixture
def fixed() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(42)
    labels = (rng.random(3000) < 0.1).astype(int)
    scores = np.round(1 / (1 + np.exp(-rng.normal(labels * 1.2 - 2, 1))), 2)  # many ties
    weights = rng.integers(0, 4, len(labels)).astype(float)
    return scores, labels, weights


def test_metrics_equal_scikit_learn(fixed: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
    s, y, _ = fixed
    assert roc_auc(s, y) == pytest.approx(skm.roc_auc_score(y, s), abs=1e-12)
    assert average_precision(s, y) == pytest.approx(skm.average_precision_score(y, s), abs=1e-12)
    assert brier(s, y) == pytest.approx(skm.brier_score_loss(y, s), abs=1e-12)
    assert log_loss(s, y) == pytest.approx(skm.log_loss(y, s), abs=1e-12)


def test_weighted_metrics_equal_scikit_learn(
    fixed: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    s, y, w = fixed
    assert roc_auc(s, y, w) == pytest.approx(skm.roc_auc_score(y, s, sample_weight=w), abs=1e-12)
    assert average_precision(s, y, w) == pytest.approx(
        skm.average_precision_score(y, s, sample_weight=w), abs=1e-12)
    assert brier(s, y, w) == pytest.approx(skm.brier_score_loss(y, s, sample_weight=w), abs=1e-12)
    assert log_loss(s, y, w) == pytest.approx(skm.log_loss(y, s, sample_weight=w), abs=1e-12)
    # integer weights are the same as repeating rows
    rep = np.repeat(np.arange(len(s)), w.astype(int))
    assert roc_auc(s, y, w) == pytest.approx(roc_auc(s[rep], y[rep]), abs=1e-12)
    assert ece(s, y, sample_weight=w) == pytest.approx(ece(s[rep], y[rep]), abs=1e-12)


def test_log_loss_clips_extreme_scores() -> None:
    assert np.isfinite(log_loss([0.0, 1.0], [1, 0]))
    assert log_loss([0.0, 1.0], [1, 0]) == pytest.approx(-np.log(1e-15), rel=1e-4)


def test_one_class_gives_nan_without_exception_or_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(roc_auc([0.1, 0.5], [0, 0]))
        assert np.isnan(roc_auc([0.1, 0.5], [1, 1]))
        assert np.isnan(average_precision([0.1, 0.5], [0, 0]))
        assert np.isnan(roc_auc([], []))
        assert np.isnan(brier([], []))
        out = all_metrics([0.1, 0.5, 0.2], [0, 0, 0], periods=[1, 1, 2], k=1,
                          days=[1, 1, 2], entity=[1, 2, 1])
    assert np.isnan(out["roc_auc"]) and np.isnan(out["average_precision"])
    assert np.isnan(out["recall_at_capacity"])
    assert out["precision_at_capacity"] == 0.0
    assert out["card_precision_at_k"] == 0.0


def test_bad_inputs_are_refused() -> None:
    with pytest.raises(DataError, match="1 of 2 scores are NaN"):
        roc_auc([0.1, np.nan], [0, 1])
    with pytest.raises(DataError, match="labels must be 0 or 1"):
        roc_auc([0.1, 0.2], [0, np.nan])
    with pytest.raises(ValueError, match="same length"):
        brier([0.1, 0.2], [0])


def test_ece_and_reliability_table_by_hand() -> None:
    s = np.array([0.05, 0.15, 0.15, 0.55, 0.95, 1.0])
    y = np.array([0, 0, 1, 1, 1, 1])
    table = reliability_table(s, y, n_bins=4)
    assert table["count"].tolist() == [3, 0, 1, 2]
    assert table["mean_score"].tolist()[0] == pytest.approx(0.35 / 3)
    assert np.isnan(table["mean_score"][1])
    assert table["positive_rate"].tolist()[3] == 1.0
    assert list(table.columns) == ["bin", "lower", "upper", "count", "mean_score",
                                   "positive_rate"]
    # |0.35 - 1| + |0.55 - 1| + |1.95 - 2| over 6 rows
    assert ece(s, y, n_bins=4) == pytest.approx((0.65 + 0.45 + 0.05) / 6)
    rows = table.dropna()
    weighted = (rows["count"] * (rows["mean_score"] - rows["positive_rate"]).abs()).sum() / 6
    assert ece(s, y, n_bins=4) == pytest.approx(weighted)


def test_precision_recall_at_capacity_by_hand() -> None:
    # day 1: top 2 of 4 are rows 0 (pos) and 2 (neg); the positive row 3 is missed
    # day 2: top 2 of 3 are rows 5 (pos) and 6 (pos)
    # day 3: one row only, a negative: taken 1
    scores = [0.9, 0.1, 0.8, 0.3, 0.2, 0.7, 0.6, 0.5]
    labels = [1, 0, 0, 1, 0, 1, 1, 0]
    days = ["2025-01-01"] * 4 + ["2025-01-02"] * 3 + ["2025-01-03"]
    r = precision_recall_at_capacity(scores, labels, days, k=2)
    assert r.periods.tolist() == ["2025-01-01", "2025-01-02", "2025-01-03"]
    assert r.taken.tolist() == [2, 2, 1]
    assert r.positives_taken.tolist() == [1, 2, 0]
    assert r.positives.tolist() == [2, 2, 0]
    assert r.precision == pytest.approx(3 / 5)
    assert r.recall == pytest.approx(3 / 4)
    assert r.precision_per_period.tolist() == [0.5, 1.0, 0.0]
    assert r.recall_per_period[:2].tolist() == [0.5, 1.0]
    assert np.isnan(r.recall_per_period[2])
    assert precision_recall_at_capacity(scores, labels, days, k=0).recall == 0.0


def test_k_per_period() -> None:
    assert k_per_period(150, timedelta(days=1), timedelta(days=1)) == 150
    assert k_per_period(150, timedelta(days=1), timedelta(weeks=1)) == 1050
    assert k_per_period(100, timedelta(weeks=1), timedelta(days=1)) == 14


def test_card_precision_two_days_by_hand() -> None:
    # Day 1 (k = 2): card A max score 0.9 max label 1; B 0.8 / 0; C 0.7 / 1; D 0.1 / 1.
    #   top 2 = A, B -> one compromised (A) -> 1/2; A is detected. D is compromised but missed.
    # Day 2: A 0.95 / 1 (removed, detected on day 1); D 0.6 / 1; C 0.5 / 0; E 0.4 / 1.
    #   without A: top 2 = D, C -> 1/2.  Mean = 0.5.
    #   Keeping A: top 2 = A, D -> 2/2 and the mean would be 0.75.
    rows = [
        (1, "A", 0.9, 1), (1, "A", 0.2, 0), (1, "B", 0.8, 0), (1, "C", 0.3, 1), (1, "C", 0.7, 0),
        (1, "D", 0.1, 1),
        (2, "A", 0.95, 1), (2, "D", 0.6, 1), (2, "C", 0.5, 0), (2, "E", 0.4, 1),
    ]
    day, card, score, label = map(list, zip(*rows, strict=True))
    cp = card_precision_at_k(score, label, day, card, k=2)
    assert cp.per_day.tolist() == [0.5, 0.5]
    assert cp.value == 0.5
    assert cp.days.tolist() == [1, 2]
    assert cp.compromised.tolist() == [3, 2]  # day 2: D and E (A removed)
    assert cp.detected.tolist() == [1, 1]
    kept = card_precision_at_k(score, label, day, card, k=2, known_compromised_removed=False)
    assert kept.per_day.tolist() == [0.5, 1.0]
    # removing every card compromised on an earlier day also removes D (missed on day 1):
    # day 2 without A and D: top 2 = C, E -> 1/2
    broad = card_precision_at_k(score, label, day, card, k=2, removed="compromised")
    assert broad.per_day.tolist() == [0.5, 0.5]
    assert broad.compromised.tolist() == [3, 1]
    # precision is over k even when fewer than k cards are active
    assert card_precision_at_k([0.9], [1], [1], ["A"], k=4).value == 0.25


def _handbook_cp(df: pd.DataFrame, k: int) -> float:
    """The handbook's card_precision_top_k, restated with pandas (cards detected are removed)."""
    detected: list[int] = []
    values = []
    for day in sorted(df["day"].unique()):
        today = df[(df["day"] == day) & ~df["card"].isin(detected)]
        per_card = today.groupby("card")[["score", "label"]].max()
        top = per_card.sort_values("score", ascending=False).head(k)
        found = list(top.index[top["label"] == 1])
        values.append(len(found) / k)
        detected.extend(found)
    return float(np.mean(values))


def test_card_precision_matches_the_handbook_procedure() -> None:
    rng = np.random.default_rng(3)
    n = 5000
    df = pd.DataFrame({"day": rng.integers(0, 7, n), "card": rng.integers(0, 400, n)})
    compromised = rng.random(400) < 0.1
    df["label"] = (compromised[df["card"]] & (rng.random(n) < 0.5)).astype(int)
    df["score"] = rng.random(n) + df["label"] * rng.random(n)
    for k in (5, 20, 100):
        ours = card_precision_at_k(df["score"], df["label"], df["day"], df["card"], k=k).value
        assert ours == pytest.approx(_handbook_cp(df, k), abs=1e-12)


def test_expected_cost_with_per_example_costs() -> None:
    scores = np.array([0.9, 0.6, 0.4, 0.1, 0.7])
    labels = np.array([1, 0, 1, 0, 0])
    amounts = np.array([100.0, 50.0, 80.0, 20.0, 10.0])
    # flagged (>= 0.5): rows 0 (TP, 0), 1 (FP, 5 + 0.1 * 50), 4 (FP, 5 + 0.1 * 10)
    # missed: row 2 (FN, 80); row 3 TN
    cost = expected_cost(scores, labels, cost_fp=5 + 0.1 * amounts, cost_fn=amounts)
    assert cost == pytest.approx((10 + 6 + 80) / 5)
    assert expected_cost(scores, labels, 1.0, 1.0, threshold=0.95) == pytest.approx(2 / 5)


def test_all_metrics_keys_follow_the_inputs(
    fixed: tuple[np.ndarray, np.ndarray, np.ndarray],
) -> None:
    s, y, _ = fixed
    base = {"roc_auc", "average_precision", "brier", "log_loss", "ece"}
    assert set(all_metrics(s, y)) == base
    days = np.arange(len(s)) // 100
    full = all_metrics(s, y, periods=days, k=10, entity=np.arange(len(s)) % 50, days=days,
                       cost_fp=1.0, cost_fn=10.0)
    assert set(full) == set(GREATER_IS_BETTER)
    assert full["roc_auc"] == roc_auc(s, y)
    assert full["precision_at_capacity"] == precision_recall_at_capacity(s, y, days, 10).precision
    assert set(all_metrics(s, y, periods=days)) == base  # k missing: no capacity metrics
