"""What the spec says about evaluation beyond the label: costs, capacity, entity, days.

Cost expressions are DuckDB SQL over the frame's columns, evaluated once per row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import duckdb
import numpy as np
import numpy.typing as npt
import pandas as pd

from valuechain.errors import SpecError
from valuechain.spec.loader import LoadedSpec

__all__ = ["EvaluationContext", "row_costs"]

F64 = npt.NDArray[np.float64]


def row_costs(loaded: LoadedSpec, frame: pd.DataFrame, name: str) -> F64 | None:
    """``value.costs[name]`` evaluated on every row, or None when the spec has no such cost."""
    value = loaded.spec.value
    if value is None or name not in value.costs:
        return None
    expr = value.costs[name]
    con = duckdb.connect()
    try:
        con.register("frame", frame)
        out = con.sql(f"SELECT CAST(({expr}) AS DOUBLE) AS c FROM frame").df()["c"]
    except duckdb.Error as err:
        raise SpecError(
            f"{loaded.where('value', 'costs', name)}: cost '{name}' = {expr!r} cannot be "
            f"computed over the frame: {str(err).splitlines()[0]}. Expected a SQL expression "
            f"over the frame columns {sorted(frame.columns)}; add missing columns with "
            "`decision_points.keep`."
        ) from None
    finally:
        con.close()
    return np.asarray(out.fillna(0.0).to_numpy(dtype=np.float64))


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

    @classmethod
    def of(cls, loaded: LoadedSpec, frame: pd.DataFrame, time_col: str) -> EvaluationContext:
        spec = loaded.spec
        t = pd.to_datetime(frame[time_col])
        if getattr(t.dt, "tz", None) is not None:
            t = t.dt.tz_convert("UTC").dt.tz_localize(None)
        us = t.to_numpy(dtype="datetime64[us]").astype(np.int64)
        day = 86_400_000_000
        origin = (int(us.min()) // day) * day if len(us) else 0  # midnight of the first day
        days = (us - origin) // day
        period = k = action = None
        if spec.value is not None and spec.value.capacity:
            action, cap = next(iter(spec.value.capacity.items()))
            per = int(cap.per / timedelta(microseconds=1))
            period, k = (us - origin) // per, cap.limit
        entity = None
        if spec.split is not None and spec.split.entity is not None:
            name = spec.split.entity
            if name not in frame.columns:
                raise SpecError(
                    f"{loaded.where('split', 'entity')}: '{name}' is not a frame column. Add "
                    f"it to `decision_points.keep` (frame columns: {sorted(frame.columns)})."
                )
            entity = frame[name].to_numpy(dtype=object)
        return cls(days=days, capacity_period=period, capacity_k=k, capacity_action=action,
                   entity=entity, cost_fp=row_costs(loaded, frame, "false_positive"),
                   cost_fn=row_costs(loaded, frame, "false_negative"))

    def subset(self, mask: npt.NDArray[np.bool_]) -> EvaluationContext:
        def cut(a: npt.NDArray[np.generic] | None) -> npt.NDArray[np.generic] | None:
            return None if a is None else a[mask]

        return EvaluationContext(
            days=self.days[mask], capacity_period=cut(self.capacity_period),  # type: ignore[arg-type]
            capacity_k=self.capacity_k, capacity_action=self.capacity_action,
            entity=cut(self.entity), cost_fp=cut(self.cost_fp), cost_fn=cut(self.cost_fn),  # type: ignore[arg-type]
        )
