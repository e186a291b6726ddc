"""The features of every scheduled entity at one decision time: the frame builder without a
training label.

:func:`features_at` runs the project's plan (:func:`valuechain.data.plan.make_plan`) with the
schedule narrowed to the single time ``t`` and only the requested features, on the project's
engine; the point-in-time rules of :mod:`valuechain.data.pit` hold as in ``build``. The
label comes along but is only used when mature (``t + horizon + delay <= as_of``), to measure
the outcome of each segment; immature labels are reported as pending, never as zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import pandas as pd

from valuechain.data.build import EngineChoice, select_engine
from valuechain.data.pit import LABEL, is_mature
from valuechain.data.plan import SchedulePlan, make_plan
from valuechain.data.sources import Catalog
from valuechain.errors import SpecError
from valuechain.spec.loader import LoadedSpec

__all__ = ["PointFrame", "data_as_of", "features_at", "schedule_times"]


@dataclass(frozen=True)
class PointFrame:
    """One row per entity active at ``t``: ``key`` column, the features, ``label`` (the
    outcome in ``(t, t + horizon]``, meaningful only when ``mature``)."""

    t: datetime
    key: str
    frame: pd.DataFrame
    mature: bool
    as_of: datetime


def _schedule(loaded: LoadedSpec) -> SchedulePlan:
    plan = make_plan(loaded)
    if not isinstance(plan.points, SchedulePlan):
        raise SpecError(f"{loaded.where('decision_points')}: segments need scheduled decision "
                        "points (each entity at regular times); declare "
                        "`decision_points.schedule`.")
    return plan.points


def data_as_of(loaded: LoadedSpec) -> datetime:
    """The latest time in the sources (the default extraction time of ``build``)."""
    plan = make_plan(loaded)
    catalog = Catalog(plan)
    try:
        stamps = [catalog.info(name).max_time for name in plan.sources]
    finally:
        catalog.con.close()
    found = [pd.Timestamp(s).to_pydatetime() for s in stamps if s]
    if not found:
        raise SpecError(f"{loaded.where('sources')}: no source has a time column; segments "
                        "need a time to segment at (set `segments.as_of`).")
    return max(found)


def schedule_times(loaded: LoadedSpec, until: datetime) -> list[datetime]:
    """The schedule's decision times up to ``until`` (inclusive)."""
    points = _schedule(loaded)
    step = timedelta(microseconds=points.every_us)
    out, t = [], points.start
    end = min(until, points.end) if points.end else until
    while t <= end:
        out.append(t)
        t += step
    return out


def features_at(loaded: LoadedSpec, t: datetime, features: Sequence[str], *,
                engine: EngineChoice = None) -> PointFrame:
    """The ``features`` of every entity of the schedule's population at decision time ``t``.

    Examples
    --------
    >>> from valuechain.spec import load_spec  # doctest: +SKIP
    >>> features_at(load_spec("examples/churn"), datetime(2025, 3, 3),
    ...             ["sessions_28d", "tickets_90d"]).frame.columns.tolist()  # doctest: +SKIP
    ['customer_id', 'sessions_28d', 'tickets_90d', 'label']
    """
    plan = make_plan(loaded)
    if not isinstance(plan.points, SchedulePlan):
        _schedule(loaded)  # raises the SpecError
    assert isinstance(plan.points, SchedulePlan)
    wanted = set(features)
    plan = replace(
        plan,
        points=replace(plan.points, start=t, end=t),
        row_features=tuple(f for f in plan.row_features if f.name in wanted),
        windows=tuple(f for f in plan.windows if f.name in wanted),
        lookups=tuple(f for f in plan.lookups if f.name in wanted),
        feature_names=tuple(n for n in plan.feature_names if n in wanted),
    )
    out = select_engine(loaded, engine).execute(plan)
    table = out.frame
    assert isinstance(plan.points, SchedulePlan)
    key = plan.points.key
    frame = pd.DataFrame({key: table.column(key).to_pandas()})
    for name in features:
        frame[name] = pd.to_numeric(table.column(name).to_pandas(), errors="coerce")
    frame["label"] = pd.to_numeric(table.column(LABEL).to_pandas(), errors="coerce")
    t_us = int(table.column("__t")[0].as_py()) if table.num_rows else 0
    mature = bool(table.num_rows) and is_mature(t_us, plan.label.horizon_us,
                                                out.label_delay_us, out.as_of_us)
    as_of = pd.Timestamp(out.as_of_us, unit="us").to_pydatetime()
    return PointFrame(t, key, frame, mature, as_of)
