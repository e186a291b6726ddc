"""Exact cost-optimal policies under a capacity per period.

:func:`optimize_three_band` picks ``(review_at, decline_at)`` minimising the total cost over
the given rows subject to the review count of every period staying within ``capacity`` (or
of at least ``percentile`` of the periods). It is exact over every pair of cut points
between distinct score values, in O(n log n):

1. sort the scores (stable); the candidate cuts are the positions where the sorted score
   changes, plus both ends; rows left of cut ``i`` are approved, rows in ``[i, j)`` reviewed,
   rows from ``j`` declined;
2. with prefix sums ``A``, ``R``, ``D`` of the approve, review and decline costs,
   ``total(i, j) = A[i] + R[j] - R[i] + D[n] - D[j] = g(i) + h(j)``;
3. a window ``[i, j)`` that fits capacity still fits when it shrinks, so for each ``j`` the
   feasible ``i`` form a range ``[lo(j), j]`` with ``lo`` non-decreasing. ``lo`` comes from a
   two-pointer scan that keeps per-period review counts in the window and the number of
   periods over capacity (vectorised when every period must fit: a window breaks capacity
   exactly when it holds a row and the ``capacity``-th earlier row of the same period);
4. the best ``i`` for each ``j`` is a sliding-window minimum of ``g`` over ``[lo(j), j]``
   (a sparse table: O(n log n), vectorised), and the best ``j`` minimises
   ``min g + h(j)``.

The thresholds of a chosen cut lie half-way between the two distinct scores it separates
(``-inf`` / ``inf`` at the ends), so the policy applied to the same rows reproduces the
optimised partition. With capacity 0 no review band fits and the optimum is the best
two-band policy (``review_at == decline_at``). Among equal costs the smaller review band
wins.

:func:`optimize_threshold` is the two-action case (a capacity, if given, limits the
``at_or_above`` action); :func:`optimize_top_n` chooses ``n <= capacity`` and
``min_score`` for a :class:`TopN` policy, exactly, in O(n_max * G) for G distinct scores.

>>> import numpy as np
>>> scores = np.array([0.1, 0.2, 0.6, 0.7, 0.9, 0.95])
>>> labels = np.array([0, 0, 1, 0, 1, 1])
>>> costs = CostModel(false_negative=100.0, false_positive=10.0, review=2.0)
>>> best = optimize_three_band(scores, costs, labels, periods=np.zeros(6), capacity=2)
>>> best.policy.review_at, best.policy.decline_at, best.total_cost
(0.4, 0.8, 4.0)
>>> best.counts
{'approve': 2, 'review': 2, 'decline': 2}
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from valuechain.errors import DataError, SpecError
from valuechain.policy.capacity import (
    apply_with_capacity,
    check_capacity,
    limited_action,
    per_period_counts,
)
from valuechain.policy.costs import CostModel
from valuechain.policy.policies import (
    Policy,
    ThreeBand,
    Threshold,
    TopN,
    check_scores,
    period_codes,
    rank_within_period,
)

__all__ = ["Optimum", "optimize_three_band", "optimize_threshold", "optimize_top_n"]

F64 = npt.NDArray[np.float64]
I64 = npt.NDArray[np.int64]
_INF = math.inf


@dataclass(frozen=True, eq=False)
class Optimum:
    """The chosen policy and what it does on the rows it was fitted on.

    Attributes
    ----------
    policy
        The chosen policy; its ``metadata`` records the capacity it was fitted for.
    total_cost
        Total cost over the rows (expected cost with probabilities), with the policy applied
        as is (no overflow spill).
    cost_after_overflow
        Total cost once :func:`~valuechain.policy.capacity.apply_with_capacity` spills the
        periods over capacity; equal to ``total_cost`` when no period is over.
    counts
        Rows per action name (as applied, no spill).
    capacity, capacity_action
        The limit per period and the action it limits (``review`` for three bands).
    reviews_max, reviews_mean
        Most and mean rows with ``capacity_action`` per period.
    periods, periods_over_capacity
        Periods among the rows, and how many exceed ``capacity``.
    frontier
        The cost-capacity trade-off for plots: for a thinned set of limits, the best total
        cost and the resulting max / mean load per period (``capacity``, ``cost``,
        ``reviews_max``, ``reviews_mean``).
    """

    policy: Policy
    total_cost: float
    cost_after_overflow: float
    counts: dict[str, int]
    capacity: int | None
    capacity_action: str
    reviews_max: int
    reviews_mean: float
    periods: int
    periods_over_capacity: int
    rows: int
    frontier: tuple[dict[str, float], ...]

    @property
    def cost_per_1000(self) -> float:
        """Total cost per 1,000 decisions."""
        return 1000.0 * self.total_cost / self.rows if self.rows else math.nan


# ---------------------------------------------------------------- inputs


@dataclass(frozen=True, eq=False)
class _Inputs:
    scores: F64
    y: F64
    codes: I64
    n_periods: int
    by_role: dict[str, F64]


def _inputs(what: str, scores: npt.ArrayLike, costs: CostModel, labels_or_probs: npt.ArrayLike,
            periods: npt.ArrayLike | None, capacity: int | None, overflow: str) -> _Inputs:
    check_capacity(capacity, overflow)
    s = check_scores(scores)
    if len(s) == 0:
        raise DataError(f"{what} needs scored rows: at least one score with its label (or "
                        "calibrated probability), period and costs; got 0 rows. Check that "
                        "the validation period has mature rows.")
    if not isinstance(costs, CostModel):
        raise SpecError(f"{what}: `costs` must be a CostModel, got {type(costs).__name__}")
    y = np.asarray(labels_or_probs, dtype=np.float64)
    if y.shape != s.shape:
        raise DataError(f"{what}: {len(s)} scores but labels or probabilities of shape "
                        f"{y.shape}; give one per row.")
    codes, n_periods = period_codes(np.zeros(len(s)) if periods is None else periods, len(s))
    return _Inputs(s, y, codes, n_periods, costs.action_costs(y))


def _allowed(percentile: float, n_periods: int) -> int:
    """Periods allowed over capacity when ``percentile`` of them must fit."""
    if isinstance(percentile, bool) or not (0.0 < float(percentile) <= 1.0):
        raise SpecError(f"capacity `percentile` must lie in (0, 1] (share of periods that fit "
                        f"the limit), got {percentile!r}.")
    return n_periods - math.ceil(float(percentile) * n_periods - 1e-9)


class _Sorted:
    """Rows sorted by score with candidate cuts, prefix sums and period bookkeeping."""

    def __init__(self, inp: _Inputs) -> None:
        n = len(inp.scores)
        self.n = n
        self.order = np.argsort(inp.scores, kind="stable")
        self.s = inp.scores[self.order]
        change = np.flatnonzero(self.s[1:] != self.s[:-1]) + 1
        self.cuts = np.concatenate(([0], change, [n])).astype(np.int64)
        self.codes = inp.codes[self.order]
        self.n_periods = inp.n_periods
        self.prefix = {role: np.concatenate(([0.0], np.cumsum(c[self.order])))[self.cuts]
                       for role, c in inp.by_role.items()}
        # Rows grouped by period (in score order) and each row's rank within its period.
        self._by_period = np.argsort(self.codes, kind="stable")
        grouped = self.codes[self._by_period]
        first = np.ones(n, dtype=bool)
        first[1:] = grouped[1:] != grouped[:-1]
        pos = np.arange(n, dtype=np.int64)
        self._rank = pos - np.maximum.accumulate(np.where(first, pos, 0))

    def threshold(self, cut: int) -> float:
        """A score between the two distinct scores that cut index ``cut`` separates."""
        k = int(self.cuts[cut])
        if k == 0:
            return -_INF
        if k == self.n:
            return _INF
        a, b = float(self.s[k - 1]), float(self.s[k])
        mid = a / 2.0 + b / 2.0
        return mid if a < mid <= b else b

    def min_start(self, capacity: int | None, allowed: int) -> I64:
        """For each cut ``j``, the smallest cut ``i`` whose window ``[i, j)`` fits capacity."""
        m = len(self.cuts)
        if capacity is None or allowed >= self.n_periods:
            return np.zeros(m, dtype=np.int64)
        if allowed == 0:
            lo_rows = self._start_every_period(capacity)
        else:
            lo_rows = self._start_two_pointer(capacity, allowed)
        return np.searchsorted(self.cuts, lo_rows, side="left").astype(np.int64)

    def _start_every_period(self, capacity: int) -> I64:
        # Row k and the capacity-th earlier row of its period (prev[k]) are capacity + 1 rows:
        # a window [i, j) with i <= prev[k] and k < j is over capacity.
        n = self.n
        prev = np.full(n, -1, dtype=np.int64)
        ok = self._rank >= capacity
        idx = np.flatnonzero(ok)
        prev[self._by_period[idx]] = self._by_period[idx - capacity]
        reach = np.maximum.accumulate(prev) if n else prev
        j = self.cuts
        return np.where(j > 0, reach[np.maximum(j - 1, 0)] + 1, 0).astype(np.int64)

    def _start_two_pointer(self, capacity: int, allowed: int) -> I64:
        codes = self.codes.tolist()
        counts = [0] * self.n_periods
        over, lo, row = 0, 0, 0
        limit = capacity + 1
        out = np.zeros(len(self.cuts), dtype=np.int64)
        for c, end in enumerate(self.cuts.tolist()):
            while row < end:
                p = codes[row]
                counts[p] += 1
                if counts[p] == limit:
                    over += 1
                row += 1
            while over > allowed:
                p = codes[lo]
                if counts[p] == limit:
                    over -= 1
                counts[p] -= 1
                lo += 1
            out[c] = lo
        return out

    def load(self, lo_row: int, hi_row: int) -> I64:
        """Rows per period in the sorted window ``[lo_row, hi_row)``."""
        return np.bincount(self.codes[lo_row:hi_row], minlength=self.n_periods).astype(np.int64)


def _window_min(g: F64, lo: I64) -> F64:
    """``min(g[lo[j] : j + 1])`` for every ``j`` (a sparse table, O(m log m))."""
    m = len(g)
    j = np.arange(m, dtype=np.int64)
    length = j - lo + 1
    level_of = np.floor(np.log2(length)).astype(np.int64)
    out = np.empty(m)
    level, step, k = g, 1, 0
    while True:
        mask = level_of == k
        if mask.any():
            out[mask] = np.minimum(level[lo[mask]], level[j[mask] - step + 1])
        if 2 * step > m:
            return out
        level = np.minimum(level[: len(level) - step], level[step:])
        step, k = 2 * step, k + 1


def _last_argmin(values: F64) -> int:
    return len(values) - 1 - int(np.argmin(values[::-1]))


def _best_band(srt: _Sorted, lo: I64) -> tuple[int, int, float]:
    a, r, d = srt.prefix["approve"], srt.prefix["review"], srt.prefix["decline"]
    g = a - r
    h = r + d[-1] - d
    total = _window_min(g, lo) + h
    j = int(np.argmin(total))
    i = int(lo[j]) + _last_argmin(g[lo[j]: j + 1])
    return i, j, float(total[j])


def _best_threshold(srt: _Sorted, lo_last: int, high: str) -> tuple[int, float]:
    a, hi = srt.prefix["approve"], srt.prefix[high]
    total = a + hi[-1] - hi
    i = lo_last + _last_argmin(total[lo_last:])
    return i, float(total[i])


def _levels(capacity: int | None, needed: int, points: int) -> list[int]:
    if points <= 0:
        return []
    grid = np.round(np.linspace(0, needed, max(points, 2))).astype(int).tolist()
    if capacity is not None and capacity <= needed:
        grid.append(capacity)
    return sorted(set(grid))


def _point(level: int, cost: float, load: I64) -> dict[str, float]:
    return {"capacity": float(level), "cost": cost,
            "reviews_max": float(load.max(initial=0)),
            "reviews_mean": float(load.mean()) if len(load) else 0.0}


def _optimum(policy: Policy, inp: _Inputs, costs: CostModel, capacity: int | None,
             overflow: str, frontier: list[dict[str, float]]) -> Optimum:
    actions = policy.apply(inp.scores, inp.codes)
    per_row = costs.cost_of(actions, inp.y, policy.roles)
    limited, _, _ = limited_action(policy)
    load = per_period_counts(actions == limited, inp.codes, inp.n_periods)
    over = int((load > capacity).sum()) if capacity is not None else 0
    after = float(per_row.sum())
    if over:
        spilled = apply_with_capacity(policy, inp.scores, inp.codes, capacity, overflow)
        after = float(costs.cost_of(spilled, inp.y, policy.roles).sum())
    names = policy.actions
    return Optimum(
        policy=policy, total_cost=float(per_row.sum()), cost_after_overflow=after,
        counts={name: int(np.count_nonzero(actions == name)) for name in names},
        capacity=capacity, capacity_action=limited, reviews_max=int(load.max(initial=0)),
        reviews_mean=float(load.mean()), periods=inp.n_periods, periods_over_capacity=over,
        rows=len(inp.scores), frontier=tuple(frontier),
    )


def _metadata(capacity: int | None, overflow: str, percentile: float, rows: int,
              extra: dict[str, Any] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"capacity": capacity, "overflow": overflow,
                           "percentile": float(percentile), "fitted_rows": rows}
    out.update(extra or {})
    return out


# ---------------------------------------------------------------- three bands


def optimize_three_band(
    scores: npt.ArrayLike,
    costs: CostModel,
    labels_or_probs: npt.ArrayLike,
    periods: npt.ArrayLike,
    capacity: int | None,
    *,
    overflow: str = "approve",
    percentile: float = 1.0,
    actions: tuple[str, str, str] = ("approve", "review", "decline"),
    frontier_points: int = 11,
) -> Optimum:
    """The cost-optimal approve / review / decline bands under a review capacity.

    Parameters
    ----------
    scores
        One calibrated score per row.
    costs
        The cost model of the same rows.
    labels_or_probs
        0/1 labels (realised cost) or calibrated probabilities (expected cost).
    periods
        One period id per row (e.g. the day number); capacity holds within each period.
    capacity
        Most reviews per period, or ``None`` for no limit; ``0`` allows no review band.
    overflow
        Where reviews beyond capacity go at apply time (``approve`` or ``decline``); it
        prices ``cost_after_overflow`` when ``percentile < 1`` lets some periods exceed.
    percentile
        Share of periods that must fit the capacity (1.0: every period).
    actions
        Names of the low, middle and high band.
    frontier_points
        Number of capacity levels on the cost-capacity frontier (0: none).

    Returns
    -------
    Optimum
        The :class:`ThreeBand` policy and its cost, counts and load per period.

    Examples
    --------
    >>> import numpy as np
    >>> costs = CostModel(false_negative=100.0, false_positive=10.0, review=2.0)
    >>> scores, labels = np.array([0.1, 0.6, 0.7, 0.9]), np.array([0, 1, 0, 1])
    >>> best = optimize_three_band(scores, costs, labels, np.zeros(4), capacity=0)
    >>> best.policy.review_at == best.policy.decline_at, best.total_cost, best.counts
    (True, 10.0, {'approve': 1, 'review': 0, 'decline': 3})
    """
    inp = _inputs("optimize_three_band", scores, costs, labels_or_probs, periods, capacity,
                  overflow)
    allowed = _allowed(percentile, inp.n_periods)
    srt = _Sorted(inp)
    i, j, _ = _best_band(srt, srt.min_start(capacity, allowed))
    frontier: list[dict[str, float]] = []
    if frontier_points > 0:
        free_i, free_j, _ = _best_band(srt, srt.min_start(None, allowed))
        needed = int(srt.load(int(srt.cuts[free_i]), int(srt.cuts[free_j])).max(initial=0))
        for level in _levels(capacity, needed, frontier_points):
            li, lj, cost = _best_band(srt, srt.min_start(level, allowed))
            frontier.append(_point(level, cost, srt.load(int(srt.cuts[li]),
                                                         int(srt.cuts[lj]))))
    policy = ThreeBand(review_at=srt.threshold(i), decline_at=srt.threshold(j),
                       actions=actions,
                       metadata=_metadata(capacity, overflow, percentile, srt.n))
    return _optimum(policy, inp, costs, capacity, overflow, frontier)


# ---------------------------------------------------------------- one threshold


def optimize_threshold(
    scores: npt.ArrayLike,
    costs: CostModel,
    labels_or_probs: npt.ArrayLike,
    periods: npt.ArrayLike | None = None,
    capacity: int | None = None,
    *,
    high: str = "decline",
    percentile: float = 1.0,
    frontier_points: int = 11,
) -> Optimum:
    """The cost-optimal single threshold: approve below, ``high`` at or above.

    Parameters
    ----------
    scores, costs, labels_or_probs
        As for :func:`optimize_three_band`.
    periods
        One period id per row; needed only for a capacity (default: one period).
    capacity
        Most rows with the ``high`` action per period; ``None`` (default) for no limit.
    high
        ``"decline"`` (default) or ``"review"``: the action at or above the threshold and
        the cost role that prices it.
    percentile
        Share of periods that must fit the capacity.
    frontier_points
        Number of capacity levels on the cost-capacity frontier (0: none).

    Examples
    --------
    >>> import numpy as np
    >>> costs = CostModel(false_negative=[100.0, 100.0, 40.0, 100.0], false_positive=30.0)
    >>> best = optimize_threshold([0.9, 0.6, 0.1, 0.2], costs, [1, 0, 1, 0])
    >>> best.policy.threshold, best.total_cost
    (0.75, 40.0)
    """
    if high not in ("decline", "review"):
        raise SpecError(f"optimize_threshold `high` must be 'decline' or 'review', got "
                        f"{high!r}.")
    inp = _inputs("optimize_threshold", scores, costs, labels_or_probs, periods, capacity,
                  "approve")
    allowed = _allowed(percentile, inp.n_periods)
    srt = _Sorted(inp)
    i, _ = _best_threshold(srt, int(srt.min_start(capacity, allowed)[-1]), high)
    frontier: list[dict[str, float]] = []
    if frontier_points > 0:
        free_i, _ = _best_threshold(srt, 0, high)
        needed = int(srt.load(int(srt.cuts[free_i]), srt.n).max(initial=0))
        for level in _levels(capacity, needed, frontier_points):
            li, cost = _best_threshold(srt, int(srt.min_start(level, allowed)[-1]), high)
            frontier.append(_point(level, cost, srt.load(int(srt.cuts[li]), srt.n)))
    policy = Threshold(threshold=srt.threshold(i), below="approve", at_or_above=high,
                       metadata=_metadata(capacity, "approve", percentile, srt.n))
    return _optimum(policy, inp, costs, capacity, "approve", frontier)


# ---------------------------------------------------------------- top N per period


def optimize_top_n(
    scores: npt.ArrayLike,
    costs: CostModel,
    labels_or_probs: npt.ArrayLike,
    periods: npt.ArrayLike,
    capacity: int | None,
    *,
    per: str = "1d",
    action: str = "review",
    other: str = "approve",
    frontier_points: int = 11,
) -> Optimum:
    """The cost-optimal ``n <= capacity`` and ``min_score`` of a :class:`TopN` policy.

    The rows given ``action`` are priced by its role (``review`` unless the action is named
    ``decline``), the others as approved. Exact over every ``n`` and every ``min_score``
    between distinct scores: for each ``n`` the cost of every ``min_score`` is a prefix sum
    over score groups, updated as ``n`` grows by the rows of rank ``n - 1``.

    Parameters
    ----------
    scores, costs, labels_or_probs, periods
        As for :func:`optimize_three_band`.
    capacity
        Largest ``n`` (actions per period); ``None``: up to the largest period.
    per
        The period length the ids stand for (recorded in the policy).
    action, other
        Names of the action for the top rows and for the rest.
    frontier_points
        Number of ``n`` values on the cost-capacity frontier (0: none).

    Examples
    --------
    >>> import numpy as np
    >>> costs = CostModel(false_negative=50.0, false_positive=0.0, review=5.0)
    >>> p = np.array([0.9, 0.05, 0.8, 0.04, 0.03, 0.02])
    >>> best = optimize_top_n(p, costs, p, [0, 0, 0, 1, 1, 1], capacity=1,
    ...                       action="contact", other="skip")
    >>> best.policy.n, round(best.policy.min_score, 6), best.counts
    (1, 0.47, {'skip': 5, 'contact': 1})
    """
    inp = _inputs("optimize_top_n", scores, costs, labels_or_probs, periods, capacity,
                  "approve")
    template = TopN(n=0, per=per, action=action, other=other)
    role = template.roles[action]
    s = inp.scores
    rank = rank_within_period(s, inp.codes)
    largest = int(np.bincount(inp.codes).max())
    n_max = largest if capacity is None else min(int(capacity), largest)
    base = float(inp.by_role["approve"].sum())
    keep = np.flatnonzero(rank < n_max)
    values = np.unique(s[keep])[::-1]  # distinct candidate scores, highest first
    group = np.searchsorted(-values, -s[keep])  # 0 = highest group
    delta = inp.by_role[role][keep] - inp.by_role["approve"][keep]
    by_rank = np.argsort(rank[keep], kind="stable")
    bounds = np.searchsorted(rank[keep][by_rank], np.arange(n_max + 1))
    prefix = np.zeros(len(values))  # cost change of taking groups 0..k, top-n rows only
    best_n, best_k, best = 0, -1, 0.0
    curve, chosen = [0.0], [-1]
    for n in range(1, n_max + 1):
        rows = by_rank[bounds[n - 1]: bounds[n]]
        prefix += np.cumsum(np.bincount(group[rows], weights=delta[rows],
                                        minlength=len(values)))
        k = int(np.argmin(prefix))
        if prefix[k] >= 0.0:  # taking nobody is as good: prefer fewer actions
            k = -1
        value = float(prefix[k]) if k >= 0 else 0.0
        curve.append(value)
        chosen.append(k)
        if value < best:
            best_n, best_k, best = n, k, value
    min_score: float | None = None
    if 0 <= best_k < len(values) - 1:
        lo_v, hi_v = float(values[best_k + 1]), float(values[best_k])
        mid = lo_v / 2.0 + hi_v / 2.0
        min_score = mid if lo_v < mid <= hi_v else hi_v
    frontier: list[dict[str, float]] = []
    for level in _levels(None, n_max, frontier_points):
        taken = (rank[keep] < level) & (group <= chosen[level])
        load = per_period_counts(taken, inp.codes[keep], inp.n_periods)
        frontier.append(_point(level, base + curve[level], load))
    policy = TopN(n=best_n, per=per, min_score=min_score, action=action, other=other,
                  metadata=_metadata(capacity, "approve", 1.0, len(s)))
    return _optimum(policy, inp, costs, capacity, "approve", frontier)
