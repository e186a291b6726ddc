"""benchmarks/policy_vs_sklearn.py in small: our exact threshold against scikit-learn's
TunedThresholdClassifierCV with the same example-dependent cost scorer, and what a
capacity-blind review threshold does to a daily review queue (synthetic data, no world)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("sklearn")

from valuechain.policy import (
    CostModel,
    Threshold,
    apply_with_capacity,
    optimize_three_band,
    optimize_threshold,
)

from .conftest import load_benchmark

pvs = load_benchmark("policy_vs_sklearn")

DAYS, PER_DAY = 10, 400
CAPACITY = 20


def _world(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, CostModel]:
    """Calibrated scores (labels drawn from them), a day per row, fraud-like costs."""
    rng = np.random.default_rng(seed)
    n = DAYS * PER_DAY
    p = np.round(rng.beta(0.4, 12.0, n), 4)  # rounded: ties among scores, as real models give
    y = (rng.random(n) < p).astype(np.float64)
    amount = rng.gamma(1.5, 80.0, n)
    costs = CostModel(false_negative=amount, false_positive=0.1 * amount + 5.0, review=3.0,
                      catch_rate=0.9, friction=0.02)
    return p, y, np.repeat(np.arange(DAYS), PER_DAY), costs


def _cost(threshold: float, p: np.ndarray, y_or_p: np.ndarray, costs: CostModel) -> float:
    return float(costs.cost_of(Threshold(threshold).apply(p), y_or_p).sum())


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_threshold_is_never_worse_than_tuned_threshold_classifier(seed: int) -> None:
    p, y, _, costs = _world(seed)
    fn, fp = np.asarray(costs.false_negative), np.asarray(costs.false_positive)
    ours = optimize_threshold(p, costs, y, frontier_points=0)
    for grid in (100, 1000):
        theirs = pvs.sklearn_threshold(p, y, fn, fp, thresholds=grid)
        assert ours.total_cost <= _cost(theirs, p, y, costs) + 1e-9
    # The scorer is the same cost: sklearn's threshold priced by its own scorer agrees.
    theirs = pvs.sklearn_threshold(p, y, fn, fp, thresholds=1000)
    decline = (p >= theirs).astype(np.int64)
    assert pvs.realised_cost(y, decline, fn, fp) == pytest.approx(_cost(theirs, p, y, costs))
    # Given every distinct score as a threshold, sklearn reaches our optimum (not below it).
    exhaustive = pvs.sklearn_threshold(p, y, fn, fp, thresholds=np.unique(p))
    assert _cost(exhaustive, p, y, costs) == pytest.approx(ours.total_cost, rel=1e-12)
    # Expected cost under the calibrated scores: the same, with p in place of the label.
    ours_p = optimize_threshold(p, costs, p, frontier_points=0)
    theirs_p = pvs.sklearn_threshold(p, y, fn, fp, thresholds=1000, expected=True)
    assert ours_p.total_cost <= _cost(theirs_p, p, p, costs) + 1e-9


def test_capacity_blind_review_threshold_overflows_and_capacity_aware_policy_never_does() -> None:
    p, _, day, costs = _world(3)
    blind = optimize_threshold(p, costs, p, day, None, high="review", frontier_points=0)
    blind_load = np.bincount(day, weights=blind.policy.apply(p) == "review")
    assert blind_load.max() > CAPACITY  # the cost-optimal queue ignores what the team can do
    assert (blind_load > CAPACITY).sum() >= 1

    aware = optimize_three_band(p, costs, p, day, CAPACITY, frontier_points=0)
    aware_load = np.bincount(day, weights=aware.policy.apply(p) == "review")
    assert aware_load.max() <= CAPACITY and aware.periods_over_capacity == 0
    assert aware.reviews_max == aware_load.max()
    aware_thr = optimize_threshold(p, costs, p, day, CAPACITY, high="review", frontier_points=0)
    assert np.bincount(day, weights=aware_thr.policy.apply(p) == "review").max() <= CAPACITY
    # The capacity-aware bands are the cheapest feasible choice on the rows they were fitted
    # on: cheaper than the blind threshold once its overflow is spilled to approve.
    spilled = apply_with_capacity(blind.policy, p, day, CAPACITY)
    assert np.bincount(day, weights=spilled == "review").max() <= CAPACITY
    assert aware.total_cost <= float(costs.cost_of(spilled, p, blind.policy.roles).sum()) + 1e-9


def test_first_come_spill_keeps_the_earliest_cases_of_each_period() -> None:
    data = pvs.Period(scores=np.array([0.9, 0.8, 0.7, 0.6, 0.5]),
                      labels=np.zeros(5), periods=np.array([0, 0, 0, 1, 1]),
                      days=np.array([0, 0, 0, 1, 1]), times=np.array([3, 1, 2, 5, 4]),
                      costs=None)
    actions = np.array(["review"] * 4 + ["approve"], dtype=object)
    out = pvs.fcfs_spill(actions, data, 1, "review", "approve")
    assert out.tolist() == ["approve", "review", "approve", "review", "approve"]
    assert pvs.queue(out, data, 1) == {"max": 1.0, "mean": 1.0, "over": 0, "periods": 2}
    assert pvs.queue(actions, data, 1)["over"] == 1


def test_day_bootstrap_interval_contains_the_total() -> None:
    rng = np.random.default_rng(0)
    days = np.repeat(np.arange(15), 50)
    diff = rng.normal(-1.0, 3.0, len(days))
    out = pvs.day_bootstrap(days, diff)
    assert out["low"] <= out["value"] <= out["high"]
    assert out["value"] == pytest.approx(diff.sum())
