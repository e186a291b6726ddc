"""The holdout planner: by hand, against a simulation, and the pooled estimate."""

from __future__ import annotations

import math

import numpy as np
import pytest

from valuechain.errors import DataError
from valuechain.uplift.planner import (
    cumulative_effect,
    plan_holdout,
    pooled_estimate,
    weekly_rates,
)


def test_weeks_by_hand() -> None:
    # base 8.6 %, effect 1.9 points, 200 listed a week, 20 % held out: c = 40, t = 160
    # pooled p = (40 * .086 + 160 * .067) / 200 = .0708
    # null sd per week sqrt(.0708 * .9292 * (1/40 + 1/160)) = .045342, x 1.959964 = .088869
    # alt sd per week sqrt(.086 * .914 / 40 + .067 * .933 / 160) = .048537, x .841621 = .040850
    # ((.088869 + .040850) / .019)^2 = 46.61 -> 47 weeks
    plan = plan_holdout(base=0.086, effect=0.019, list_size=200, control_share=0.2)
    assert plan.weeks == 47
    assert plan.control_per_week == 40 and plan.treated_per_week == 160
    assert plan.power_at(47) >= 0.8 > plan.power_at(46)
    # the hand value of the power after 47 weeks: Phi((.019 sqrt(47) - .088869) / .048537)
    z = (0.019 * math.sqrt(47) - 0.088869) / 0.048537
    assert plan.power_at(47) == pytest.approx(0.5 * (1 + math.erf(z / math.sqrt(2))), abs=1e-4)


def test_planner_monotone_and_edge_cases() -> None:
    base = dict(base=0.1, list_size=200, control_share=0.2)
    weeks = [plan_holdout(effect=d, **base).weeks for d in (0.01, 0.02, 0.04)]  # type: ignore[arg-type]
    assert weeks[0] > weeks[1] > weeks[2] >= 1  # type: ignore[operator]
    more_control = plan_holdout(base=0.1, effect=0.02, list_size=200, control_share=0.5)
    assert more_control.weeks < weeks[1]  # type: ignore[operator]
    assert plan_holdout(effect=0.0, **base).weeks is None  # type: ignore[arg-type]
    with pytest.raises(DataError, match=r"`base`.*`control_share`"):
        plan_holdout(base=1.5, effect=0.01, list_size=200, control_share=1.0)
    with pytest.raises(DataError, match="treated rate"):
        plan_holdout(base=0.05, effect=0.2, list_size=200, control_share=0.2)


def test_power_matches_a_simulation() -> None:
    """Simulate W weeks of lists, test pooled control vs treated with a z-test: the share of
    rejections is the planned power."""
    plan = plan_holdout(base=0.1, effect=0.03, list_size=100, control_share=0.2)
    assert plan.weeks is not None
    weeks = plan.weeks
    rng = np.random.default_rng(0)
    sims = 4000
    n_c, n_t = int(plan.control_per_week * weeks), int(plan.treated_per_week * weeks)
    y_c = rng.binomial(n_c, 0.1, sims) / n_c
    y_t = rng.binomial(n_t, 0.07, sims) / n_t
    pooled = (y_c * n_c + y_t * n_t) / (n_c + n_t)
    z = (y_c - y_t) / np.sqrt(pooled * (1 - pooled) * (1 / n_c + 1 / n_t))
    rejected = float(np.mean(np.abs(z) > 1.959964))
    assert rejected == pytest.approx(plan.power_at(weeks), abs=0.03)
    assert rejected >= 0.8 - 0.03


def test_pooled_estimate_by_hand_and_weekly_rates() -> None:
    # week 1: control 1/2 churn, treated 0/2; week 2: control 0/1, treated 1/3
    y = [1, 0, 0, 0, 0, 1, 0, 0]
    t = [0, 0, 1, 1, 0, 1, 1, 1]
    w = [1, 1, 1, 1, 2, 2, 2, 2]
    customers = [1, 2, 3, 4, 1, 2, 3, 5]
    est = pooled_estimate(y, t, w, customers, n_boot=50)
    assert est.control == 3 and est.treated == 5 and est.weeks == 2
    assert est.effect.value == pytest.approx(1 / 3 - 1 / 5)
    assert est.effect.low <= est.effect.value <= est.effect.high
    rates = weekly_rates(y, t, w)
    assert rates["control_rate"].tolist() == [0.5, 0.0]
    assert rates["treated_rate"].tolist() == pytest.approx([0.0, 1 / 3])
    # the pooled effect after the last week is the pooled estimate
    cumulative = cumulative_effect(rates)
    assert cumulative["effect"].tolist() == pytest.approx([0.5, 1 / 3 - 1 / 5])
    assert cumulative["weeks"].tolist() == [1, 2]
    assert (cumulative["low"] <= cumulative["effect"]).all()
