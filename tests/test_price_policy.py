"""price_policy from plain arrays: the policy, the savings with day-block intervals, capacity."""

from __future__ import annotations

import numpy as np
import pytest

from valuechain.decide import Decisions, price_policy
from valuechain.errors import DataError
from valuechain.evaluate import N_BOOT
from valuechain.policy import CostModel, apply_with_capacity


def world(n: int, seed: int, days: int = 20) -> tuple[np.ndarray, np.ndarray, CostModel,
                                                       np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.beta(0.5, 12, n)
    y = (rng.random(n) < p).astype(float)
    amount = rng.gamma(2.0, 60.0, n)
    costs = CostModel(false_negative=amount, false_positive=0.1 * amount + 5, review=3.0,
                      catch_rate=0.9)
    return p, y, costs, np.repeat(np.arange(days), n // days)


@pytest.fixture(scope="module")
def priced() -> tuple:
    val, test = world(10_000, 1), world(10_000, 2)
    rule = test[2].false_negative > 250
    out = price_policy(*test, capacity=30, validation=Decisions(*val),
                       baselines={"today": rule})
    return val, test, rule, out


def test_policy_fits_capacity_and_prices_every_baseline(priced: tuple) -> None:
    _, (p, _, _, day), rule, out = priced
    assert out.policy.kind == "three_band" and not out.in_sample
    assert out.test.capacity.within and out.test.capacity.max_used <= 30
    assert out.test.capacity.periods == 20 and len(out.test.capacity.used_per_period) == 20
    assert out.test.decisions == len(p)
    assert list(out.test.savings) == ["approve_all", "today", "threshold_0.5",
                                      "accuracy_optimal"]
    # Savings = baseline cost - policy cost, on the same rows.
    policy_cost = out.test.expected_cost
    for name, saved in out.test.savings.items():
        assert saved.value == pytest.approx(out.baselines[name].expected_cost - policy_cost)
        assert saved.low <= saved.value <= saved.high
        assert saved.per_day == pytest.approx(saved.value / 20)
    # The rule baseline: flagged rows reviewed first come first served, 30 per day at most.
    today = out.baseline_actions["today"]
    assert ((today == "review") <= rule).all()
    assert out.baselines["today"].capacity.max_used == 30
    # The policy's actions are its bands after the overflow rule.
    np.testing.assert_array_equal(out.actions, apply_with_capacity(out.policy, p, day, 30))


def test_savings_interval_is_the_day_block_bootstrap_of_the_daily_differences(
        priced: tuple) -> None:
    _, (_, y, costs, day), _, out = priced
    base = costs.cost_of(out.baseline_actions["approve_all"], y)
    mine = costs.cost_of(out.actions, y)
    per_day = np.bincount(day, weights=base - mine)
    rng = np.random.default_rng(0)
    draws = per_day[rng.integers(0, 20, size=(N_BOOT, 20))].sum(axis=1)
    saved = out.test.savings["approve_all"]
    assert saved.low == pytest.approx(np.quantile(draws, 0.025))
    assert saved.high == pytest.approx(np.quantile(draws, 0.975))


def test_without_validation_it_is_in_sample_and_other_kinds_work() -> None:
    p, y, costs, day = world(6000, 3)
    out = price_policy(p, y, costs, day, capacity=25)
    assert out.in_sample and out.validation.decisions == out.test.decisions
    top = price_policy(p, y, costs, day, capacity=25, kind="top_n", per="1d")
    assert top.policy.kind == "top_n" and top.test.capacity.max_used <= 25
    thr = price_policy(p, y, costs, day, capacity=None, kind="threshold",
                       objective="realised", days=day // 2)
    assert thr.policy.kind == "threshold" and thr.test.capacity.limit is None
    names = np.where(p > 0.3, "decline", "approve")
    given = price_policy(p, y, costs, day, capacity=25, baselines={"mine": names})
    assert given.baselines["mine"].actions_per_period["decline"].total == (p > 0.3).sum()


def test_bad_inputs_name_the_argument() -> None:
    p, y, costs, day = world(1000, 4)
    with pytest.raises(DataError, match="`labels` has 999 rows"):
        price_policy(p, y[:-1], costs, day, capacity=10)
    with pytest.raises(DataError, match="`periods`"):
        price_policy(p, y, costs, day[:-1], capacity=10)
    with pytest.raises(DataError, match=r"`scores` must be calibrated probabilities"):
        price_policy(p * 3, y, costs, day, capacity=10)
    with pytest.raises(DataError, match="`labels` must be 0 or 1"):
        price_policy(p, y * 2, costs, day, capacity=10)
    with pytest.raises(DataError, match="`costs` has 1000 rows"):
        price_policy(p[:500], y[:500], costs, day[:500], capacity=10)
    with pytest.raises(DataError, match=r"baselines\['x'\].*shape"):
        price_policy(p, y, costs, day, capacity=10, baselines={"x": np.ones(3, bool)})
    with pytest.raises(DataError, match="not approve, review or decline"):
        price_policy(p, y, costs, day, capacity=10, baselines={"x": np.full(1000, "call")})
    with pytest.raises(DataError, match="built-in baseline"):
        price_policy(p, y, costs, day, capacity=10,
                     baselines={"approve_all": np.zeros(1000, bool)})


def test_the_policy_docs_examples_run() -> None:
    import doctest
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "docs" / "policy.md"
    result = doctest.testfile(str(path), module_relative=False,
                              optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted >= 9 and result.failed == 0
