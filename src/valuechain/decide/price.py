"""Price a policy from plain arrays: scores, labels, costs, periods and a capacity.

:func:`price_policy` is the decide stage without a spec or a workspace: give the calibrated
scores, the labels and the per-row costs of the rows to price (and, better, of an earlier
validation period to choose the policy on), the capacity period of each row and the
capacity; get the cost-optimal policy, what it does on the priced rows, the money it saves
against each baseline with a 95 % day-block interval, and the capacity check per period.
``valuechain decide`` calls it with a training run's stored predictions.

Baselines, always: ``approve_all``; ``threshold_0.5`` (decline at a calibrated score of 0.5);
``accuracy_optimal`` (decline above the threshold that maximises accuracy on the validation
rows). Yours, in ``baselines``: a boolean mask per row is a rule that sends the flagged rows
to the capacity-limited action, first come first served in each period (rows in decision
time order), the rest overflowing as the policy does; an array of action names is used as
given.

>>> import numpy as np
>>> from valuechain.policy import CostModel
>>> rng = np.random.default_rng(0)
>>> def period(n, seed):
...     r = np.random.default_rng(seed)
...     p = r.beta(0.5, 12, n)
...     y = (r.random(n) < p).astype(float)
...     amount = r.gamma(2.0, 60.0, n)
...     costs = CostModel(false_negative=amount, false_positive=0.1 * amount + 5, review=3.0)
...     return p, y, costs, np.repeat(np.arange(n // 400), 400)
>>> p_val, y_val, c_val, d_val = period(8000, 1)
>>> p, y, costs, day = period(8000, 2)
>>> priced = price_policy(p, y, costs, day, capacity=40,
...                       validation=Decisions(p_val, y_val, c_val, d_val),
...                       baselines={"amount_rule": costs.false_negative > 300})
>>> priced.policy.kind, priced.test.capacity.periods_over_limit
('three_band', 0)
>>> sorted(priced.test.savings)
['accuracy_optimal', 'amount_rule', 'approve_all', 'threshold_0.5']
>>> s = priced.test.savings["approve_all"]
>>> bool(s.low <= s.value <= s.high and s.value > 0)
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

from valuechain.decide.result import (
    ActionCounts,
    CapacitySummary,
    PeriodSummary,
    Savings,
)
from valuechain.errors import DataError
from valuechain.evaluate.bootstrap import block_sum_interval
from valuechain.policy import (
    CostModel,
    Optimum,
    Policy,
    TopN,
    apply_with_capacity,
    optimize_three_band,
    optimize_threshold,
    optimize_top_n,
)

__all__ = ["Decisions", "PricedPolicy", "price_policy"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
Actions = npt.NDArray[np.object_]
Kind = Literal["three_band", "threshold", "top_n"]
Objective = Literal["expected", "realised"]


def _vector(name: str, values: npt.ArrayLike, dtype: Any) -> npt.NDArray[Any]:
    try:
        arr = np.asarray(values, dtype=dtype)
    except (TypeError, ValueError) as err:
        raise DataError(f"`{name}`: expected one value per row, got {values!r:.80}") from err
    if arr.ndim != 1:
        raise DataError(f"`{name}`: expected one value per row, got shape {arr.shape}")
    return arr


@dataclass(frozen=True, eq=False)
class Decisions:
    """One period's decisions, in decision time order.

    Parameters
    ----------
    scores : array-like
        Calibrated probability of the positive outcome, in [0, 1].
    labels : array-like
        The outcome, 0 or 1.
    costs : CostModel
        Per-row costs of each action.
    periods : array-like
        Capacity period of each row (e.g. the day number): the capacity holds per period.
    days : array-like, optional
        Block of each row for the bootstrap intervals (e.g. the decision day); default the
        periods.
    entity : array-like, optional
        The customer of each row, for a weekly list with a cooldown (a top-N policy whose
        ``metadata`` holds ``cooldown_periods``, see :mod:`valuechain.decide.outreach`).

    Examples
    --------
    >>> d = Decisions([0.1, 0.9], [0, 1], CostModel(false_negative=10.0, false_positive=1.0),
    ...               [0, 0])
    >>> len(d), d.blocks.tolist()
    (2, [0, 0])
    """

    scores: F64
    labels: F64
    costs: CostModel
    periods: I64
    days: I64 | None = None
    entity: npt.NDArray[Any] | None = None

    def __post_init__(self) -> None:
        s = _vector("scores", self.scores, np.float64)
        y = _vector("labels", self.labels, np.float64)
        n = len(s)
        if len(y) != n:
            raise DataError(f"`labels` has {len(y)} rows, `scores` {n}; give one value per "
                            "decision, in the same order.")
        if n and (not np.all(np.isfinite(s)) or s.min() < 0 or s.max() > 1):
            raise DataError("`scores` must be calibrated probabilities in [0, 1], finite on "
                            "every row; calibrate the model's scores before pricing.")
        if np.any((y != 0) & (y != 1)):
            raise DataError("`labels` must be 0 or 1 on every row; drop immature or unknown "
                            "outcomes before pricing.")
        if self.costs.n_rows is not None and self.costs.n_rows != n:
            raise DataError(f"`costs` has {self.costs.n_rows} rows, `scores` {n}; compute the "
                            "costs over the same decisions.")
        object.__setattr__(self, "scores", s)
        object.__setattr__(self, "labels", y)
        object.__setattr__(self, "periods", _codes("periods", self.periods, n))
        if self.days is not None:
            object.__setattr__(self, "days", _codes("days", self.days, n))
        if self.entity is not None:
            entity = np.asarray(self.entity)
            if entity.shape != (n,):
                raise DataError(f"`entity` has shape {entity.shape}, `scores` {n} rows; give "
                                "one customer per decision, in the same order.")
            object.__setattr__(self, "entity", entity)

    def __len__(self) -> int:
        return len(self.scores)

    @property
    def blocks(self) -> I64:
        """Bootstrap blocks: ``days`` when given, else ``periods``."""
        return self.days if self.days is not None else self.periods

    def scaled(self, cost: str, factor: float) -> Decisions:
        """The same decisions with the cost ``cost`` (a CostModel field) times ``factor``."""
        value = np.asarray(getattr(self.costs, cost)) * factor
        return replace(self, costs=replace(self.costs, **{cost: value}))


def _codes(name: str, values: npt.ArrayLike, n: int) -> I64:
    """Integer period (or block) ids; other keys (dates, text) numbered in order of appearance."""
    arr = np.asarray(values)
    if arr.ndim != 1 or len(arr) != n:
        raise DataError(f"`{name}` has shape {arr.shape}, `scores` {n} rows; give one value "
                        "per decision, in the same order.")
    if arr.dtype.kind in "iu":
        return arr.astype(np.int64)
    codes = pd.factorize(arr)[0]
    if (codes < 0).any():
        raise DataError(f"`{name}`: {int((codes < 0).sum())} rows have no value.")
    return codes.astype(np.int64)


@dataclass(frozen=True, eq=False)
class PricedPolicy:
    """A policy chosen on validation and priced on the decisions given.

    Attributes
    ----------
    policy : Policy
        The chosen policy (``policy.save(path)`` writes ``policy.yaml``).
    optimum : Optimum
        What the optimiser found on the rows it chose on (frontier, counts).
    validation : PeriodSummary
        The policy on the rows it was chosen on.
    test : PeriodSummary
        The policy on the priced rows; ``test.savings`` against every baseline.
    baselines : dict of str to PeriodSummary
        Every baseline on the priced rows.
    actions : ndarray
        The policy's action for each priced row (after the capacity overflow).
    baseline_actions : dict of str to ndarray
        Each baseline's action per priced row.
    in_sample : bool
        True when no ``validation`` was given: the policy was chosen on the rows it is
        priced on, so its savings are optimistic.
    """

    policy: Policy
    optimum: Optimum
    validation: PeriodSummary
    test: PeriodSummary
    baselines: dict[str, PeriodSummary]
    actions: Actions
    baseline_actions: dict[str, Actions]
    in_sample: bool


def realised_cost(rows: Decisions, actions: Actions) -> F64:
    """The cost of each row's action under its label (approve, review or decline roles)."""
    by_action = rows.costs.action_costs(rows.labels)
    out = np.zeros(len(actions))
    for name, cost in by_action.items():
        mask = actions == name
        out[mask] = np.asarray(cost, dtype=np.float64)[mask]
    return out


def summarise(rows: Decisions, actions: Actions, action: str, limit: int | None
              ) -> PeriodSummary:
    """Cost, actions per period and the capacity check of ``actions`` on ``rows``."""
    cost = realised_cost(rows, actions)
    periods, index = np.unique(rows.periods, return_inverse=True)
    per_action = {}
    for name in ("approve", "review", "decline"):
        counts = np.bincount(index, weights=(actions == name), minlength=len(periods))
        per_action[name] = ActionCounts(
            max=float(counts.max(initial=0)),
            mean=float(counts.mean()) if len(counts) else 0.0, total=int(counts.sum()))
    used = np.bincount(index, weights=(actions == action), minlength=len(periods))
    has = len(used) > 0
    return PeriodSummary(
        expected_cost=float(cost.sum()),
        cost_per_1000=float(1000 * cost.mean()) if len(cost) else 0.0,
        decisions=len(cost),
        actions_per_period=per_action,
        capacity=CapacitySummary(
            limit=limit, max_used=float(used.max(initial=0)),
            mean_used=float(used.mean()) if has else 0.0,
            p50_used=float(np.quantile(used, 0.5)) if has else 0.0,
            p90_used=float(np.quantile(used, 0.9)) if has else 0.0,
            periods_over_limit=int((used > limit).sum()) if limit is not None else 0,
            periods=len(used), used_per_period=used.astype(int).tolist()),
        caught_positives=float(((actions != "approve") * rows.labels).sum()),
        positives=float(rows.labels.sum()),
    )


def savings(rows: Decisions, baseline: F64, policy: F64, seed: int) -> Savings:
    """Money saved (baseline cost - policy cost) with a 95 % day-block interval."""
    interval = block_sum_interval(baseline - policy, rows.blocks, seed=seed)
    days = len(np.unique(rows.blocks))
    return Savings(value=interval.value, low=interval.low, high=interval.high,
                   per_day=interval.value / max(days, 1))


def optimise(kind: Kind, rows: Decisions, limit: int | None, overflow: str,
             percentile: float, per: str, objective: Objective) -> Optimum:
    """Minimise cost on ``rows``: expected under the calibrated scores (smooth, relies on
    calibration) or realised under the labels (no model assumption, can overfit few days)."""
    target = rows.scores if objective == "expected" else rows.labels
    if kind == "three_band":
        return optimize_three_band(rows.scores, rows.costs, target, rows.periods, limit,
                                   overflow=overflow, percentile=percentile)
    if kind == "threshold":
        return optimize_threshold(rows.scores, rows.costs, target, rows.periods)
    if kind == "top_n":
        return optimize_top_n(rows.scores, rows.costs, target, rows.periods, limit, per=per)
    raise DataError(f"`kind` {kind!r}: expected three_band, threshold or top_n.")


def apply(policy: Policy, rows: Decisions, limit: int | None, overflow: str) -> Actions:
    """The policy's actions on ``rows`` after the capacity overflow rule.

    A weekly list (a top-N policy with ``metadata['cooldown_periods']``, rows with an
    ``entity``) is applied week by week with its cooldown; its actions are given by cost
    role (``review`` for the listed, ``approve`` for the others) so they price directly.
    """
    cooldown = policy.metadata.get("cooldown_periods") if isinstance(policy, TopN) else None
    if isinstance(policy, TopN) and cooldown is not None and rows.entity is not None:
        from valuechain.decide.outreach import select_weekly

        floor = rows.scores >= policy.min_score if policy.min_score is not None else None
        size = policy.n if limit is None else min(policy.n, limit)
        listed = select_weekly(rows.scores, rows.periods, rows.entity, size,
                               cooldown_periods=int(cooldown), eligible=floor)
        out = np.full(len(rows), "approve", dtype=object)
        out[listed] = policy.roles[policy.action]
        return out
    return np.asarray(apply_with_capacity(policy, rows.scores, rows.periods, limit, overflow),
                      dtype=object)


def _rule_actions(flagged: npt.NDArray[np.bool_], rows: Decisions, action: str,
                  limit: int | None, overflow: str) -> Actions:
    """A rule's flagged rows take ``action``, first come first served per period."""
    n = len(rows)
    actions = np.full(n, "approve", dtype=object)
    if limit is None:
        actions[flagged] = action
        return actions
    order = np.argsort(rows.periods, kind="stable")
    rank = np.zeros(n, dtype=np.int64)
    rank[order] = pd.Series(flagged[order].astype(np.int64)).groupby(
        rows.periods[order]).cumsum().to_numpy()
    actions[flagged & (rank <= limit)] = action
    actions[flagged & (rank > limit)] = overflow
    return actions


def _accuracy_threshold(validation: Decisions) -> float:
    """The score threshold (decline at or above) with the best accuracy on validation."""
    cuts = np.unique(validation.scores)
    best_t, best_acc = 0.5, -1.0
    order = np.argsort(validation.scores)
    s, y = validation.scores[order], validation.labels[order]
    neg_below = np.cumsum(1 - y)  # negatives with score <= s[k]
    pos_total = y.sum()
    pos_below = np.cumsum(y)
    for k in np.searchsorted(s, cuts, side="right") - 1:
        acc = (neg_below[k] + (pos_total - pos_below[k])) / len(s)
        if acc > best_acc:
            best_acc, best_t = float(acc), float(s[k]) + 1e-12
    return best_t


def baseline_actions(rows: Decisions, validation: Decisions, action: str, limit: int | None,
                     overflow: str, extra: Mapping[str, npt.ArrayLike] | None = None
                     ) -> dict[str, Actions]:
    """Every baseline's actions on ``rows``: approve all, yours, threshold 0.5, accuracy."""
    n = len(rows)
    out: dict[str, Actions] = {"approve_all": np.full(n, "approve", dtype=object)}
    for name, given in (extra or {}).items():
        arr = np.asarray(given)
        if arr.shape != (n,):
            raise DataError(f"`baselines[{name!r}]` has shape {arr.shape}; give one flag or "
                            f"action per priced row ({n}).")
        if name in ("approve_all", "threshold_0.5", "accuracy_optimal"):
            raise DataError(f"`baselines`: {name!r} is a built-in baseline; name yours "
                            "differently.")
        if arr.dtype == bool:
            out[name] = _rule_actions(arr, rows, action, limit, overflow)
        else:
            acts = arr.astype(object)
            unknown = sorted(set(map(str, np.unique(acts.astype(str)))) - {
                "approve", "review", "decline"})
            if unknown:
                raise DataError(f"`baselines[{name!r}]`: actions {unknown} are not approve, "
                                "review or decline; give a boolean mask (a rule) or those "
                                "actions.")
            out[name] = acts
    out["threshold_0.5"] = np.where(rows.scores >= 0.5, "decline", "approve").astype(object)
    best_t = _accuracy_threshold(validation)
    out["accuracy_optimal"] = np.where(rows.scores >= best_t, "decline",
                                       "approve").astype(object)
    return out


def price_policy(
    scores: npt.ArrayLike,
    labels: npt.ArrayLike,
    costs: CostModel,
    periods: npt.ArrayLike,
    capacity: int | None,
    *,
    validation: Decisions | None = None,
    days: npt.ArrayLike | None = None,
    baselines: Mapping[str, npt.ArrayLike] | None = None,
    kind: Kind = "three_band",
    objective: Objective = "expected",
    action: str = "review",
    overflow: Literal["approve", "decline"] = "approve",
    percentile: float = 1.0,
    per: str = "period",
    seed: int = 0,
) -> PricedPolicy:
    """Choose the cost-optimal policy under a capacity and price it against baselines.

    Parameters
    ----------
    scores : array-like
        Calibrated probabilities of the rows to price (e.g. the test period), in decision
        time order.
    labels : array-like
        Their outcomes, 0 or 1.
    costs : CostModel
        Their per-row costs (``false_negative``, ``false_positive``, ``review``, what a
        review catches).
    periods : array-like
        Capacity period of each row (e.g. the day number).
    capacity : int or None
        Most rows per period the limited ``action`` may take (``None``: no limit).
    validation : Decisions, optional
        The rows to choose the policy on (an earlier period). Without it the policy is
        chosen on the priced rows themselves and ``in_sample`` is True (optimistic).
    days : array-like, optional
        Bootstrap block of each priced row (e.g. the decision day); default ``periods``.
    baselines : mapping of str to array-like, optional
        Your baselines by name: a boolean mask (a rule: flagged rows take ``action``, first
        come first served per period) or one action name per row.
    kind : {"three_band", "threshold", "top_n"}
        Approve / review / decline bands, one decline threshold, or the top N per period.
    objective : {"expected", "realised"}
        Minimise the expected cost under the calibrated scores, or the realised cost under
        the validation labels.
    action : str, default "review"
        The capacity-limited action whose load per period is checked.
    overflow : {"approve", "decline"}
        Where rows beyond the capacity go.
    percentile : float, default 1.0
        Share of validation periods that must fit the capacity (three bands).
    per : str
        The capacity period as text, recorded in a top-N policy (e.g. ``"1d"``).
    seed : int, default 0
        Seed of the bootstrap draws.

    Returns
    -------
    PricedPolicy
        The policy, its summaries (capacity check per period included) and the savings
        against every baseline with 95 % day-block intervals.

    Raises
    ------
    DataError
        When the arrays disagree in length, scores are not probabilities, labels not 0/1,
        or a baseline is malformed.
    """
    test = Decisions(scores, labels, costs, periods, days)  # type: ignore[arg-type]
    chosen_on = validation if validation is not None else test
    optimum = optimise(kind, chosen_on, capacity, overflow, percentile, per, objective)
    policy = optimum.policy
    acted = apply(policy, test, capacity, overflow)
    summaries = {}
    for role, rows, acts in (("validation", chosen_on, apply(policy, chosen_on, capacity,
                                                              overflow)),
                             ("test", test, acted)):
        summary = summarise(rows, acts, action, capacity)
        # What the bands ask for before the overflow rule (the summary counts after it).
        asked = np.asarray(policy.apply(rows.scores, rows.periods), dtype=object) == action
        _, index = np.unique(rows.periods, return_inverse=True)
        requested = np.bincount(index, weights=asked)
        summaries[role] = summary.model_copy(update={"capacity": summary.capacity.model_copy(
            update={"requested_max": float(requested.max(initial=0)),
                    "requested_over_limit": int((requested > capacity).sum())
                    if capacity is not None else 0})})
    others = baseline_actions(test, chosen_on, action, capacity, overflow, baselines)
    policy_cost = realised_cost(test, acted)
    test_summary = summaries["test"].model_copy(update={"savings": {
        name: savings(test, realised_cost(test, acts), policy_cost, seed)
        for name, acts in others.items()}})
    return PricedPolicy(
        policy=policy, optimum=optimum, validation=summaries["validation"], test=test_summary,
        baselines={name: summarise(test, acts, action, capacity)
                   for name, acts in others.items()},
        actions=acted, baseline_actions=others, in_sample=validation is None)
