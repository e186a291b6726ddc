"""The optimisers against brute force, capacity held exactly, degenerate inputs, speed."""

from __future__ import annotations

import itertools
import math
import time
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from valuechain.errors import DataError, SpecError
from valuechain.policy import (
    CostModel,
    ThreeBand,
    Threshold,
    TopN,
    apply_with_capacity,
    optimize_three_band,
    optimize_threshold,
    optimize_top_n,
)
from valuechain.policy.optimize import _Inputs, _Sorted

# ---------------------------------------------------------------- an obviously correct oracle


def row_costs(actions: np.ndarray, y: np.ndarray, c: dict[str, Any]) -> np.ndarray:
    """The brief's formulas, written out per row."""
    fn, fp, r = c["fn"], c["fp"], c["review"]
    out = []
    for k, action in enumerate(actions):
        if action == "approve":
            out.append(y[k] * fn[k])
        elif action == "decline":
            out.append((1 - y[k]) * fp[k])
        else:
            out.append(r[k] + y[k] * (1 - c["catch"]) * fn[k]
                       + (1 - y[k]) * c["friction"] * fp[k])
    return np.array(out)


def fits(actions: np.ndarray, periods: np.ndarray, limited: str, capacity: int | None,
         percentile: float) -> bool:
    if capacity is None:
        return True
    ids = np.unique(periods)
    ok = sum(int(np.sum((periods == p) & (actions == limited)) <= capacity) for p in ids)
    return ok >= math.ceil(percentile * len(ids) - 1e-9)


def band_actions(s: np.ndarray, review_at: float, decline_at: float) -> np.ndarray:
    return np.array(["approve" if v < review_at else "review" if v < decline_at else "decline"
                     for v in s])


def brute_three_band(s, y, periods, c, capacity, percentile) -> float:
    cuts = [*np.unique(s).tolist(), math.inf]
    best = math.inf
    for a, ra in enumerate(cuts):
        for da in cuts[a:]:
            acts = band_actions(s, ra, da)
            if fits(acts, periods, "review", capacity, percentile):
                best = min(best, float(row_costs(acts, y, c).sum()))
    return best


def brute_threshold(s, y, periods, c, capacity, high, percentile) -> float:
    best = math.inf
    for t in [*np.unique(s).tolist(), math.inf]:
        acts = np.where(s >= t, high, "approve")
        if fits(acts, periods, high, capacity, percentile):
            best = min(best, float(row_costs(acts, y, c).sum()))
    return best


def naive_top_n(s, periods, n, min_score) -> np.ndarray:
    chosen = np.zeros(len(s), dtype=bool)
    for p in np.unique(periods):
        rows = sorted(np.flatnonzero(periods == p), key=lambda k: (-s[k], k))
        rows = [k for k in rows if min_score is None or s[k] >= min_score]
        chosen[rows[:n]] = True
    return chosen


@st.composite
def instances(draw: st.DrawFn, probs: bool = False) -> dict[str, Any]:
    n = draw(st.integers(1, 40))
    levels = draw(st.integers(1, 8))  # few distinct scores: many ties
    s = np.array(draw(st.lists(st.integers(0, levels), min_size=n, max_size=n)),
                 dtype=float) / levels
    periods = np.array(draw(st.lists(st.integers(0, 3), min_size=n, max_size=n)))
    if probs:
        y = np.array(draw(st.lists(st.integers(0, 20), min_size=n, max_size=n))) / 20
    else:
        y = np.array(draw(st.lists(st.integers(0, 1), min_size=n, max_size=n)), dtype=float)
    money = st.lists(st.integers(0, 200), min_size=n, max_size=n)
    c = {"fn": np.array(draw(money), dtype=float), "fp": np.array(draw(money), dtype=float),
         "review": np.full(n, float(draw(st.integers(0, 30)))),
         "catch": draw(st.sampled_from([1.0, 0.75, 0.5])),
         "friction": draw(st.sampled_from([0.0, 0.25]))}
    capacity = draw(st.one_of(st.none(), st.integers(0, n)))
    percentile = draw(st.sampled_from([1.0, 1.0, 0.75, 0.5, 0.3]))
    costs = CostModel(false_negative=c["fn"], false_positive=c["fp"], review=c["review"],
                      catch_rate=c["catch"], friction=c["friction"])
    return {"s": s, "y": y, "periods": periods, "c": c, "costs": costs,
            "capacity": capacity, "percentile": percentile}


SETTINGS = settings(max_examples=250, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])


# ---------------------------------------------------------------- property tests


@SETTINGS
@given(instances())
def test_three_band_matches_brute_force_and_fits_capacity(case: dict[str, Any]) -> None:
    s, y, periods, c = case["s"], case["y"], case["periods"], case["c"]
    capacity, pct = case["capacity"], case["percentile"]
    best = optimize_three_band(s, case["costs"], y, periods, capacity, percentile=pct,
                               frontier_points=4)
    expected = brute_three_band(s, y, periods, c, capacity, pct)
    assert best.total_cost == pytest.approx(expected, rel=1e-9, abs=1e-7)
    acts = best.policy.apply(s)
    assert float(row_costs(acts, y, c).sum()) == pytest.approx(best.total_cost, abs=1e-7)
    assert fits(acts, periods, "review", capacity, pct)
    if capacity is not None and pct == 1.0:
        for p in np.unique(periods):
            assert np.sum((periods == p) & (acts == "review")) <= capacity
        assert best.periods_over_capacity == 0
        assert best.cost_after_overflow == best.total_cost
        assert best.reviews_max <= capacity
    assert sum(best.counts.values()) == len(s)


@SETTINGS
@given(instances(probs=True))
def test_three_band_expected_cost_from_probabilities(case: dict[str, Any]) -> None:
    s, y, periods, c = case["s"], case["y"], case["periods"], case["c"]
    best = optimize_three_band(s, case["costs"], y, periods, case["capacity"],
                               percentile=case["percentile"], frontier_points=0)
    expected = brute_three_band(s, y, periods, c, case["capacity"], case["percentile"])
    assert best.total_cost == pytest.approx(expected, rel=1e-9, abs=1e-7)


@SETTINGS
@given(instances(), st.sampled_from(["decline", "review"]))
def test_threshold_matches_brute_force(case: dict[str, Any], high: str) -> None:
    s, y, periods, c = case["s"], case["y"], case["periods"], case["c"]
    capacity, pct = case["capacity"], case["percentile"]
    best = optimize_threshold(s, case["costs"], y, periods, capacity, high=high, percentile=pct,
                              frontier_points=3)
    assert isinstance(best.policy, Threshold)
    expected = brute_threshold(s, y, periods, c, capacity, high, pct)
    assert best.total_cost == pytest.approx(expected, rel=1e-9, abs=1e-7)
    assert fits(best.policy.apply(s), periods, high, capacity, pct)


@SETTINGS
@given(instances(probs=True))
def test_top_n_matches_brute_force(case: dict[str, Any]) -> None:
    s, y, periods, c = case["s"], case["y"], case["periods"], case["c"]
    capacity = case["capacity"]
    best = optimize_top_n(s, case["costs"], y, periods, capacity, frontier_points=3)
    assert isinstance(best.policy, TopN)
    largest = int(np.bincount(np.unique(periods, return_inverse=True)[1]).max())
    top = largest if capacity is None else capacity
    expected = math.inf
    for n in range(top + 1):
        for floor in [None, *np.unique(s).tolist()]:
            acts = TopN(n=n, per="1d", min_score=floor).apply(s, periods)
            expected = min(expected, float(row_costs(acts, y, c).sum()))
    assert best.total_cost == pytest.approx(expected, rel=1e-9, abs=1e-7)
    assert capacity is None or best.policy.n <= capacity
    assert best.periods_over_capacity == 0


@SETTINGS
@given(instances())
def test_two_pointer_and_vectorised_starts_agree(case: dict[str, Any]) -> None:
    s, periods = case["s"], case["periods"]
    codes = np.unique(periods, return_inverse=True)[1].astype(np.int64)
    by_role = case["costs"].action_costs(case["y"])
    srt = _Sorted(_Inputs(s, case["y"], codes, int(codes.max()) + 1, by_role))
    for capacity in range(len(s) + 1):
        assert srt._start_every_period(capacity).tolist() == srt._start_two_pointer(
            capacity, 0).tolist()


@SETTINGS
@given(st.lists(st.integers(0, 5), min_size=1, max_size=40), st.integers(0, 6),
       st.sampled_from(["approve", "decline"]), st.data())
def test_apply_with_capacity_spills_exactly(raw: list[int], capacity: int, overflow: str,
                                            data: st.DataObject) -> None:
    s = np.array(raw, dtype=float) / 5
    periods = np.array(data.draw(st.lists(st.integers(0, 2), min_size=len(s),
                                          max_size=len(s))))
    policy = ThreeBand(review_at=0.2, decline_at=0.8)
    plain = policy.apply(s)
    out = apply_with_capacity(policy, s, periods, capacity, overflow)
    expected = plain.copy()
    for p in np.unique(periods):
        rows = [k for k in range(len(s)) if periods[k] == p and plain[k] == "review"]
        sign = -1 if overflow == "approve" else 1  # keep highest (approve) or lowest scores
        rows.sort(key=lambda k: (sign * s[k], k))
        for k in rows[capacity:]:
            expected[k] = overflow
    assert out.tolist() == expected.tolist()
    for p in np.unique(periods):
        assert np.sum((periods == p) & (out == "review")) <= capacity


# ---------------------------------------------------------------- worked cases


def test_top_n_apply_matches_naive_ranking() -> None:
    rng = np.random.default_rng(4)
    s = rng.integers(0, 6, 300) / 5
    periods = rng.integers(0, 7, 300)
    for n in (0, 1, 3, 50):
        for floor in (None, 0.4):
            acts = TopN(n=n, per="1d", min_score=floor).apply(s, periods)
            assert ((acts == "review") == naive_top_n(s, periods, n, floor)).all()


def test_capacity_zero_gives_the_best_two_band_policy() -> None:
    rng = np.random.default_rng(0)
    s = rng.random(500)
    y = (rng.random(500) < s**3).astype(float)
    costs = CostModel(false_negative=100.0, false_positive=8.0, review=1.0)
    periods = np.arange(500) % 5
    best = optimize_three_band(s, costs, y, periods, 0)
    assert best.policy.review_at == best.policy.decline_at
    assert best.counts["review"] == 0
    two = optimize_threshold(s, costs, y, periods)
    assert best.total_cost == pytest.approx(two.total_cost)
    free = optimize_three_band(s, costs, y, periods, None)
    assert free.counts["review"] > 0 and free.total_cost < best.total_cost


def test_all_scores_equal_has_only_the_end_cuts() -> None:
    y = np.array([1, 0, 0, 1, 0], dtype=float)
    s = np.full(5, 0.3)
    periods = np.zeros(5)
    costs = CostModel(false_negative=100.0, false_positive=20.0, review=5.0)
    review_all = optimize_three_band(s, costs, y, periods, None)
    assert review_all.counts == {"approve": 0, "review": 5, "decline": 0}
    assert review_all.policy.review_at == -math.inf
    assert review_all.policy.decline_at == math.inf
    assert review_all.total_cost == 25.0  # vs decline all 60, approve all 200
    # No room for 5 reviews: declining everything (60) beats approving it (200).
    decline_all = optimize_three_band(s, costs, y, periods, 4)
    assert decline_all.counts == {"approve": 0, "review": 0, "decline": 5}
    assert decline_all.total_cost == 60.0
    assert decline_all.policy.review_at == decline_all.policy.decline_at == -math.inf


def test_no_positives_approves_everything() -> None:
    s = np.linspace(0, 1, 50)
    costs = CostModel(false_negative=100.0, false_positive=5.0, review=2.0)
    best = optimize_three_band(s, costs, np.zeros(50), np.zeros(50), 10)
    assert best.counts == {"approve": 50, "review": 0, "decline": 0}
    assert best.total_cost == 0.0
    assert best.policy.review_at == math.inf


def test_empty_and_invalid_inputs_are_refused_with_the_fix() -> None:
    costs = CostModel(false_negative=1.0, false_positive=1.0)
    with pytest.raises(DataError, match="needs scored rows"):
        optimize_three_band([], costs, [], [], 5)
    with pytest.raises(DataError, match="needs scored rows"):
        optimize_top_n([], costs, [], [], 5)
    with pytest.raises(SpecError, match="percentile"):
        optimize_three_band([0.1], costs, [0], [0], 5, percentile=0.0)
    with pytest.raises(SpecError, match="whole number"):
        optimize_three_band([0.1], costs, [0], [0], -1)
    with pytest.raises(SpecError, match="overflow"):
        optimize_three_band([0.1], costs, [0], [0], 1, overflow="queue")
    with pytest.raises(DataError, match="NaN"):
        optimize_three_band([math.nan], costs, [0], [0], 1)
    with pytest.raises(DataError, match="periods"):
        optimize_three_band([0.1, 0.2], costs, [0, 1], [0], 1)
    with pytest.raises(DataError, match=r"\[0, 1\]"):
        optimize_three_band([0.1], costs, [2], [0], 1)
    with pytest.raises(DataError, match="cost model has 3 rows"):
        optimize_three_band([0.1], CostModel(false_negative=[1.0, 2, 3], false_positive=1.0),
                            [0], [0], 1)


def test_percentile_lets_some_periods_overflow_and_prices_the_spill() -> None:
    rng = np.random.default_rng(2)
    n = 2000
    s = rng.random(n)
    y = (rng.random(n) < s**2).astype(float)
    periods = rng.integers(0, 10, n)
    costs = CostModel(false_negative=50.0, false_positive=10.0, review=1.0)
    strict = optimize_three_band(s, costs, y, periods, 30)
    loose = optimize_three_band(s, costs, y, periods, 30, percentile=0.8)
    assert strict.periods_over_capacity == 0
    assert loose.periods_over_capacity <= 2
    assert loose.total_cost <= strict.total_cost
    spilled = apply_with_capacity(loose.policy, s, periods, 30, "approve")
    assert loose.cost_after_overflow == pytest.approx(
        costs.cost_of(spilled, y).sum())
    assert loose.policy.metadata["percentile"] == 0.8


def test_frontier_is_monotone_and_contains_the_chosen_capacity() -> None:
    rng = np.random.default_rng(3)
    n = 3000
    s = rng.random(n)
    y = (rng.random(n) < s**2).astype(float)
    periods = rng.integers(0, 10, n)
    costs = CostModel(false_negative=50.0, false_positive=10.0, review=1.0)
    best = optimize_three_band(s, costs, y, periods, 40)
    caps = [p["capacity"] for p in best.frontier]
    assert caps == sorted(caps) and caps[0] == 0.0 and 40.0 in caps
    cost = [p["cost"] for p in best.frontier]
    assert all(b <= a + 1e-9 for a, b in itertools.pairwise(cost))
    at = next(p for p in best.frontier if p["capacity"] == 40.0)
    assert at["cost"] == pytest.approx(best.total_cost)
    assert all(p["reviews_max"] <= p["capacity"] for p in best.frontier)


def test_speed_on_100k_rows() -> None:
    rng = np.random.default_rng(1)
    n = 100_000
    p = rng.beta(0.3, 20, n)
    y = (rng.random(n) < p).astype(float)
    amount = rng.gamma(2, 60, n)
    day = np.sort(rng.integers(0, 30, n))
    costs = CostModel(false_negative=amount, false_positive=0.1 * amount + 5, review=3.0)
    t0 = time.perf_counter()
    best = optimize_three_band(p, costs, y, day, 150)
    elapsed = time.perf_counter() - t0
    print(f"\noptimize_three_band on {n:,} rows: {elapsed * 1000:.0f} ms")
    assert best.reviews_max <= 150
