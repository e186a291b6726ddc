"""What the spec says about evaluation beyond the label: costs, rule, capacity, entity, days.

Cost and rule expressions (``value.costs``, ``value.baseline_policy``) are evaluated once
per frame row with :func:`valuechain.expressions.evaluate`. The run stores the results with
its predictions (:data:`VALUE_COLUMNS`), so ``decide`` prices exactly what ``train`` saw.

A cost must be a finite number >= 0 on every row that is priced (validation and test): a
missing cost is not zero (zero would price a missing chargeback amount as free), and a
negative cost would reward the action it prices. Both are a
:class:`~valuechain.errors.DataError` naming the cost field, the number of rows and an
example decision id. Write the default into the expression when one is meant, e.g.
``coalesce(amount, 0)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt
import pandas as pd

from valuechain.errors import DataError, SpecError
from valuechain.evaluate.splits import entity_keys
from valuechain.expressions import evaluate
from valuechain.policy.capacity import capacity_period
from valuechain.spec.durations import to_micros
from valuechain.spec.loader import LoadedSpec
from valuechain.spec.models import Capacity

__all__ = [
    "COST_FIELDS",
    "DAY_US",
    "VALUE_COLUMNS",
    "EvaluationContext",
    "row_costs",
    "spec_capacity",
    "value_columns",
]

F64 = npt.NDArray[np.float64]
DAY_US: Final = 86_400_000_000

#: The costs a run stores per row (``cost_<field>`` columns of its predictions).
COST_FIELDS: Final = ("false_negative", "false_positive", "review")

#: Columns of a run's predictions that hold the spec's per-row value inputs.
VALUE_COLUMNS: Final = (*(f"cost_{f}" for f in COST_FIELDS), "rule")


def spec_capacity(loaded: LoadedSpec) -> tuple[str, Capacity] | None:
    """The one capacity of ``value.capacity`` (action name and limit), or None.

    A policy limits one action per period (the review band of a three-band policy, the
    acted-on side of a threshold or top-N list), so a spec naming several capacities is
    refused rather than silently using the first: the message names the entries that
    would be ignored.
    """
    value = loaded.spec.value
    if value is None or not value.capacity:
        return None
    if len(value.capacity) > 1:
        names = list(value.capacity)
        ignored = ", ".join(f"`{n}`" for n in names[1:])
        raise SpecError(
            f"{loaded.where('value', 'capacity')}: {len(names)} capacities are given "
            f"({', '.join(f'`{n}`' for n in names)}), but a policy limits one action per "
            f"period: {ignored} would be ignored. Keep only the capacity of the action the "
            f"policy must fit (e.g. `{names[0]}: {{limit: 150, per: 1d}}`) and remove "
            f"{ignored}.")
    action, cap = next(iter(value.capacity.items()))
    return action, cap


def row_costs(loaded: LoadedSpec, frame: pd.DataFrame, name: str) -> F64 | None:
    """``value.costs[name]`` on every row (NaN where it is null), or None when not given."""
    value = loaded.spec.value
    if value is None or name not in value.costs:
        return None
    out = evaluate(value.costs[name], frame, where=loaded.where("value", "costs", name))
    return np.asarray(out, dtype=np.float64)


def _check_cost(loaded: LoadedSpec, name: str, values: F64, ids: npt.NDArray[np.object_],
                priced: npt.NDArray[np.bool_]) -> None:
    assert loaded.spec.value is not None
    expr = loaded.spec.value.costs[name]
    where = loaded.where("value", "costs", name)
    for bad, what, fix in (
        (priced & ~np.isfinite(values), "null (or not a finite number)",
         "fill the missing inputs in the sources, or write the intended default into the "
         "expression, e.g. `coalesce(amount, 0)`; a missing cost is never taken as 0"),
        (priced & np.isfinite(values) & (values < 0), "negative",
         "a cost is what an outcome loses, >= 0; write gains as a lower cost of the other "
         "action, or clip with `greatest(..., 0)` when negative inputs are errors"),
    ):
        if bad.any():
            first = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{where}: cost `{name}` = `{expr}` is {what} on {int(bad.sum()):,} of "
                f"{int(priced.sum()):,} priced rows (validation and test), e.g. decision_id "
                f"{ids[first]!r} (value {float(values[first])!r}). Fix: {fix}.")


def value_columns(loaded: LoadedSpec, frame: pd.DataFrame, ids: npt.NDArray[np.object_],
                  priced: npt.NDArray[np.bool_]) -> dict[str, npt.NDArray[np.generic]]:
    """The spec's costs and rule on every frame row, checked on the ``priced`` rows.

    Returns ``cost_<field>`` (float) for each cost of :data:`COST_FIELDS` the spec gives and
    ``rule`` (bool, null as False) when it has ``value.baseline_policy``.

    Raises
    ------
    DataError
        When a cost is null, not finite or negative on a priced row.
    """
    out: dict[str, npt.NDArray[np.generic]] = {}
    for name in COST_FIELDS:
        values = row_costs(loaded, frame, name)
        if values is not None:
            _check_cost(loaded, name, values, ids, priced)
            out[f"cost_{name}"] = values
    value = loaded.spec.value
    if value is not None and value.baseline_policy:
        out["rule"] = evaluate(value.baseline_policy, frame, kind="bool",
                               where=loaded.where("value", "baseline_policy"))
    return out


@dataclass(frozen=True)
class EvaluationContext:
    """Per-row evaluation inputs shared by every candidate."""

    days: npt.NDArray[np.int64]  # decision day (bootstrap blocks, per-day CP@k)
    capacity_period: npt.NDArray[np.int64] | None
    capacity_k: int | None
    capacity_action: str | None
    entity: npt.NDArray[np.object_] | None
    cost_fp: F64 | None
    cost_fn: F64 | None
    origin_us: int = 0  # midnight of the first decision day, µs since the epoch (UTC)

    @classmethod
    def of(cls, loaded: LoadedSpec, frame: pd.DataFrame, time_col: str,
           columns: dict[str, npt.NDArray[np.generic]]) -> EvaluationContext:
        spec = loaded.spec
        us = times_us(frame[time_col])
        origin = (int(us.min()) // DAY_US) * DAY_US if len(us) else 0
        days = (us - origin) // DAY_US
        period = k = action = None
        capacity = spec_capacity(loaded)
        if capacity is not None:
            action, cap = capacity
            period, k = capacity_period(us, to_micros(cap.per)), cap.limit
        entity = None
        if spec.split is not None and spec.split.entity is not None:
            name = spec.split.entity
            if name not in frame.columns:
                raise SpecError(
                    f"{loaded.where('split', 'entity')}: '{name}' is not a frame column. Add "
                    f"it to `decision_points.keep` (frame columns: {sorted(frame.columns)})."
                )
            # each empty entity (a guest checkout) is its own entity, keyed by its decision
            ids = frame["decision_id"] if "decision_id" in frame.columns else np.arange(
                len(frame)).astype(str)
            entity = entity_keys(frame[name], ids)
        fp, fn = columns.get("cost_false_positive"), columns.get("cost_false_negative")
        return cls(days=days, capacity_period=period, capacity_k=k, capacity_action=action,
                   entity=entity, cost_fp=None if fp is None else np.asarray(fp, np.float64),
                   cost_fn=None if fn is None else np.asarray(fn, np.float64), origin_us=origin)

    def subset(self, mask: npt.NDArray[np.bool_]) -> EvaluationContext:
        def cut(a: npt.NDArray[np.generic] | None) -> npt.NDArray[np.generic] | None:
            return None if a is None else a[mask]

        return EvaluationContext(
            days=self.days[mask], capacity_period=cut(self.capacity_period),  # type: ignore[arg-type]
            capacity_k=self.capacity_k, capacity_action=self.capacity_action,
            entity=cut(self.entity), cost_fp=cut(self.cost_fp), cost_fn=cut(self.cost_fn),  # type: ignore[arg-type]
            origin_us=self.origin_us,
        )


def times_us(values: pd.Series) -> npt.NDArray[np.int64]:
    """Decision times as µs since the epoch (aware times as UTC instants)."""
    t = pd.to_datetime(values)
    if getattr(t.dt, "tz", None) is not None:
        t = t.dt.tz_convert("UTC").dt.tz_localize(None)
    return np.asarray(t.to_numpy(dtype="datetime64[us]").astype(np.int64))
