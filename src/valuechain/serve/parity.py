"""Parity: the online features of a replayed period against the offline build.

:func:`parity` warms an online state to the start of the period, replays the period through
:class:`~valuechain.serve.features.OnlineFeatures` — decision events, outcomes and dimension
versions interleaved by the time each becomes known, ties in the documented order (rows of
other sources first, then decision events by key; see docs/point-in-time.md) — computing each
decision's features just before applying it, and compares every feature with the frame the
offline engine builds for the same decision points (matched by ``decision_id``).

Exact means every feature within ``tolerance`` (1e-9) absolutely, or relatively for values
above 1 in magnitude; nulls equal nulls. Given a ``scorer`` (a bundle's ``score``), the model
scores of both feature sets are compared as well.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow.compute as pc

from valuechain.data.build import EngineChoice, decision_ids, select_engine
from valuechain.data.plan import Plan, make_plan
from valuechain.data.sources import datetime_to_us, us_to_datetime
from valuechain.errors import DataError
from valuechain.serve.features import OnlineFeatures, WarmResult
from valuechain.serve.state import MemoryState, StateStore
from valuechain.spec.loader import LoadedSpec

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

__all__ = ["FeatureParity", "OnlineReplay", "ParityResult", "parity", "replay_online",
           "values_agree"]

DEFAULT_PERIOD_US = 7 * 86_400_000_000


def values_agree(a: Any, b: Any, tol: float = 1e-9) -> tuple[bool, float]:
    """Whether two feature values agree, and their absolute difference.

    Numbers agree within ``tol`` absolutely, or relatively when larger than 1 in magnitude
    (sums of amounts); null (None or NaN) agrees only with null; other values must be equal.
    The difference is 0 for equal non-numbers and ``inf`` for other mismatches.

    >>> values_agree(0.1 + 0.2, 0.3), values_agree(None, 0.0), values_agree("low", "low")
    ((True, 5.551115123125783e-17), (False, inf), (True, 0.0))
    """
    a_null = a is None or (isinstance(a, float) and math.isnan(a))
    b_null = b is None or (isinstance(b, float) and math.isnan(b))
    if a_null or b_null:
        return a_null and b_null, 0.0 if a_null and b_null else math.inf
    if isinstance(a, bool | int | float) and isinstance(b, bool | int | float):
        x, y = float(a), float(b)
        if math.isinf(x) or math.isinf(y):
            return x == y, 0.0 if x == y else math.inf
        diff = abs(x - y)
        return diff <= tol * max(1.0, abs(x), abs(y)), diff
    return a == b, 0.0 if a == b else math.inf


@dataclass(frozen=True)
class FeatureParity:
    """How one feature compares: rows compared, rows differing, the largest difference and
    a few examples ``(decision_id, online, offline)``."""

    name: str
    compared: int
    differing: int
    max_abs_diff: float
    examples: tuple[tuple[str, Any, Any], ...] = ()

    @property
    def exact(self) -> bool:
        return self.differing == 0


@dataclass(frozen=True)
class ParityResult:
    """The outcome of :func:`parity`.

    ``exact`` is true when every decision of the period was computed both ways and every
    feature agrees.
    """

    since: datetime
    until: datetime
    decisions: int
    features: tuple[FeatureParity, ...]
    only_offline: int
    only_online: int
    warm: WarmResult
    tolerance: float
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def exact(self) -> bool:
        return (self.only_offline == 0 and self.only_online == 0
                and all(f.exact for f in self.features))

    @property
    def events_per_second(self) -> float:
        replay = self.seconds.get("replay", 0.0)
        return self.decisions / replay if replay > 0 else 0.0

    def to_json(self) -> dict[str, Any]:
        def number(x: float) -> float | str:
            return x if math.isfinite(x) else str(x)

        return {
            "exact": self.exact, "since": self.since.isoformat(),
            "until": self.until.isoformat(), "decisions": self.decisions,
            "only_offline": self.only_offline, "only_online": self.only_online,
            "tolerance": self.tolerance,
            "features": [{"name": f.name, "compared": f.compared, "differing": f.differing,
                          "max_abs_diff": number(f.max_abs_diff),
                          "examples": [{"decision_id": i, "online": on, "offline": off}
                                       for i, on, off in f.examples]}
                         for f in self.features],
            "warm": self.warm.to_json(),
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "events_per_second": round(self.events_per_second, 1),
        }


def _compare(name: str, decisions: list[str], online: dict[str, Any],
             offline: dict[str, Any], tolerance: float, examples: int) -> FeatureParity:
    differing, worst = 0, 0.0
    shown: list[tuple[str, Any, Any]] = []
    for decision in decisions:
        a, b = online[decision], offline[decision]
        same, diff = values_agree(a, b, tolerance)
        if not same:
            differing += 1
            worst = max(worst, diff)
            if len(shown) < examples:
                shown.append((decision, a, b))
    return FeatureParity(name=name, compared=len(decisions), differing=differing,
                         max_abs_diff=worst, examples=tuple(shown))


@dataclass(frozen=True)
class OnlineReplay:
    """The online features of every decision event of a replayed period, by decision id."""

    features: dict[str, dict[str, Any]]
    warm: WarmResult
    seconds: dict[str, float]


def replay_online(plan: Plan, since_us: int, until_us: int, *,
                  state: StateStore | None = None,
                  progress: Callable[[str, float], None] | None = None) -> OnlineReplay:
    """Replay ``(since_us, until_us]`` through the online path: the features of each decision.

    A state (default a fresh :class:`MemoryState`, cleared first) is warmed to ``since_us``;
    the sources' decision events, outcomes, dimension versions and other rows that become
    known in the period are applied in replay order, each decision's features computed just
    before its event is applied. :func:`parity` compares them with the offline build; the
    batch-scoring tests compare them with ``valuechain score``.
    """
    timings: dict[str, float] = {}
    store = state if state is not None else MemoryState()
    store.clear()
    online_features = OnlineFeatures(plan, store)
    started = time.perf_counter()
    if progress:
        progress("warm-up", 0.3)
    warmed = online_features.warm(us_to_datetime(since_us, online_features.aware))
    timings["warm"] = time.perf_counter() - started
    started = time.perf_counter()
    online: dict[str, dict[str, Any]] = {}
    computing = 0.0
    stream = list(online_features.history(since_us, until_us))
    for done, item in enumerate(stream):
        if progress and done % 500 == 0:
            progress("replay", 0.4 + 0.6 * done / len(stream))
        if item.kind == "event":
            begun = time.perf_counter()
            online[online_features.event_id(item.row)] = online_features.compute(item.row)
            computing += time.perf_counter() - begun
        online_features.apply(item)
    timings["replay"] = time.perf_counter() - started
    timings["compute"] = computing
    return OnlineReplay(online, warmed, timings)


def parity(loaded: LoadedSpec, *, since: datetime | None = None,
           until: datetime | None = None, engine: EngineChoice = None,
           state: StateStore | None = None, tolerance: float = 1e-9,
           examples: int = 5,
           scorer: Callable[[pd.DataFrame], np.ndarray] | None = None,
           progress: Callable[[str, float], None] | None = None) -> ParityResult:
    """Replay ``(since, until]`` through the online path and compare with the offline build.

    Parameters
    ----------
    loaded : LoadedSpec
        The spec (:func:`valuechain.spec.load_spec`); its decision points must be events.
    since, until : datetime, optional
        The period replayed (exclusive, inclusive). Default: the 7 days up to the latest
        decision.
    engine : optional
        The offline engine (default the spec's, else DuckDB).
    state : StateStore, optional
        The state to replay into (default a fresh in-process :class:`MemoryState`); it is
        cleared first.
    tolerance : float
        Largest difference accepted (absolute, or relative above 1).
    examples : int
        Differing decisions shown per feature.
    scorer : callable, optional
        Scores a frame of features (columns in spec order), e.g. a bundle's ``score``: the
        scores of the online and the offline features are compared too, as ``(score)``.
    progress : callable, optional
        Called with ``(stage, fraction done)``.

    Returns
    -------
    ParityResult
    """
    plan = make_plan(loaded)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    if progress:
        progress("offline build", 0.0)
    out = select_engine(loaded, engine).execute(plan)
    frame = out.frame
    ids = decision_ids(plan, frame, out.aware).to_pylist()
    times = frame.column("__t").to_pylist()
    timings["build"] = time.perf_counter() - started
    if not times:
        raise DataError(f"{plan.where('decision_points')}: the build made no decision points; "
                        "nothing to compare.")

    def moment(value: datetime | None, name: str) -> int | None:
        if value is None:
            return None
        if (value.tzinfo is not None) != out.aware:
            raise DataError(f"`{name}` {value.isoformat()} is "
                            f"{'aware' if value.tzinfo else 'naive'} but the data's times are "
                            f"{'aware' if out.aware else 'naive'}; write it "
                            f"{'with' if out.aware else 'without'} a UTC offset.")
        return datetime_to_us(value)

    until_us = moment(until, "until") or int(max(times))
    since_us = moment(since, "since")
    if since_us is None:
        since_us = until_us - DEFAULT_PERIOD_US
    if since_us >= until_us:
        raise DataError(f"`since` ({us_to_datetime(since_us, out.aware).isoformat()}) must be "
                        f"before `until` ({us_to_datetime(until_us, out.aware).isoformat()}).")
    mask = pc.and_(pc.greater(frame.column("__t"), since_us),
                   pc.less_equal(frame.column("__t"), until_us))
    keep = [i for i, m in enumerate(mask.to_pylist()) if m]
    names = list(plan.feature_names)
    offline = {ids[i]: {n: frame.column(n)[i].as_py() for n in names} for i in keep}

    replay = replay_online(plan, since_us, until_us, state=state, progress=progress)
    online, warmed = replay.features, replay.warm
    timings.update(replay.seconds)
    both = [i for i in offline if i in online]
    features = [_compare(name, both, {i: online[i][name] for i in both},
                         {i: offline[i][name] for i in both}, tolerance, examples)
                for name in names]
    if scorer is not None and both:
        import pandas as pd

        started = time.perf_counter()
        on = scorer(pd.DataFrame([online[i] for i in both], columns=names))
        off = scorer(pd.DataFrame([offline[i] for i in both], columns=names))
        features.append(_compare("(score)", both, dict(zip(both, on.tolist(), strict=True)),
                                 dict(zip(both, off.tolist(), strict=True)), tolerance,
                                 examples))
        timings["score"] = time.perf_counter() - started
    return ParityResult(
        since=us_to_datetime(since_us, out.aware), until=us_to_datetime(until_us, out.aware),
        decisions=len(both), features=tuple(features),
        only_offline=sum(1 for i in offline if i not in online),
        only_online=sum(1 for i in online if i not in offline), warm=warmed,
        tolerance=tolerance, seconds=timings)
