"""Which list saves more: risk-ranked, uplift-ranked, random or today's rule?

Each list takes the top ``capacity`` decision points of every period (week) of the test
period by its score. What a list saves is measured two ways:

**From the randomized history** (any data). Only decision points that today's rule listed
were randomized, so a list is measurable on its *overlap* with the history. Over the
overlap, the Horvitz-Thompson estimate of the outcomes prevented if all of it were acted on
is ``sum_i y_i (1 - t_i) / (1 - e_i) - y_i t_i / e_i`` (``e_i`` the known propensity), and
the money ``sum_i value_i * c_i - cost_i`` with ``c_i`` that row's term; the intervals
resample customers (:func:`~valuechain.evaluate.bootstrap.block_sum_interval`, blocks =
the entity key). The rows of a list outside the history are *not measurable* from it: the
share measured is reported beside every estimate.

**Against the true effects** (a generated world, ``--truth``): the sum of the true
``uplift`` over the whole list (the churners a call saves in expectation) and the money
``sum uplift_i * value_i - cost_i``, with customer-resampled intervals, plus the paired
difference of each list against the risk-ranked list.

>>> import numpy as np
>>> ht_terms([1, 0, 1, 0], [0, 0, 1, 1], [0.5, 0.5, 0.5, 0.5]).tolist()
[2.0, 0.0, -2.0, 0.0]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from valuechain.evaluate.bootstrap import Interval, block_sum_interval

__all__ = ["ListOutcome", "compare_lists", "ht_terms", "top_per_period"]

F64 = npt.NDArray[np.float64]
#: Fewest held-out rows in a list's overlap with the history for its estimate to be judged.
MIN_CONTROL = 20


def ht_terms(outcome: npt.ArrayLike, treated: npt.ArrayLike, propensity: npt.ArrayLike) -> F64:
    """Per-row Horvitz-Thompson terms of the outcomes an action prevents.

    ``y (1 - t) / (1 - e) - y t / e``: their sum estimates, without bias under the
    randomization, how many outcomes acting on every row would prevent.
    """
    y = np.asarray(outcome, dtype=np.float64)
    t = np.asarray(treated, dtype=np.float64)
    e = np.asarray(propensity, dtype=np.float64)
    out: F64 = y * (1.0 - t) / (1.0 - e) - y * t / e
    return out


def top_per_period(scores: npt.ArrayLike, periods: npt.ArrayLike, k: int,
                   seed: int = 0) -> npt.NDArray[np.bool_]:
    """Mask of the top ``k`` rows by score within each period; ties broken at random (seed).

    >>> top_per_period([0.1, 0.9, 0.5, 0.7], [1, 1, 2, 2], 1).tolist()
    [False, True, False, True]
    """
    s = np.asarray(scores, dtype=np.float64)
    rng = np.random.default_rng(seed)
    tie = rng.uniform(size=len(s))
    frame = pd.DataFrame({"p": np.asarray(periods), "s": -s, "tie": tie})
    rank = frame.sort_values(["p", "s", "tie"]).groupby("p").cumcount()
    return (rank.reindex(frame.index) < k).to_numpy()


def _iv(interval: Interval) -> dict[str, float]:
    return {"value": interval.value, "low": interval.low, "high": interval.high}


@dataclass(frozen=True)
class ListOutcome:
    """What one list achieves on the test weeks (estimates and, when known, truth)."""

    name: str
    listed: int
    measured: int
    measured_treated: int
    measured_control: int
    saves_measured: Interval
    money_measured: Interval
    true_saves: Interval | None = None
    true_money: Interval | None = None
    true_saves_measured: float | None = None
    true_saves_vs_risk: Interval | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def measured_share(self) -> float:
        return self.measured / self.listed if self.listed else float("nan")

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name, "listed": self.listed, "measured": self.measured,
            "measured_share": self.measured_share, "measured_treated": self.measured_treated,
            "measured_control": self.measured_control,
            "saves_measured": _iv(self.saves_measured),
            "money_measured": _iv(self.money_measured)}
        if self.true_saves is not None and self.true_money is not None:
            out["true_saves"] = _iv(self.true_saves)
            out["true_money"] = _iv(self.true_money)
            out["true_saves_measured"] = self.true_saves_measured
            # too few held-out rows to measure anything: no verdict rather than a false one
            out["estimate_covers_truth"] = None if self.measured_control < MIN_CONTROL else bool(
                self.true_saves_measured is not None
                and self.saves_measured.contains(self.true_saves_measured))
        if self.true_saves_vs_risk is not None:
            out["true_saves_vs_risk"] = _iv(self.true_saves_vs_risk)
        return {**out, **self.extra}


def compare_lists(
    lists: dict[str, npt.NDArray[np.bool_]],
    *,
    customers: npt.ArrayLike,
    value: npt.ArrayLike,
    cost: npt.ArrayLike,
    assigned: npt.NDArray[np.bool_],
    outcome: npt.ArrayLike,
    treated: npt.ArrayLike,
    propensity: npt.ArrayLike,
    true_uplift: npt.ArrayLike | None = None,
    reference: str = "risk",
    n_boot: int = 200,
    seed: int = 0,
) -> list[ListOutcome]:
    """Estimated and true saves and money of each list (masks over the same test rows).

    Parameters
    ----------
    lists : dict of name -> bool mask
        Rows each list takes.
    customers : array-like
        Entity key per row (the bootstrap blocks).
    value, cost : array-like
        Value of an outcome prevented (a customer kept) and cost of the action, per row.
    assigned : bool mask
        Rows with a randomized assignment (the history's listings).
    outcome, treated, propensity : array-like
        Label, assignment (0/1) and known propensity per row (used where ``assigned``).
    true_uplift : array-like, optional
        The true effect per row (generated worlds); NaN where unknown.
    reference : str
        The list every other list is compared with on true saves.
    """
    blocks = np.asarray(customers)
    v = np.asarray(value, dtype=np.float64)
    c = np.asarray(cost, dtype=np.float64)
    y = np.nan_to_num(np.asarray(outcome, dtype=np.float64))
    t = np.nan_to_num(np.asarray(treated, dtype=np.float64))
    e = np.where(assigned, np.asarray(propensity, dtype=np.float64), 0.5)
    terms = np.where(assigned, ht_terms(y, t, e), 0.0)
    truth = None if true_uplift is None else np.nan_to_num(
        np.asarray(true_uplift, dtype=np.float64))
    out = []
    for name, mask in lists.items():
        measured = mask & assigned
        saves = block_sum_interval(np.where(measured, terms, 0.0), blocks, n_boot=n_boot,
                                   seed=seed)
        money = block_sum_interval(np.where(measured, terms * v - c, 0.0), blocks,
                                   n_boot=n_boot, seed=seed)
        kwargs: dict[str, Any] = {}
        if truth is not None:
            kwargs["true_saves"] = block_sum_interval(np.where(mask, truth, 0.0), blocks,
                                                      n_boot=n_boot, seed=seed)
            kwargs["true_money"] = block_sum_interval(np.where(mask, truth * v - c, 0.0),
                                                      blocks, n_boot=n_boot, seed=seed)
            kwargs["true_saves_measured"] = float(truth[measured].sum())
            if reference in lists and name != reference:
                diff = truth * (mask.astype(np.float64) - lists[reference].astype(np.float64))
                kwargs["true_saves_vs_risk"] = block_sum_interval(diff, blocks,
                                                                  n_boot=n_boot, seed=seed)
        out.append(ListOutcome(
            name=name, listed=int(mask.sum()), measured=int(measured.sum()),
            measured_treated=int((measured & (t == 1)).sum()),
            measured_control=int((measured & (t == 0)).sum()),
            saves_measured=saves, money_measured=money, **kwargs))
    return out
