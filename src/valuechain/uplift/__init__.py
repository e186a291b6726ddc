"""Uplift: what the action changes, learned and judged on a randomized history.

A churn model ranks customers by *risk*; a call is worth making where it *changes* the
outcome. The spec's ``treatment:`` block names the randomized history (which listed
customers were called, which held out); this package joins it onto the built frame
(:mod:`~valuechain.uplift.assign`), learns the effect of the action
(:mod:`~valuechain.uplift.learners`: two-model and class-transformation learners), measures
it with intervals that resample customers (:mod:`~valuechain.uplift.metrics`), compares
lists (:mod:`~valuechain.uplift.compare`) and plans how long a holdout must run
(:mod:`~valuechain.uplift.planner`). See ``docs/uplift.md``.

The consumer contract (LISTS): :class:`UpliftModel` (``learner``, ``features``,
``predict(frame)`` = ``p(label | no action) - p(label | action)``) and :func:`load_uplift`.
"""

from __future__ import annotations

from valuechain.uplift.assign import Assignment, assignment_for, join_assignment
from valuechain.uplift.learners import (
    LEARNERS,
    ClassTransformation,
    TwoModel,
    UpliftModel,
    fit_learner,
    load_uplift,
)

__all__ = [
    "LEARNERS",
    "Assignment",
    "ClassTransformation",
    "TwoModel",
    "UpliftModel",
    "assignment_for",
    "fit_learner",
    "join_assignment",
    "load_uplift",
]
