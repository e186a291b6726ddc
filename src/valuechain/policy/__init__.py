"""Decide: turn calibrated scores into actions under costs and capacity.

Four modules, one job each:

- :mod:`~valuechain.policy.costs`: :class:`CostModel`, the cost of approving, reviewing or
  declining each row given its label (realised) or calibrated probability (expected);
- :mod:`~valuechain.policy.policies`: :class:`Threshold`, :class:`ThreeBand` and
  :class:`TopN`, each applied to scores and saved as a versioned ``policy.yaml``;
- :mod:`~valuechain.policy.capacity`: :func:`apply_with_capacity`, which spills what exceeds
  the capacity of a period to approve (lowest scores) or decline (highest scores);
- :mod:`~valuechain.policy.optimize`: exact optimisers over every cut between distinct
  scores under a capacity per period, returning an :class:`Optimum`.

>>> import numpy as np
>>> from valuechain.policy import CostModel, apply_with_capacity, optimize_three_band
>>> rng = np.random.default_rng(0)
>>> p = rng.beta(0.5, 8, 5000)
>>> y = (rng.random(5000) < p).astype(float)
>>> day = np.repeat(np.arange(10), 500)
>>> costs = CostModel(false_negative=rng.gamma(2.0, 60.0, 5000), false_positive=5.0,
...                   review=3.0)
>>> best = optimize_three_band(p, costs, p, day, capacity=20)
>>> best.reviews_max <= 20, best.periods_over_capacity
(True, 0)
>>> actions = apply_with_capacity(best.policy, p, day, 20)
>>> int((actions == "review").sum()) == best.counts["review"]
True
"""

from __future__ import annotations

from valuechain.policy.capacity import (
    apply_with_capacity,
    capacity_period,
    limited_action,
    per_period_counts,
)
from valuechain.policy.costs import ROLES, CostModel
from valuechain.policy.optimize import (
    Optimum,
    optimize_three_band,
    optimize_threshold,
    optimize_top_n,
)
from valuechain.policy.policies import (
    POLICY_VERSION,
    Policy,
    ThreeBand,
    Threshold,
    TopN,
    load_policy,
    policy_from_dict,
)
from valuechain.policy.wording import describe

__all__ = [
    "POLICY_VERSION",
    "ROLES",
    "CostModel",
    "Optimum",
    "Policy",
    "ThreeBand",
    "Threshold",
    "TopN",
    "apply_with_capacity",
    "capacity_period",
    "describe",
    "limited_action",
    "load_policy",
    "optimize_three_band",
    "optimize_threshold",
    "optimize_top_n",
    "per_period_counts",
    "policy_from_dict",
]
