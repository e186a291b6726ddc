"""decide for a weekly outreach list: the spec's action names, outreach baselines, the
cooldown, intervals that resample customers (valuechain.decide.outreach)."""

from __future__ import annotations

import numpy as np

from valuechain.decide.outreach import price_outreach, select_weekly
from valuechain.decide.price import Decisions
from valuechain.policy import CostModel, describe


def _weeks(seed: int, customers: int = 300, weeks: int = 10
           ) -> tuple[Decisions, np.ndarray, np.ndarray]:
    """Every customer every week; a persistent risk per customer (the same customers recur)."""
    rng = np.random.default_rng(seed)
    risk = rng.beta(0.6, 12, customers)
    p = np.tile(risk, weeks)
    y = (rng.random(len(p)) < p).astype(float)
    who = np.tile(np.arange(customers), weeks).astype(str)
    week = np.repeat(np.arange(100, 100 + weeks), customers)
    value = np.tile(rng.choice([120.0, 240.0, 480.0], customers), weeks)
    costs = CostModel(false_negative=value, false_positive=value, review=15.0,
                      catch_rate=0.25, friction=0.01)
    rule = np.tile(risk > np.quantile(risk, 0.8), weeks) & (rng.random(len(p)) < 0.9)
    return Decisions(p, y, costs, week), who, rule


def test_outreach_pricing_names_baselines_cooldown_and_savings_by_hand() -> None:
    val, who_val, _ = _weeks(1)
    test, who, rule = _weeks(2)
    priced = price_outreach(test, val, entity_test=who, entity_validation=who_val, limit=20,
                            names=("call", "no_call"), per="7d", per_days=7.0,
                            cooldown_periods=5, rule=rule, seed=3)
    policy = priced.policy
    assert (policy.action, policy.other) == ("call", "no_call")
    assert describe(policy, per="7d").startswith(f"Policy: call the {policy.n} highest scores "
                                                 "a week")
    assert set(priced.test.actions_per_period) == {"call", "no_call"}
    assert set(priced.baselines) == {"no_outreach", "random_list", "rules"}
    # never more than the capacity in any week; no customer listed twice within 5 weeks
    listed = priced.actions == "review"
    for name, acts in {"policy": priced.actions, **priced.baseline_actions}.items():
        mask = acts == "review"
        per_week = np.bincount(test.periods[mask] - 100, minlength=10)
        assert per_week.max(initial=0) <= 20, name
        for customer in np.unique(who[mask]):
            weeks = np.sort(test.periods[mask & (who == customer)])
            assert np.all(np.diff(weeks) >= 5), (name, customer, weeks)
    # the random list has the policy's size each week
    random = priced.baseline_actions["random_list"] == "review"
    assert np.array_equal(np.bincount(test.periods[random] - 100, minlength=10),
                          np.bincount(test.periods[listed] - 100, minlength=10))
    # today's rule lists only flagged customers
    assert not np.any((priced.baseline_actions["rules"] == "review") & ~rule)
    # savings against contacting nobody, by hand: catch * y * FN - R - (1 - y) * friction * FP
    fn = np.asarray(test.costs.false_negative)
    y = test.labels
    by_hand = np.sum((0.25 * y * fn - 15.0 - (1 - y) * 0.01 * fn)[listed])
    saved = priced.test.savings["no_outreach"]  # type: ignore[index]
    assert np.isclose(saved.value, by_hand)
    extra = saved.model_dump()
    assert extra["blocks"] == "customers"
    assert saved.low <= saved.value <= saved.high  # type: ignore[operator]
    assert extra["low_weeks"] <= saved.value <= extra["high_weeks"]
    assert np.isclose(extra["per_period"], saved.value / 10)
    assert np.isclose(saved.per_day, saved.value / 70)


def test_without_cooldown_the_same_customers_are_listed_every_week() -> None:
    """The problem the cooldown solves: persistent risk lists the same customers weekly."""
    test, who, _ = _weeks(4)
    again = select_weekly(test.scores, test.periods, who, 20, cooldown_periods=0)
    once = select_weekly(test.scores, test.periods, who, 20, cooldown_periods=5)
    assert len(np.unique(who[again])) == 20  # the same 20 customers all 10 weeks
    assert len(np.unique(who[once])) > 60    # 5-week cooldown: fresh customers
    assert again.sum() == once.sum() == 200


def test_customer_intervals_are_wider_than_row_intervals_when_customers_recur() -> None:
    """Resampling customers (clusters) respects that rows of one customer are dependent."""
    from valuechain.evaluate.bootstrap import block_sum_interval

    rng = np.random.default_rng(0)
    per_customer = rng.normal(0, 10, 200)
    values = np.tile(per_customer, 10)  # the same customer's effect recurs every week
    who = np.tile(np.arange(200), 10)
    rows = block_sum_interval(values, np.arange(len(values)), seed=1)
    customers = block_sum_interval(values, who, seed=1)
    assert customers.high - customers.low > 2 * (rows.high - rows.low)
