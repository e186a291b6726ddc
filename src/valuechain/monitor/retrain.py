"""``valuechain retrain``: a challenger on the recent matured periods, judged against the champion.

When the monitor says the production bundle (the *champion*) has drifted or its matured KPI
moved, :func:`retrain` trains a *challenger* with the existing stages (build, audit, train,
decide, package; library calls, no subprocess) on periods that end at the newest mature
labels, and compares the two on the same recent matured period, one neither has trained on.

The recent-period rule
----------------------
The spec's periods stay the user's: the spec file is never rewritten. The challenger gets the
spec's periods *shifted forward*:

1. ``as_of`` is the extraction time of the challenger's frame (``--as-of``, default the latest
   time in the sources). A decision at ``t`` is mature when ``t + horizon + delay <= as_of``
   (:func:`valuechain.data.pit.is_mature`; ``delay`` is the outcome source's reporting
   delay the build found), so the newest mature decision time is
   ``as_of - horizon - delay``.
2. The last period (the comparison period, ``test`` in train / validation / test) ends at that
   time, floored to a whole number of days after the spec's last period end; it keeps the
   spec's length, or ``recent`` when given.
3. Every earlier period moves by the same offset, so their lengths and the gaps between them
   (the embargo, at least the label horizon) are the spec's: no training label of the
   challenger overlaps its validation or comparison period.

Refused (:class:`~valuechain.errors.DataError`) when the data holds no matured decision after
the spec's last period (nothing new to learn from), or when the comparison period starts
before the champion's last fitting period (its validation) ended plus the embargo (the
champion would be judged on data it was fitted on).

The challenger's stage outputs live in ``<workspace>/retrain/<as-of>/`` (its frame, audit,
runs, decide.json), so the champion's frame and runs stay untouched; its bundle goes into the
project's registry as the next version, in staging.

The comparison
--------------
On the comparison period's rows (mature labels, the challenger's frame), both bundles score
the same feature values (the offline path, bit for bit the served score) and apply their own
policy under the spec's capacity. Per side: ROC AUC, average precision, the realised cost of
its policy per 1,000 decisions and the KPI ``loss_per_1000`` (losses of positives approved,
or reviewed but missed (``1 - catch_rate``), per 1,000 of the false-negative cost approved:
for fraud, chargeback losses per 1,000 USD of approved volume). Each with a 95 % day-block
bootstrap interval, and the paired difference challenger - champion
(:func:`valuechain.evaluate.bootstrap.paired_difference`, same resampled days for both).

Verdict: the money decides. ``challenger`` when the interval of the cost difference lies
below zero, ``champion`` when above, ``tie`` otherwise. With ``promote=True`` a winning
challenger is promoted through :meth:`valuechain.registry.Registry.promote` (every gate must
pass); otherwise the result says why it was not.

>>> from datetime import datetime, timedelta
>>> from valuechain.spec.models import Period
>>> spec = [Period(name="train", start=datetime(2025, 1, 1), end=datetime(2025, 3, 1)),
...         Period(name="test", start=datetime(2025, 5, 1), end=datetime(2025, 5, 16))]
>>> shifted, offset = recent_periods(spec, as_of=datetime(2025, 8, 1, 12),
...                                  horizon=timedelta(days=60))
>>> [(p.name, p.start.date().isoformat(), p.end.date().isoformat()) for p in shifted]
[('train', '2025-01-18', '2025-03-18'), ('test', '2025-05-18', '2025-06-02')]
>>> offset.days
17
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from valuechain.errors import ArtifactError, DataError, SpecError, ValuechainError
from valuechain.spec.loader import LoadedSpec
from valuechain.spec.models import Period

__all__ = ["MetricComparison", "RetrainResult", "compare_bundles", "promotion", "recent_periods",
           "retrain"]

Progress = Callable[[str, float], None]
F64 = npt.NDArray[np.float64]
DAY = timedelta(days=1)
DAY_US = 86_400_000_000
#: (name, higher is better) of every compared metric, in display order.
METRICS: tuple[tuple[str, bool], ...] = (("roc_auc", True), ("average_precision", True),
                                         ("cost_per_1000", False), ("loss_per_1000", False))


# ------------------------------------------------------------------------ periods
def _like(value: datetime, model: datetime) -> datetime:
    """``value`` with the time-zone awareness of ``model`` (naive means UTC)."""
    if model.tzinfo is None and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    if model.tzinfo is not None and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


def recent_periods(periods: list[Period] | tuple[Period, ...], *, as_of: datetime,
                   horizon: timedelta, delay: timedelta = timedelta(0),
                   recent: timedelta | None = None, where: str = "split.periods"
                   ) -> tuple[list[Period], timedelta]:
    """The spec's periods shifted forward to end at the newest mature labels.

    Parameters
    ----------
    periods : sequence of Period
        The spec's periods (``split.periods``), oldest first; the last one is compared on.
    as_of : datetime
        Extraction time of the data.
    horizon, delay : timedelta
        Label horizon and the outcome's reporting delay: mature when
        ``t + horizon + delay <= as_of``.
    recent : timedelta, optional
        Length of the comparison (last) period; default the spec's.
    where : str
        Where the periods come from, for error messages.

    Returns
    -------
    (list of Period, timedelta)
        The shifted periods and the offset of the earlier periods (whole days).

    Raises
    ------
    DataError
        When no mature decision lies after the spec's last period.
    SpecError
        When there are fewer than two periods or ``recent`` is under one day.
    """
    if len(periods) < 2:
        raise SpecError(f"{where}: retrain shifts the spec's train/validation/test periods "
                        f"forward, but the spec has {len(periods)}. Declare at least train "
                        "and test periods (docs/evaluation.md).")
    if recent is not None and recent < DAY:
        raise SpecError(f"`recent` {recent}: the comparison period must last at least one "
                        "day, e.g. '30d'.")
    last = periods[-1]
    newest = _like(as_of, last.end) - horizon - delay
    whole = math.floor((newest - last.end) / DAY)
    if whole <= 0:
        raise DataError(
            f"{where}: the spec's last period '{last.name}' ends {last.end.isoformat()}, and "
            f"with data as of {as_of.isoformat()} the newest mature decision is at "
            f"{newest.isoformat()} (as_of - horizon {horizon} - outcome delay {delay}): no "
            "decision after the spec's periods has a mature label yet, so a challenger would "
            "learn nothing the champion did not. Retrain with data extracted later (or a "
            "later `as_of`).")
    end = last.end + whole * DAY
    length = recent if recent is not None else last.end - last.start
    start = end - length
    offset = start - last.start
    shifted = [Period(name=p.name, start=p.start + offset, end=p.end + offset)
               for p in periods[:-1]]
    shifted.append(Period(name=last.name, start=start, end=end))
    return shifted, offset


# ------------------------------------------------------------------------ comparison
@dataclass(frozen=True)
class MetricComparison:
    """One metric for the champion and the challenger, and their paired difference.

    ``difference`` is challenger - champion; ``better`` says who the paired interval favours
    (``"tie"`` when it holds zero).
    """

    metric: str
    higher_is_better: bool
    champion: float
    champion_low: float
    champion_high: float
    challenger: float
    challenger_low: float
    challenger_high: float
    difference: float
    difference_low: float
    difference_high: float
    better: Literal["challenger", "champion", "tie"]

    def to_json(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v)
                for k, v in self.__dict__.items()}


def _cost_per_1000(cost: F64, labels: F64, sample_weight: F64 | None = None) -> float:
    w = np.ones(len(cost)) if sample_weight is None else np.asarray(sample_weight, float)
    total = float(w.sum())
    return 1000.0 * float((cost * w).sum()) / total if total > 0 else float("nan")


def _loss_per_1000(loss: F64, labels: F64, exposure: F64,
                   sample_weight: F64 | None = None) -> float:
    w = np.ones(len(loss)) if sample_weight is None else np.asarray(sample_weight, float)
    approved = float((exposure * w).sum())
    return 1000.0 * float((loss * w).sum()) / approved if approved > 0 else float("nan")


def compare_bundles(champion: Any, challenger: Any, rows: pd.DataFrame, *, time_column: str,
                    labels: npt.ArrayLike, costs: Any, seed: int = 0
                    ) -> tuple[tuple[MetricComparison, ...], dict[str, Any]]:
    """Score ``rows`` with both bundles, apply each one's policy, compare with intervals.

    Parameters
    ----------
    champion, challenger : Bundle
        The two bundles (:class:`valuechain.registry.Bundle`).
    rows : DataFrame
        The comparison period's decisions: every feature of both bundles and ``time_column``.
    time_column : str
        Decision time column (capacity periods and the bootstrap's day blocks).
    labels : array-like
        The mature label (0/1) of each row.
    costs : CostModel
        Per-row costs and the review's catch rate / friction (as the decide stage prices).
    seed : int
        Seed of the bootstrap.

    Returns
    -------
    (tuple of MetricComparison, dict)
        The metrics in :data:`METRICS` order, and each side's action counts.
    """
    from valuechain.decide.price import Decisions, realised_cost
    from valuechain.evaluate.bootstrap import block_bootstrap, paired_difference, verdict
    from valuechain.policy.capacity import apply_with_capacity, capacity_period

    y = np.asarray(labels, dtype=np.float64)
    us = pd.to_datetime(rows[time_column]).to_numpy().astype("datetime64[us]").astype(np.int64)
    days = us // DAY_US
    sides: dict[str, dict[str, Any]] = {}
    for name, bundle in (("champion", champion), ("challenger", challenger)):
        missing = [c for c in bundle.feature_names if c not in rows.columns]
        if missing:
            raise ArtifactError(
                f"bundle {bundle.version} reads {missing}, which the challenger's frame does "
                "not hold: the spec's features changed since it was packaged. A comparison "
                "needs both models scored on the same features; retrain after restoring them, "
                "or compare by hand.")
        scores = bundle.score(rows[list(bundle.feature_names)])
        cap = bundle.capacity
        if cap is not None:
            _, limit, per_us, overflow = cap
            periods = capacity_period(us, per_us)
        else:
            limit, overflow, periods = None, "approve", days
        actions = np.asarray(apply_with_capacity(bundle.policy, scores, periods, limit,
                                                 overflow), dtype=object)
        decided = Decisions(scores=scores, labels=y, costs=costs, periods=periods, days=days)
        cost = realised_cost(decided, actions)
        fn = np.broadcast_to(np.asarray(costs.false_negative, np.float64), y.shape)
        catch = np.broadcast_to(np.asarray(costs.catch_rate, np.float64), y.shape)
        approve, review = actions == "approve", actions == "review"
        loss = fn * y * (approve + review * (1.0 - catch))
        exposure = fn * approve
        sides[name] = {"scores": scores, "cost": cost, "loss": loss, "exposure": exposure,
                       "actions": {a: int((actions == a).sum()) for a in
                                   ("approve", "review", "decline")}}
    a, b = sides["challenger"], sides["champion"]
    out = []
    for metric, higher in METRICS:
        if metric in ("roc_auc", "average_precision"):
            fn_m: Any = metric
            args_a: tuple[Any, ...] = (a["scores"], y)
            args_b: tuple[Any, ...] = (b["scores"], y)
        elif metric == "cost_per_1000":
            fn_m, args_a, args_b = _cost_per_1000, (a["cost"], y), (b["cost"], y)
        else:
            fn_m = _loss_per_1000
            args_a, args_b = (a["loss"], y, a["exposure"]), (b["loss"], y, b["exposure"])
        ia = block_bootstrap(fn_m, days, *args_a, seed=seed)
        ib = block_bootstrap(fn_m, days, *args_b, seed=seed)
        diff = paired_difference(fn_m, days, args_a[0], args_b[0], y, *args_a[2:],
                                 seed=seed) if len(args_a) == 2 else _paired_ratio(
            days, a, b, y, seed)
        won = verdict(diff, higher_is_better=higher)
        better: Literal["challenger", "champion", "tie"] = (
            "challenger" if won == "beats" else "champion" if won == "loses" else "tie")
        out.append(MetricComparison(metric, higher, ib.value, ib.low, ib.high, ia.value,
                                    ia.low, ia.high, diff.value, diff.low, diff.high, better))
    return tuple(out), {k: v["actions"] for k, v in sides.items()}


def _paired_ratio(days: npt.NDArray[np.int64], a: dict[str, Any], b: dict[str, Any], y: F64,
                  seed: int) -> Any:
    """Paired day-block difference of the KPI ratio, each side with its own denominator.

    :func:`~valuechain.evaluate.bootstrap.paired_difference` resamples the same days for both
    sides; its "scores" here are row numbers into both sides' columns stacked (side a's rows
    ``0..n-1``, side b's ``n..2n-1``), so one metric reads each side's loss and exposure.
    """
    from valuechain.evaluate.bootstrap import paired_difference

    n = len(y)
    loss = np.concatenate([a["loss"], b["loss"]])
    exposure = np.concatenate([a["exposure"], b["exposure"]])

    def kpi(rows: F64, labels: F64, sample_weight: F64 | None = None) -> float:
        k = rows.astype(np.int64)
        return _loss_per_1000(loss[k], labels, exposure[k], sample_weight)

    index = np.arange(n, dtype=np.float64)
    return paired_difference(kpi, days, index, index + n, y, seed=seed)


# ------------------------------------------------------------------------ the result
@dataclass(frozen=True)
class RetrainResult:
    """What :func:`retrain` did: the challenger, the comparison, the verdict, the promotion.

    Attributes
    ----------
    as_of : datetime
        Extraction time of the challenger's frame.
    spec_periods, periods : tuple of Period
        The spec's periods and the challenger's (shifted by ``offset``).
    champion, challenger : str
        Registry versions (the challenger is packaged in staging).
    comparison : Period
        The period both are compared on: the challenger's last period, after the champion's
        last fitting period plus the embargo.
    rows, positives, days : int
        Mature decisions, positives and day blocks in the comparison period.
    metrics : tuple of MetricComparison
        ROC AUC, average precision, realised cost of each one's policy per 1,000 decisions,
        the KPI ``loss_per_1000``.
    verdict : {"challenger", "champion", "tie"}
        Who the paired interval of the policy cost favours.
    promoted : bool
        Whether the challenger went to production (only with ``promote=True``).
    reasons : tuple of str
        Why (not) promoted, in plain words.
    """

    as_of: datetime
    spec_periods: tuple[Period, ...]
    periods: tuple[Period, ...]
    offset: timedelta
    workspace: Path
    run_id: str
    champion: str
    challenger: str
    created: bool
    comparison: Period
    champion_fitted_until: datetime | None
    rows: int
    positives: int
    days: int
    metrics: tuple[MetricComparison, ...]
    actions: dict[str, dict[str, int]]
    verdict: Literal["challenger", "champion", "tie"]
    promote_requested: bool
    promoted: bool
    reasons: tuple[str, ...]
    gates: tuple[Any, ...] = field(default=())
    seconds: float = 0.0

    def metric(self, name: str) -> MetricComparison:
        """The comparison of one metric by name."""
        for m in self.metrics:
            if m.metric == name:
                return m
        raise SpecError(f"`name` {name!r}: expected one of "
                        f"{', '.join(m.metric for m in self.metrics)}.")

    def to_json(self) -> dict[str, Any]:
        """Machine-readable result (``valuechain retrain --json``)."""
        def period(p: Period) -> dict[str, str]:
            return {"name": p.name, "start": p.start.isoformat(), "end": p.end.isoformat()}

        return {
            "as_of": self.as_of.isoformat(),
            "spec_periods": [period(p) for p in self.spec_periods],
            "periods": [period(p) for p in self.periods],
            "offset_days": self.offset / DAY,
            "workspace": str(self.workspace), "run_id": self.run_id,
            "champion": self.champion, "challenger": self.challenger,
            "created": self.created, "comparison": period(self.comparison),
            "champion_fitted_until": (self.champion_fitted_until.isoformat()
                                      if self.champion_fitted_until else None),
            "rows": self.rows, "positives": self.positives, "days": self.days,
            "metrics": [m.to_json() for m in self.metrics], "actions": self.actions,
            "verdict": self.verdict, "promote_requested": self.promote_requested,
            "promoted": self.promoted, "reasons": list(self.reasons),
            "gates": [g.to_json() for g in self.gates], "seconds": round(self.seconds, 3),
        }


# ------------------------------------------------------------------------ the stage
def _step(progress: Progress | None, label: str, fraction: float) -> None:
    if progress is not None:
        progress(label, fraction)


def _sub(progress: Progress | None, label: str, lo: float, hi: float) -> Progress | None:
    if progress is None:
        return None

    def inner(stage: str, fraction: float) -> None:
        progress(f"{label}: {stage}", lo + (hi - lo) * max(0.0, min(1.0, fraction)))
    return inner


def _with_split(loaded: LoadedSpec, periods: list[Period], workspace: Path) -> LoadedSpec:
    """``loaded`` with other periods and workspace; the spec file itself is not touched."""
    spec = loaded.spec
    assert spec.split is not None
    update = {"split": spec.split.model_copy(update={"periods": list(periods)}),
              "project": spec.project.model_copy(update={"workspace": str(workspace)})}
    return replace(loaded, spec=spec.model_copy(update=update))


def _champion_fitted_until(bundle: Any) -> datetime | None:
    """End of the champion's last fitting period (validation, else train) from its metrics."""
    import json

    try:
        metrics = json.loads((Path(bundle.path) / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    periods = (metrics.get("splits") or {}).get("periods") or []
    ends = {p.get("name"): p.get("end") for p in periods if isinstance(p, dict)}
    end = ends.get("validation") or ends.get("train")
    return datetime.fromisoformat(end) if isinstance(end, str) else None


def _stage(name: str, periods: list[Period], call: Callable[[], Any]) -> Any:
    """Run one stage for the challenger; say which periods a refusal is about."""
    try:
        return call()
    except ValuechainError as err:
        spans = ", ".join(f"{p.name} {p.start.date()}..{p.end.date()}" for p in periods)
        raise type(err)(f"retrain ({name} of the challenger on the shifted periods {spans}): "
                        f"{err}") from err


def promotion(registry: Any, version: str, verdict: str, *, promote: bool
              ) -> tuple[bool, str, tuple[Any, ...]]:
    """Promote ``version`` through the registry's gates only when asked and when it won.

    Parameters
    ----------
    registry : Registry
        The project's registry.
    version : str
        The challenger's version (in staging).
    verdict : {"challenger", "champion", "tie"}
        Who the comparison favours.
    promote : bool
        Whether promotion was requested.

    Returns
    -------
    (bool, str, tuple of Gate)
        Whether it went to production, why (not), and its gates as evaluated.
    """
    from valuechain.registry import PromotionError

    gates = tuple(registry.gates(version))
    failing = [g.name for g in gates if not g.passed]
    if not promote:
        return False, (f"{version} stays in staging (promotion not requested; "
                       + (f"gates failing: {', '.join(failing)})" if failing else
                          "its gates pass)")), gates
    if verdict != "challenger":
        return False, (f"not promoted: {version} does not beat the champion on the recent "
                       "matured period (the money decides); it stays in staging"), gates
    try:
        done = registry.promote(version)
    except PromotionError as err:
        return False, f"not promoted: {err}", gates
    return True, (f"promoted {version} to production through its gates (previous: "
                  f"{done.previous})"), tuple(done.gates)


def retrain(spec: Any, *, as_of: datetime | None = None, recent: timedelta | None = None,
            promote: bool = False, seed: int = 0, progress: Progress | None = None
            ) -> RetrainResult:
    """Train a challenger on the recent matured periods; compare it with the champion.

    Parameters
    ----------
    spec : str, os.PathLike or LoadedSpec
        The project; its registry must hold a production version (the champion).
    as_of : datetime, optional
        Extraction time of the challenger's frame; default the latest time in the sources.
    recent : timedelta, optional
        Length of the comparison period; default the spec's last period's length.
    promote : bool
        Promote the challenger through the registry's gates when it wins.
    seed : int
        Seed of the models and the bootstrap.
    progress : callable, optional
        Called with ``(stage label, fraction done)``.

    Returns
    -------
    RetrainResult

    Raises
    ------
    ArtifactError
        No production version to challenge.
    DataError
        No matured decision after the spec's periods, or the comparison period would overlap
        what the champion was fitted on.
    SpecError
        The spec has fewer than two periods, or no ``value`` section (costs).

    Examples
    --------
    >>> result = retrain("examples/fraud", recent=timedelta(days=30))  # doctest: +SKIP
    >>> result.verdict, result.metric("average_precision").difference  # doctest: +SKIP
    ('challenger', 0.12)
    """
    from valuechain import api
    from valuechain.decide.stage import run_decisions
    from valuechain.registry import Registry, default_registry, package
    from valuechain.train.result import TrainResult

    started = time.perf_counter()
    loaded = api.load_spec(spec)
    s = loaded.spec
    if s.split is None or len(s.split.periods) < 2:
        raise SpecError(f"{loaded.where('split', 'periods')}: retrain shifts the spec's train/"
                        "validation/test periods forward; declare them (at least train and "
                        "test, docs/evaluation.md).")
    if s.value is None:
        raise SpecError(f"{loaded.where('value')}: retrain compares the policies' costs; "
                        "declare `value.costs` (docs/policy.md).")
    if recent is not None and recent < DAY:
        raise SpecError(f"`recent` {recent}: the comparison period must last at least one "
                        "day, e.g. '30d'.")
    registry = Registry(default_registry(loaded))
    info = registry.production() if registry.root.exists() else None
    if info is None:
        raise ArtifactError(
            f"no version is in production in the registry at {registry.root}: retrain "
            "challenges the production bundle (the champion). Package and promote one first "
            f"(`valuechain package --spec {loaded.root}`, `valuechain promote VERSION`).")
    champion = registry.load(info.version)
    _step(progress, "champion " + info.version, 0.02)

    stamp = as_of.strftime("as-of-%Y%m%dT%H%M%S") if as_of is not None else "latest"
    workspace = (loaded.workspace / "retrain" / stamp).resolve()
    spec_periods = list(s.split.periods)
    probe = _with_split(loaded, spec_periods, workspace)
    built = _stage("build", spec_periods, lambda: api.build(
        probe, as_of=as_of, progress=_sub(progress, "build", 0.02, 0.15)))
    frame_as_of = datetime.fromisoformat(built.manifest["as_of"])
    delay = timedelta(seconds=float((built.manifest.get("label_delay") or {}).get(
        "seconds") or 0.0))
    embargo = s.split.embargo if s.split.embargo is not None else s.label.horizon
    periods, offset = recent_periods(spec_periods, as_of=frame_as_of, horizon=s.label.horizon,
                                     delay=delay, recent=recent,
                                     where=loaded.where("split", "periods"))
    comparison = periods[-1]
    fitted = _champion_fitted_until(champion)
    if fitted is not None and _like(comparison.start, fitted) < fitted + embargo:
        raise DataError(
            f"the comparison period {comparison.start.isoformat()}..{comparison.end.isoformat()}"
            f" starts before the champion {info.version}'s last fitting period ended "
            f"({fitted.isoformat()}) plus the embargo ({embargo}): the champion would be "
            "judged on data it was fitted on. Use a shorter `recent`, or retrain when more "
            "labels have matured.")
    challenger = _with_split(loaded, periods, workspace)
    _stage("build", periods, lambda: api.build(
        challenger, as_of=as_of, progress=_sub(progress, "build", 0.15, 0.3)))
    _stage("audit", periods, lambda: api.audit(
        challenger, as_of=as_of, seed=seed, progress=_sub(progress, "audit", 0.3, 0.4)))
    run = _stage("train", periods, lambda: api.train(
        challenger, seed=seed, as_of=as_of, progress=_sub(progress, "train", 0.4, 0.75)))
    kind: Any = champion.policy.kind  # the champion's policy family
    _stage("decide", periods, lambda: api.decide(
        challenger, kind=kind, seed=seed, progress=_sub(progress, "decide", 0.75, 0.85)))
    packaged = _stage("package", periods, lambda: package(challenger,
                                                          registry=registry.root))
    _step(progress, "compare", 0.9)
    new = registry.load(packaged.version)
    run_dir = challenger.workspace / "runs" / run.run_id
    trained = TrainResult.load(run_dir, root=challenger.root)
    per_us = (new.capacity[2] if new.capacity is not None else DAY_US)
    decisions, _ = run_decisions(challenger, trained, run_dir, "test", per_us)
    ids = pd.read_parquet(run_dir / "predictions_test.parquet", columns=["decision_id"])
    time_col = trained.frame.time_column or built.manifest["frame"]["time_column"]
    wanted = sorted({*champion.feature_names, *new.feature_names, time_col, "decision_id"})
    table = pq.read_table(challenger.workspace / "build" / "frame.parquet", columns=wanted)
    table = table.filter(pc.is_in(pc.cast(table["decision_id"], "string"),
                                  value_set=pa.array(ids["decision_id"].astype(str))))
    rows = table.to_pandas()
    rows["decision_id"] = rows["decision_id"].astype(str)
    rows = rows.set_index("decision_id").loc[ids["decision_id"].astype(str)].reset_index()
    metrics, actions = compare_bundles(champion, new, rows, time_column=time_col,
                                       labels=decisions.labels, costs=decisions.costs,
                                       seed=seed)
    cost = next(m for m in metrics if m.metric == "cost_per_1000")
    verdict = cost.better
    ccy = s.value.currency or ""
    money = (f"policy cost per 1,000 decisions {cost.challenger:,.1f} vs {cost.champion:,.1f}"
             f"{' ' + ccy if ccy else ''}, difference {cost.difference:+,.1f} "
             f"[{cost.difference_low:+,.1f}, {cost.difference_high:+,.1f}]")
    reasons = [{"challenger": f"the challenger {packaged.version} wins: {money}",
                "champion": f"the champion {info.version} holds: {money}",
                "tie": f"no clear winner (the interval holds zero): {money}"}[verdict]]
    promoted, why, gates = promotion(registry, packaged.version, verdict, promote=promote)
    reasons.append(why)
    _step(progress, "done", 1.0)
    return RetrainResult(
        as_of=frame_as_of, spec_periods=tuple(spec_periods), periods=tuple(periods),
        offset=offset, workspace=workspace, run_id=run.run_id, champion=info.version,
        challenger=packaged.version, created=packaged.created, comparison=comparison,
        champion_fitted_until=fitted, rows=len(rows),
        positives=int(np.asarray(decisions.labels).sum()),
        days=len(np.unique(pd.to_datetime(rows[time_col]).dt.floor("D"))),
        metrics=metrics, actions=actions, verdict=verdict, promote_requested=promote,
        promoted=promoted, reasons=tuple(reasons), gates=tuple(gates),
        seconds=time.perf_counter() - started)
