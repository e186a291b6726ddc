"""Price a weekly outreach list (``decide --kind top_n`` with an ``outreach`` block).

A list is not a decision per event: each week the top ``n`` customers (at or above
``min_score``) receive the spec's action (``outreach.action``, e.g. ``call``), the others the
other decision action (``no_call``), and a customer listed within ``outreach.cooldown`` is
not eligible again (the contact history). :func:`select_weekly` applies that rule week by
week, in time order. With a cooldown at least the label horizon, a customer's outcome window
is covered by at most one listing, so a save is counted once per customer-episode, not once
per week the customer stays on the list.

The baselines fit outreach (none "declines"):

- ``no_outreach``: nobody is contacted;
- ``random_list``: each week, as many customers as the policy lists, drawn at random among
  the eligible (the same cooldown);
- ``rules``: today's rule (``value.baseline_policy``): the flagged customers in random order
  up to the capacity (first come, first served when the whole week arrives at once), with
  the same cooldown.

Money intervals resample **customers** (a cluster bootstrap: the same customers recur every
week, so rows are not independent) and, as a second view, **weeks**
(:func:`~valuechain.evaluate.block_sum_interval` with customers or weeks as blocks).

>>> import numpy as np
>>> week = np.array([0, 0, 0, 1, 1, 1])
>>> who = np.array(["a", "b", "c", "a", "b", "c"])
>>> p = np.array([0.9, 0.5, 0.1, 0.9, 0.5, 0.1])
>>> select_weekly(p, week, who, 1, cooldown_periods=5).tolist()
[True, False, False, False, True, False]
>>> select_weekly(p, week, who, 1, cooldown_periods=0).tolist()
[True, False, False, True, False, False]
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from valuechain.decide.price import Decisions, Objective, apply, realised_cost, summarise
from valuechain.decide.result import ActionCounts, PeriodSummary, Savings
from valuechain.evaluate.bootstrap import block_sum_interval
from valuechain.policy import Optimum, TopN, optimize_top_n

__all__ = ["OutreachPriced", "price_outreach", "select_weekly"]

F64 = npt.NDArray[np.float64]
Bool = npt.NDArray[np.bool_]
Actions = npt.NDArray[np.object_]
BASELINES = ("no_outreach", "random_list", "rules")


def select_weekly(priority: npt.ArrayLike, periods: npt.ArrayLike, entity: npt.ArrayLike,
                  size: int | dict[int, int], *, cooldown_periods: int = 0,
                  eligible: npt.ArrayLike | None = None) -> Bool:
    """Each period in time order, the ``size`` highest priorities among the eligible.

    A row is eligible when ``eligible`` allows it and its entity was not selected in the
    ``cooldown_periods`` periods before (selected at period ``l``, eligible again from
    ``l + cooldown_periods``). Ties are broken by row order.

    Parameters
    ----------
    priority : array-like
        Higher first (a score, an expected value, random numbers).
    periods : array-like of int
        Capacity period of each row (e.g. the week number).
    entity : array-like
        The customer of each row.
    size : int or dict of period to int
        Rows to select per period (a dict: per period; missing periods select none).
    cooldown_periods : int
        Periods before a selected entity may be selected again (0: no cooldown).
    eligible : array-like of bool, optional
        Rows that may be selected at all (e.g. ``score >= min_score``, or today's rule).

    Returns
    -------
    ndarray of bool
    """
    pri = np.asarray(priority, dtype=np.float64)
    per = np.asarray(periods, dtype=np.int64)
    n = len(pri)
    ok = np.ones(n, bool) if eligible is None else np.asarray(eligible, dtype=bool)
    codes = pd.factorize(np.asarray(entity))[0]
    last = np.full(int(codes.max(initial=-1)) + 1, np.iinfo(np.int64).min // 2)
    chosen = np.zeros(n, bool)
    order = np.argsort(per, kind="stable")
    bounds = np.flatnonzero(np.diff(per[order])) + 1
    for rows in np.split(order, bounds):
        if not len(rows):
            continue
        p = int(per[rows[0]])
        k = size.get(p, 0) if isinstance(size, dict) else int(size)
        if k <= 0:
            continue
        rows = rows[ok[rows] & (p - last[codes[rows]] >= cooldown_periods)]
        take = rows[np.lexsort((rows, -pri[rows]))][:k]
        chosen[take] = True
        last[codes[take]] = p
    return chosen


@dataclass(frozen=True, eq=False)
class OutreachPriced:
    """The outreach policy chosen on validation and priced on test (see the module doc)."""

    policy: TopN
    optimum: Optimum
    validation: PeriodSummary
    test: PeriodSummary
    baselines: dict[str, PeriodSummary]
    actions: Actions  # role per test row ("approve" / "review")
    baseline_actions: dict[str, Actions]
    names: tuple[str, str]
    cooldown_periods: int


def _roles(mask: Bool, top_role: str) -> Actions:
    out = np.full(len(mask), "approve", dtype=object)
    out[mask] = top_role
    return out


def renamed(summary: PeriodSummary, names: tuple[str, str], top_role: str) -> PeriodSummary:
    """``actions_per_period`` keyed by the spec's action names (the list's, then the rest)."""
    acts = summary.actions_per_period
    out: dict[str, ActionCounts] = {names[1]: acts["approve"], names[0]: acts[top_role]}
    return summary.model_copy(update={"actions_per_period": out})


def outreach_savings(rows: Decisions, entity: npt.ArrayLike, baseline: F64, policy: F64,
                     seed: int, per_days: float) -> Savings:
    """Money saved with a customer-block interval (and a week-block one beside it)."""
    diff = baseline - policy
    customers = block_sum_interval(diff, np.asarray(entity), seed=seed)
    weeks = block_sum_interval(diff, rows.periods, seed=seed)
    n_periods = max(len(np.unique(rows.periods)), 1)
    return Savings.model_validate({
        "value": customers.value, "low": customers.low, "high": customers.high,
        "per_day": customers.value / (n_periods * per_days),
        "per_period": customers.value / n_periods, "blocks": "customers",
        "low_weeks": weeks.low, "high_weeks": weeks.high})


def price_outreach(
    test: Decisions,
    validation: Decisions,
    *,
    entity_test: npt.ArrayLike,
    entity_validation: npt.ArrayLike,
    limit: int,
    names: tuple[str, str],
    per: str,
    per_days: float,
    cooldown_periods: int,
    rule: npt.ArrayLike | None = None,
    objective: Objective = "expected",
    seed: int = 0,
) -> OutreachPriced:
    """Choose the top-N list on validation, price it on test against outreach baselines.

    The list size ``n <= limit`` and its minimum score come from
    :func:`~valuechain.policy.optimize_top_n` on the validation rows (the cooldown is not
    part of that optimisation); both periods are then listed week by week with the cooldown
    (:func:`select_weekly`). Costs are the spec's roles: a listed row is priced as a
    ``review`` (the call), the others as ``approve``.
    """
    target = validation.scores if objective == "expected" else validation.labels
    optimum = optimize_top_n(validation.scores, validation.costs, target, validation.periods,
                             limit, per=per, action=names[0], other=names[1])
    chosen = optimum.policy
    assert isinstance(chosen, TopN)
    policy = replace(chosen, metadata={**chosen.metadata, "cooldown_periods": cooldown_periods})
    top_role = policy.roles[names[0]]

    def listed(rows: Decisions, entity: npt.ArrayLike) -> Bool:
        with_entity = replace(rows, entity=np.asarray(entity))
        return np.asarray(apply(policy, with_entity, limit, "approve") == top_role)

    val_mask, test_mask = listed(validation, entity_validation), listed(test, entity_test)
    acted = _roles(test_mask, top_role)
    per_week = {int(p): int(c) for p, c in zip(*np.unique(test.periods[test_mask],
                                                          return_counts=True), strict=True)}
    rng = np.random.default_rng(seed)
    masks: dict[str, Bool] = {
        "no_outreach": np.zeros(len(test), bool),
        "random_list": select_weekly(rng.random(len(test)), test.periods, entity_test,
                                     per_week, cooldown_periods=cooldown_periods)}
    if rule is not None:
        masks["rules"] = select_weekly(rng.random(len(test)), test.periods, entity_test, limit,
                                       cooldown_periods=cooldown_periods,
                                       eligible=np.asarray(rule, dtype=bool))
    others = {name: _roles(mask, top_role) for name, mask in masks.items()}
    policy_cost = realised_cost(test, acted)
    summaries = {role: renamed(summarise(rows, _roles(mask, top_role), top_role, limit),
                               names, top_role)
                 for role, rows, mask in (("validation", validation, val_mask),
                                          ("test", test, test_mask))}
    test_summary = summaries["test"].model_copy(update={"savings": {
        name: outreach_savings(test, entity_test, realised_cost(test, acts), policy_cost,
                               seed, per_days)
        for name, acts in others.items()}})
    return OutreachPriced(
        policy=policy, optimum=optimum, validation=summaries["validation"], test=test_summary,
        baselines={name: renamed(summarise(test, acts, top_role, limit), names, top_role)
                   for name, acts in others.items()},
        actions=acted, baseline_actions=others, names=names,
        cooldown_periods=cooldown_periods)


def outreach_block(priced: OutreachPriced, cooldown: str, key: str) -> dict[str, Any]:
    """What ``decide.json`` records about the outreach pricing."""
    return {"action": priced.names[0], "other": priced.names[1], "cooldown": cooldown,
            "cooldown_periods": priced.cooldown_periods, "entity": key,
            "interval_blocks": "customers (weeks beside)",
            "baselines": list(priced.baselines)}
