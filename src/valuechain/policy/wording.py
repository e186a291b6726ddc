"""A policy in words, for the people who act on it (terminal, report, monitor).

One function, :func:`describe`, turns any policy (object or its saved ``dict`` form) into one
sentence: what happens to which scores, and what the review capacity does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from valuechain.policy.policies import Policy, ThreeBand, Threshold, TopN, policy_from_dict
from valuechain.spec.durations import format_duration, parse_duration

__all__ = ["describe"]

_PER = {"1d": "a day", "7d": "a week", "1w": "a week", "1h": "an hour"}


def _score(value: float) -> str:
    """A threshold as people read it: three significant digits, no exponent."""
    if value == 0:
        return "0"
    digits = max(3, 3 - math.floor(math.log10(abs(value))) - 1)
    return f"{value:.{min(digits, 8)}f}".rstrip("0").rstrip(".")


def _period(per: str | None) -> str:
    if not per:
        return "a day"
    try:
        per = format_duration(parse_duration(per))
    except ValueError:
        return f"per {per}"
    return _PER.get(per, f"per {per}")


def _limit(capacity: int | None, per: str | None, overflow: str | None) -> str:
    if capacity is None:
        return ""
    rest = f", the rest {overflow}d" if overflow in ("approve", "decline") else (
        f", the rest to {overflow}" if overflow else "")
    return f" (at most {capacity:,} {_period(per)}{rest})"


def describe(policy: Policy | Mapping[str, Any], capacity: int | None = None, *,
             per: str | None = None, overflow: str | None = None,
             limited: str | None = None) -> str:
    """The policy in one sentence, e.g. for the first line of ``valuechain decide``.

    Parameters
    ----------
    policy : Policy or mapping
        A :class:`ThreeBand`, :class:`Threshold` or :class:`TopN`, or its ``to_dict`` form
        (as in ``policy.yaml`` / ``decide.json``).
    capacity : int, optional
        The most rows per period the limited action may take; default the policy's
        ``metadata['capacity']`` (what decide fitted it for), else no limit is stated.
    per : str, optional
        The capacity period as a spec duration (``'1d'``, ``'7d'``); default ``'1d'``
        (a top-N policy's own ``per``).
    overflow : str, optional
        What happens to rows beyond the capacity (``'approve'`` or ``'decline'``); default
        the policy's ``metadata['overflow']``.
    limited : str, optional
        The action the capacity limits; default the action with the ``review`` role.

    Returns
    -------
    str
        One sentence starting with ``"Policy: "``.

    Examples
    --------
    >>> from valuechain.policy import ThreeBand, Threshold, TopN
    >>> describe(ThreeBand(review_at=0.18, decline_at=0.62), 150, overflow="approve")
    'Policy: decline when the score is 0.62 or above; send 0.18–0.62 to review (at most 150 a day, the rest approved); approve the rest.'
    >>> describe({"version": 1, "kind": "threshold", "threshold": 0.4})
    'Policy: decline when the score is 0.4 or above; approve the rest.'
    >>> describe(TopN(n=40, per="7d", min_score=0.3, action="contact", other="skip"))
    'Policy: contact the 40 highest scores a week (only scores of 0.3 or above); skip the rest.'
    >>> describe(ThreeBand(review_at=0.02404, decline_at=math.inf), 150, overflow="approve")
    'Policy: send scores of 0.024 or above to review (at most 150 a day, the rest approved); approve the rest.'
    """
    p = policy if isinstance(policy, ThreeBand | Threshold | TopN) else policy_from_dict(policy)
    meta = dict(p.metadata)
    if capacity is None and isinstance(meta.get("capacity"), int | float):
        capacity = int(meta["capacity"])
    overflow = overflow if overflow is not None else meta.get("overflow")
    roles = p.roles
    limited = limited or next((a for a, r in roles.items() if r == "review"), None)

    def cap(action: str) -> str:
        return _limit(capacity, per, overflow) if action == limited else ""

    if isinstance(p, TopN):
        floor = f" (only scores of {_score(p.min_score)} or above)" if p.min_score \
            else ""
        return (f"Policy: {p.action} the {p.n:,} highest scores {_period(per or p.per)}"
                f"{floor}; {p.other} the rest.")
    if isinstance(p, Threshold):
        top = p.at_or_above
        verb = f"send to {top}" if top == "review" else top
        if math.isinf(p.threshold):
            every = p.below if p.threshold > 0 else top
            return f"Policy: {every} every case."
        return (f"Policy: {verb} when the score is {_score(p.threshold)} or above"
                f"{cap(top)}; {p.below} the rest.")
    approve, review, decline = p.actions
    parts: list[str] = []
    has_decline = not math.isinf(p.decline_at) or p.decline_at < 0
    has_review = p.review_at < p.decline_at
    if has_decline and math.isinf(p.decline_at):
        return f"Policy: {decline} every case."
    if has_decline:
        parts.append(f"{decline} when the score is {_score(p.decline_at)} or above")
    if has_review:
        if math.isinf(p.review_at):
            band = "every score below the decline band" if has_decline else "every case"
        elif has_decline:
            band = f"{_score(p.review_at)}–{_score(p.decline_at)}"
        else:
            band = f"scores of {_score(p.review_at)} or above"
        parts.append(f"send {band} to {review}{cap(review)}")
    parts.append(f"{approve} the rest" if parts else f"{approve} every case")
    return "Policy: " + "; ".join(parts) + "."
