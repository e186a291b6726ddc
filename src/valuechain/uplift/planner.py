"""The holdout planner: how many weeks until the effect of the action is measurable?

Each week a list of ``m`` customers is drawn; a share ``s`` is held out as control, the rest
acted on. Without the action a listed customer has the outcome (churns) with probability
``p_c`` (the *base*); the action lowers it by ``d`` (the *effect*), so the treated churn
with ``p_t = p_c - d``. After ``W`` weeks, pooling the weeks, there are
``n_c = W m s`` control and ``n_t = W m (1 - s)`` treated customers, and the two-sided
two-proportion z-test at level ``alpha`` detects ``d`` with power (normal approximation,
without continuity correction, Fleiss et al. 2003, ch. 4)::

    power(W) = Phi( (|d| sqrt(W) - z_{1-alpha/2} sqrt(p (1 - p) (1/c + 1/t)))
                    / sqrt(p_c (1 - p_c) / c + p_t (1 - p_t) / t) )

with ``c = m s`` and ``t = m (1 - s)`` the customers per week and ``p = (c p_c + t p_t) /
(c + t)`` the pooled rate. The weeks needed are the smallest ``W`` with
``power(W) >= power``::

    W = ceil( ( (z_{1-alpha/2} sqrt(p (1 - p) (1/c + 1/t))
                 + z_{power} sqrt(p_c (1 - p_c) / c + p_t (1 - p_t) / t)) / d )^2 )

Weeks count only once matured (the outcome horizon has passed). Customers recurring in
several weeks are treated as independent here; the pooled estimate so far
(:func:`pooled_estimate`) resamples customers, so its interval is honest about them.

>>> plan = plan_holdout(base=0.086, effect=0.019, list_size=200, control_share=0.2)
>>> plan.weeks
47
>>> plan.power_at(47) >= 0.8 > plan.power_at(46)
True
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from valuechain.errors import DataError
from valuechain.evaluate.bootstrap import Interval, block_bootstrap

__all__ = ["HoldoutPlan", "PooledEstimate", "plan_holdout", "pooled_estimate", "weekly_rates"]

F64 = npt.NDArray[np.float64]
_N = NormalDist()


@dataclass(frozen=True)
class HoldoutPlan:
    """The inputs and the weeks needed (``weeks`` is ``None`` when the effect is 0)."""

    base: float
    effect: float
    list_size: int
    control_share: float
    alpha: float
    power: float
    weeks: int | None
    control_per_week: float
    treated_per_week: float

    def power_at(self, weeks: float) -> float:
        """The power after ``weeks`` matured weeks."""
        return _power(self.base, self.effect, self.control_per_week * weeks,
                      self.treated_per_week * weeks, self.alpha)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _check(base: float, effect: float, list_size: int, control_share: float, alpha: float,
           power: float) -> None:
    problems = []
    if not 0 < base < 1:
        problems.append(f"`base` (the outcome rate without the action) must be in (0, 1), "
                        f"got {base}")
    if not 0 <= base - effect <= 1:
        problems.append(f"`effect` {effect} makes the treated rate {base - effect:.4g}, "
                        "outside [0, 1]; the effect is the drop of the rate (base - treated)")
    if list_size < 2:
        problems.append(f"`list_size` must be at least 2 per week, got {list_size}")
    if not 0 < control_share < 1:
        problems.append(f"`control_share` must be in (0, 1), got {control_share}")
    if not 0 < alpha < 1:
        problems.append(f"`alpha` must be in (0, 1), got {alpha}")
    if not 0 < power < 1:
        problems.append(f"`power` must be in (0, 1), got {power}")
    if problems:
        raise DataError("; ".join(problems) + ".")


def _power(base: float, effect: float, n_c: float, n_t: float, alpha: float) -> float:
    if n_c <= 0 or n_t <= 0 or effect == 0:
        return alpha / 2 if effect == 0 else 0.0
    p_c, p_t = base, base - effect
    pooled = (n_c * p_c + n_t * p_t) / (n_c + n_t)
    null_sd = math.sqrt(pooled * (1 - pooled) * (1 / n_c + 1 / n_t))
    alt_sd = math.sqrt(p_c * (1 - p_c) / n_c + p_t * (1 - p_t) / n_t)
    if alt_sd == 0:
        return 1.0
    z = _N.inv_cdf(1 - alpha / 2)
    return _N.cdf((abs(effect) - z * null_sd) / alt_sd)


def plan_holdout(*, base: float, effect: float, list_size: int, control_share: float,
                 alpha: float = 0.05, power: float = 0.8) -> HoldoutPlan:
    """Weeks of a randomized holdout until ``effect`` is detected with ``power``.

    Raises
    ------
    DataError
        An argument out of range (the message names each).
    """
    _check(base, effect, list_size, control_share, alpha, power)
    c, t = list_size * control_share, list_size * (1 - control_share)
    weeks: int | None = None
    if effect != 0:
        p_c, p_t = base, base - effect
        pooled = (c * p_c + t * p_t) / (c + t)
        a = _N.inv_cdf(1 - alpha / 2) * math.sqrt(pooled * (1 - pooled) * (1 / c + 1 / t))
        b = _N.inv_cdf(power) * math.sqrt(p_c * (1 - p_c) / c + p_t * (1 - p_t) / t)
        weeks = max(1, math.ceil(((a + b) / abs(effect)) ** 2 - 1e-9))
    return HoldoutPlan(base=base, effect=effect, list_size=list_size,
                       control_share=control_share, alpha=alpha, power=power, weeks=weeks,
                       control_per_week=c, treated_per_week=t)


@dataclass(frozen=True)
class PooledEstimate:
    """Control minus treated outcome rate over the matured weeks so far, with its interval."""

    weeks: int
    control: int
    treated: int
    control_rate: float
    treated_rate: float
    effect: Interval
    first_week: str | None
    last_week: str | None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["effect"] = {"value": self.effect.value, "low": self.effect.low,
                         "high": self.effect.high}
        return out


def _difference(outcome: F64, treated: F64, sample_weight: F64 | None = None) -> float:
    w = np.ones_like(outcome) if sample_weight is None else sample_weight
    wc, wt = (w * (1 - treated)).sum(), (w * treated).sum()
    if wc <= 0 or wt <= 0:
        return float("nan")
    return float((w * (1 - treated) * outcome).sum() / wc - (w * treated * outcome).sum() / wt)


def pooled_estimate(outcome: npt.ArrayLike, treated: npt.ArrayLike, weeks: npt.ArrayLike,
                    customers: npt.ArrayLike, *, n_boot: int = 500, seed: int = 0
                    ) -> PooledEstimate:
    """Pooled control - treated rate over matured listings, resampling customers.

    >>> est = pooled_estimate([1, 0, 0, 0], [0, 0, 1, 1], [1, 1, 2, 2], [1, 2, 3, 4])
    >>> est.effect.value, est.weeks, est.control, est.treated
    (0.5, 2, 2, 2)
    """
    y = np.asarray(outcome, dtype=np.float64)
    t = np.asarray(treated, dtype=np.float64)
    w = pd.Series(np.asarray(weeks))
    if len(y) == 0:
        nan = float("nan")
        return PooledEstimate(0, 0, 0, nan, nan, Interval(nan, nan, nan), None, None)
    effect = block_bootstrap(_difference, customers, y, t, n_boot=n_boot, seed=seed)
    c = t == 0
    return PooledEstimate(
        weeks=int(w.nunique()), control=int(c.sum()), treated=int((~c).sum()),
        control_rate=float(y[c].mean()) if c.any() else float("nan"),
        treated_rate=float(y[~c].mean()) if (~c).any() else float("nan"), effect=effect,
        first_week=str(w.min()), last_week=str(w.max()))


def weekly_rates(outcome: npt.ArrayLike, treated: npt.ArrayLike, weeks: npt.ArrayLike
                 ) -> pd.DataFrame:
    """Control and treated outcome rates per week (``week``, ``control_rate``, ``treated_rate``,
    ``control``, ``treated``), weeks in order."""
    frame = pd.DataFrame({"week": np.asarray(weeks), "y": np.asarray(outcome, np.float64),
                          "t": np.asarray(treated, np.float64)})
    rows = []
    for week, g in frame.groupby("week", sort=True):
        c, t = g[g["t"] == 0], g[g["t"] == 1]
        rows.append({"week": week, "control": len(c), "treated": len(t),
                     "control_rate": float(c["y"].mean()) if len(c) else float("nan"),
                     "treated_rate": float(t["y"].mean()) if len(t) else float("nan")})
    return pd.DataFrame(rows)
