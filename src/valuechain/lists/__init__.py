"""Weekly outreach lists under capacity, with a random control group and a contact history.

- :mod:`~valuechain.lists.control`: the stratified random control (:func:`stratified_control`);
- :mod:`~valuechain.lists.history`: the append-only assignments table
  (:class:`AssignmentLog`), which the cooldown reads;
- :mod:`~valuechain.lists.week`: :func:`week_list`, the list of one Monday (``valuechain
  list``).

See docs/churn.md ("The week's list").
"""

from __future__ import annotations

from valuechain.lists.control import control_bins, control_seed, stratified_control
from valuechain.lists.history import Assignment, AssignmentLog
from valuechain.lists.week import UpliftLike, WeekList, list_actions, outreach_of, week_list

__all__ = [
    "Assignment",
    "AssignmentLog",
    "UpliftLike",
    "WeekList",
    "control_bins",
    "control_seed",
    "list_actions",
    "outreach_of",
    "stratified_control",
    "week_list",
]
