"""Capacity at apply time: never send a period more cases than the team can handle.

Each policy has one *capacity-limited* action: the review band of a :class:`ThreeBand`, the
``at_or_above`` action of a :class:`Threshold`, the ``action`` of a :class:`TopN`. When a
period has more rows with that action than ``capacity``, the overflow spills:

- ``overflow="approve"``: the lowest-scored rows beyond capacity get the low action
  (approve), so the highest scores keep their place in the queue;
- ``overflow="decline"``: the highest-scored rows beyond capacity get the high action
  (decline), so the queue keeps the lowest scores (only a :class:`ThreeBand` has a decline
  side above its review band).

Among equal scores the earlier row keeps its place.

>>> policy = ThreeBand(review_at=0.5, decline_at=0.9)
>>> apply_with_capacity(policy, [0.6, 0.7, 0.8, 0.95], [0, 0, 0, 0], capacity=2).tolist()
['approve', 'review', 'review', 'decline']
>>> apply_with_capacity(policy, [0.6, 0.7, 0.8, 0.95], [0, 0, 0, 0], capacity=2,
...                     overflow="decline").tolist()
['review', 'review', 'decline', 'decline']
"""

from __future__ import annotations

from typing import Any, overload

import numpy as np
import numpy.typing as npt

from valuechain.errors import SpecError
from valuechain.policy.policies import (
    Actions,
    Policy,
    ThreeBand,
    Threshold,
    check_scores,
    period_codes,
    rank_within_period,
)

__all__ = ["OVERFLOWS", "PERIOD_ANCHOR_US", "apply_with_capacity", "capacity_period",
           "limited_action", "per_period_counts"]

#: Capacity periods are counted from Monday 1970-01-05 00:00 UTC: days start at midnight UTC,
#: hours on the hour, weeks on Monday — the same periods offline (train, decide) and online
#: (serve, score), whatever the first row of a frame.
PERIOD_ANCHOR_US = 4 * 86_400_000_000


@overload
def capacity_period(t_us: int, per_us: int) -> int: ...
@overload
def capacity_period(t_us: npt.NDArray[np.integer[Any]], per_us: int
                    ) -> npt.NDArray[np.int64]: ...
def capacity_period(t_us: Any, per_us: int) -> Any:
    """The index of the capacity period holding ``t_us`` (µs since the epoch, UTC).

    Period ``k`` starts at ``PERIOD_ANCHOR_US + k * per_us``.

    >>> DAY = 86_400_000_000
    >>> capacity_period(DAY * 20_000 + 5, DAY) - capacity_period(DAY * 20_000 - 5, DAY)
    1
    >>> monday = PERIOD_ANCHOR_US + 2_900 * 7 * DAY  # 2025-08-04, a Monday
    >>> capacity_period(np.array([monday - 1, monday, monday + 6 * DAY]), 7 * DAY).tolist()
    [2899, 2900, 2900]
    """
    return (t_us - PERIOD_ANCHOR_US) // per_us


I64 = npt.NDArray[np.int64]

#: Where cases beyond capacity go.
OVERFLOWS = ("approve", "decline")


def limited_action(policy: Policy) -> tuple[str, str, str | None]:
    """The capacity-limited action, the action below it and the one above it (or ``None``).

    Examples
    --------
    >>> limited_action(ThreeBand(0.2, 0.9))
    ('review', 'approve', 'decline')
    >>> limited_action(Threshold(0.5, at_or_above="review"))
    ('review', 'approve', None)
    """
    if isinstance(policy, ThreeBand):
        low, mid, high = policy.actions
        return mid, low, high
    if isinstance(policy, Threshold):
        return policy.at_or_above, policy.below, None
    return policy.action, policy.other, None


def check_capacity(capacity: int | None, overflow: str) -> None:
    """Refuse a negative or fractional capacity and an unknown overflow."""
    if capacity is not None and (isinstance(capacity, bool) or not isinstance(
            capacity, int | np.integer) or capacity < 0):
        raise SpecError(f"capacity `limit` must be a whole number >= 0 (cases per period), got "
                        f"{capacity!r}.")
    if overflow not in OVERFLOWS:
        raise SpecError(f"capacity `overflow` must be one of {', '.join(OVERFLOWS)} (where "
                        f"cases beyond the limit go), got {overflow!r}.")


def per_period_counts(mask: npt.ArrayLike, codes: I64, n_periods: int) -> I64:
    """Rows with ``mask`` set in each period (codes from :func:`period_codes`).

    Examples
    --------
    >>> per_period_counts([True, True, False], np.array([0, 1, 1]), 3).tolist()
    [1, 1, 0]
    """
    return np.bincount(codes, weights=np.asarray(mask, dtype=np.float64),
                       minlength=n_periods).astype(np.int64)


def apply_with_capacity(
    policy: Policy,
    scores: npt.ArrayLike,
    periods: npt.ArrayLike,
    capacity: int | None,
    overflow: str = "approve",
) -> Actions:
    """Apply ``policy`` and spill what exceeds ``capacity`` in each period.

    Parameters
    ----------
    policy
        Any policy.
    scores
        One calibrated score per row.
    periods
        One period id per row (e.g. the day number); capacity holds within each period.
    capacity
        Most rows with the limited action per period; ``None`` applies the policy as is.
    overflow
        ``"approve"`` (lowest overflow scores go to the low action) or ``"decline"``
        (highest overflow scores go to the high action; :class:`ThreeBand` only).

    Returns
    -------
    numpy.ndarray
        One action name per row.

    Examples
    --------
    >>> apply_with_capacity(Threshold(0.5, at_or_above="review"), [0.9, 0.6, 0.7],
    ...                     [1, 1, 1], capacity=1).tolist()
    ['review', 'approve', 'approve']
    """
    check_capacity(capacity, overflow)
    s = check_scores(scores)
    codes, _ = period_codes(periods, len(s))
    actions = policy.apply(s, codes)
    if capacity is None:
        return actions
    limited, low, high = limited_action(policy)
    if overflow == "decline" and high is None:
        raise SpecError(f"capacity `overflow: decline` needs a decline band above the "
                        f"`{limited}` action; a {policy.kind} policy has none. Use "
                        "`overflow: approve` or a three_band policy.")
    rows = np.flatnonzero(actions == limited)
    key = s[rows] if overflow == "decline" else -s[rows]
    # Rank within period among the limited rows: best to keep first, ties by row order.
    rank = rank_within_period(-key, codes[rows])
    spill = rows[rank >= capacity]
    out = actions.copy()
    out[spill] = low if overflow == "approve" else high
    return out
