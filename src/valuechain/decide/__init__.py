"""``valuechain decide``: scores become actions under costs and capacity, priced in money."""

from valuechain.decide.stage import DecideResult, decide_project

__all__ = ["DecideResult", "decide_project"]
