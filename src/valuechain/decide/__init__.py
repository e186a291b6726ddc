"""``valuechain decide``: scores become actions under costs and capacity, priced in money.

:func:`price_policy` does it from plain arrays (your own scores, no spec);
:func:`decide_project` does it for a project's latest training run, after checking that the
run was made from the frame built now.
"""

from valuechain.decide.price import Decisions, PricedPolicy, price_policy
from valuechain.decide.result import (
    ActionCounts,
    CapacitySummary,
    DecideResult,
    PeriodSummary,
    Savings,
    Sensitivity,
)
from valuechain.decide.stage import decide_project

__all__ = [
    "ActionCounts",
    "CapacitySummary",
    "DecideResult",
    "Decisions",
    "PeriodSummary",
    "PricedPolicy",
    "Savings",
    "Sensitivity",
    "decide_project",
    "price_policy",
]
