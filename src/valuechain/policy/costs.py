"""The cost model: what each action costs on each row, given the outcome.

Three actions, named by their *role*: ``approve`` (let it through), ``review`` (send it to a
person) and ``decline`` (block it). With ``y`` the label (1 = positive, e.g. fraud), the
realised cost of each action on a row is::

    approve = y * FN
    decline = (1 - y) * FP
    review  = R + y * (1 - catch_rate) * FN + (1 - y) * friction * FP

``FN`` is the cost of a positive approved (the chargeback), ``FP`` the cost of a negative
declined (lost margin and goodwill), ``R`` the cost of one review, ``catch_rate`` the share
of positives a reviewer catches and ``friction`` the share of negatives lost at review (each
costing ``FP``). Every cost is linear in ``y``, so the *expected* cost given a calibrated
probability ``p`` is the same formula with ``p`` in place of ``y``.

Costs are finite numbers >= 0: a NaN (a missing input) or a negative cost is a
:class:`~valuechain.errors.DataError` naming the field and a row, never read as 0.

>>> costs = CostModel(false_negative=[100.0, 20.0], false_positive=[5.0, 5.0], review=3.0,
...                   catch_rate=0.75)
>>> {k: v.tolist() for k, v in costs.action_costs([1, 0]).items()}
{'approve': [100.0, 0.0], 'review': [28.0, 3.0], 'decline': [0.0, 5.0]}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Final

import numpy as np
import numpy.typing as npt

from valuechain.errors import DataError, SpecError

__all__ = ["ROLES", "CostModel"]

F64 = npt.NDArray[np.float64]

#: The three action roles the cost model prices, from the lowest score band to the highest.
ROLES: Final = ("approve", "review", "decline")

_FIXES = {
    "false_negative": "the cost of a positive approved, e.g. `amount`",
    "false_positive": "the cost of a negative declined, e.g. `0.1 * amount + 5`",
    "review": "the cost of one review, e.g. `3`",
    "catch_rate": "a share between 0 and 1 (1.0: reviewers catch every positive)",
    "friction": "a share between 0 and 1 (0.0: no genuine case is lost at review)",
}


def _as_costs(name: str, value: npt.ArrayLike) -> F64:
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise SpecError(f"cost model `{name}`: expected numbers, got {value!r}; give "
                        f"{_FIXES[name]}.") from exc
    if arr.ndim > 1:
        raise SpecError(f"cost model `{name}`: expected one number or one per row, got an "
                        f"array of shape {arr.shape}; give {_FIXES[name]}.")
    bad = ~np.isfinite(arr)
    if bad.any():
        where = f", e.g. row {int(np.flatnonzero(bad.ravel())[0])}" if arr.ndim else ""
        raise DataError(f"cost model `{name}`: {int(bad.sum())} of {arr.size} values are NaN "
                        f"or infinite{where}; a missing cost is never taken as 0: fill the "
                        f"missing inputs ({_FIXES[name]}).")
    if name in ("false_negative", "false_positive", "review") and arr.size and arr.min() < 0:
        neg = arr < 0
        where = f", e.g. row {int(np.flatnonzero(neg.ravel())[0])}" if arr.ndim else ""
        raise DataError(f"cost model `{name}`: {int(neg.sum())} of {arr.size} values are "
                        f"negative{where} (lowest {arr.min():g}); a cost is what an outcome "
                        f"loses, >= 0 ({_FIXES[name]}).")
    if name in ("catch_rate", "friction") and arr.size and (arr.min() < 0 or arr.max() > 1):
        raise SpecError(f"cost model `{name}`: values must lie in [0, 1], got "
                        f"{arr.min():g} to {arr.max():g}; give {_FIXES[name]}.")
    arr.setflags(write=False)
    return arr


@dataclass(frozen=True, eq=False)
class CostModel:
    """Per-row costs of each action and what a review achieves.

    Parameters
    ----------
    false_negative
        Cost of a positive approved, one number or one per row.
    false_positive
        Cost of a negative declined, one number or one per row.
    review
        Cost of one review, one number or one per row.
    catch_rate
        Share of positives a reviewer catches (they are then declined at no further cost).
    friction
        Share of negatives lost at review; each one costs ``false_positive``.

    After construction every field is a read-only ``float64`` array (0-d for one number).
    Per-row fields must have the same length; :meth:`action_costs` checks it against the
    labels or probabilities.

    Examples
    --------
    >>> costs = CostModel(false_negative=[50.0, 80.0], false_positive=2.0)
    >>> costs.n_rows
    2
    >>> costs.action_costs([0.5, 0.1])["approve"].tolist()
    [25.0, 8.0]
    """

    false_negative: npt.ArrayLike
    false_positive: npt.ArrayLike
    review: npt.ArrayLike = 0.0
    catch_rate: npt.ArrayLike = 1.0
    friction: npt.ArrayLike = 0.0

    def __post_init__(self) -> None:
        lengths: dict[str, int] = {}
        for f in fields(self):
            arr = _as_costs(f.name, getattr(self, f.name))
            object.__setattr__(self, f.name, arr)
            if arr.ndim == 1:
                lengths[f.name] = len(arr)
        if len(set(lengths.values())) > 1:
            listed = ", ".join(f"`{k}` {v}" for k, v in lengths.items())
            raise SpecError(f"cost model: per-row costs have different lengths ({listed}); "
                            "compute every cost over the same rows.")

    def _arr(self, name: str) -> F64:
        out: F64 = getattr(self, name)
        return out

    @property
    def n_rows(self) -> int | None:
        """Length of the per-row fields, or ``None`` when every field is one number."""
        for f in fields(self):
            arr = self._arr(f.name)
            if arr.ndim == 1:
                return len(arr)
        return None

    def take(self, rows: npt.ArrayLike) -> CostModel:
        """The cost model of a subset of rows (a boolean mask or integer positions).

        Examples
        --------
        >>> CostModel(false_negative=[1.0, 2.0, 3.0], false_positive=1.0).take(
        ...     [True, False, True]).false_negative.tolist()
        [1.0, 3.0]
        """
        index = np.asarray(rows)
        parts = {f.name: self._arr(f.name)[index] if self._arr(f.name).ndim == 1
                 else self._arr(f.name) for f in fields(self)}
        return CostModel(**parts)

    def action_costs(self, y_or_p: npt.ArrayLike) -> dict[str, F64]:
        """Cost of each action on each row, keyed by role (see :data:`ROLES`).

        Parameters
        ----------
        y_or_p
            0/1 labels (realised cost) or calibrated probabilities (expected cost).

        Examples
        --------
        >>> costs = CostModel(false_negative=10.0, false_positive=4.0, review=1.0,
        ...                   friction=0.5)
        >>> costs.action_costs([0.2])["review"].tolist()
        [2.6]
        """
        p = np.asarray(y_or_p, dtype=np.float64)
        if p.ndim != 1:
            raise DataError(f"labels or probabilities must be one value per row, got shape "
                            f"{p.shape}")
        if p.size and (not np.all(np.isfinite(p)) or p.min() < 0 or p.max() > 1):
            raise DataError("labels or probabilities must lie in [0, 1] and be finite; drop "
                            "immature rows and calibrate scores before pricing actions.")
        n = self.n_rows
        if n is not None and n != len(p):
            raise DataError(f"the cost model has {n} rows but {len(p)} labels or "
                            "probabilities were given; price the same rows.")
        fn, fp = self._arr("false_negative"), self._arr("false_positive")
        catch, friction = self._arr("catch_rate"), self._arr("friction")
        q = 1.0 - p
        return {
            "approve": np.broadcast_to(p * fn, p.shape).astype(np.float64),
            "review": np.broadcast_to(
                self._arr("review") + p * (1.0 - catch) * fn + q * friction * fp, p.shape
            ).astype(np.float64),
            "decline": np.broadcast_to(q * fp, p.shape).astype(np.float64),
        }

    def cost_of(
        self,
        actions: npt.ArrayLike,
        y_or_p: npt.ArrayLike,
        roles: Mapping[str, str] | None = None,
    ) -> F64:
        """Cost of the given action on each row.

        Parameters
        ----------
        actions
            One action name per row.
        y_or_p
            0/1 labels or calibrated probabilities.
        roles
            Action name -> role (``approve``, ``review`` or ``decline``) when the names are
            not the roles themselves; a policy's ``roles`` property gives it.

        Examples
        --------
        >>> costs = CostModel(false_negative=10.0, false_positive=4.0, review=1.0)
        >>> costs.cost_of(["skip", "contact"], [1, 1], {"skip": "approve",
        ...               "contact": "review"}).tolist()
        [10.0, 1.0]
        """
        acts = np.asarray(actions)
        by_role = self.action_costs(y_or_p)
        if acts.shape != by_role["approve"].shape:
            raise DataError(f"{acts.size} actions for {by_role['approve'].size} rows; give one "
                            "action per row.")
        mapping = dict(roles) if roles is not None else {r: r for r in ROLES}
        out = np.full(acts.shape, np.nan)
        for name, role in mapping.items():
            if role not in by_role:
                raise SpecError(f"action `{name}` has role `{role}`; roles are "
                                f"{', '.join(ROLES)}.")
            mask = acts == name
            out[mask] = by_role[role][mask]
        unknown = np.unique(acts[np.isnan(out)])
        if unknown.size:
            raise DataError(f"actions {', '.join(map(str, unknown[:5]))} have no cost role; "
                            f"known actions: {', '.join(mapping)}.")
        return out
