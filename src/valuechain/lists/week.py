"""The week's list: who customer success calls this Monday, and who is held out.

:func:`week_list` makes the list of one Monday of the spec's schedule:

1. **scores** — the features of every customer active at that Monday are computed by the
   build's engine (the spec's plan with the schedule narrowed to that one Monday, so the
   point-in-time rules are the training frame's; the Monday need not have a mature label)
   and scored by the latest training run's best candidate, calibrated. A run, not a
   packaged bundle: the list is a batch decision made next to the workspace, and the run is
   what ``decide`` priced (``valuechain package`` bundles the same model for serving);
2. **priority** — the calibrated risk, or, when an uplift model is available
   (``<workspace>/uplift/latest``, :func:`valuechain.uplift.load_uplift`), the expected value
   of a call ``EV = uplift * value - cost``: ``uplift`` the model's predicted reduction of the
   churn probability, ``value`` the spec's ``value.costs.false_negative`` (what a lost
   customer costs) and ``cost`` its ``value.costs.review`` (one call). Ranked by EV, only
   customers with ``EV > 0`` are listed;
3. **eligibility** — customers listed (treated or control) within ``outreach.cooldown``
   before the Monday (the contact history, :class:`~valuechain.lists.history.AssignmentLog`)
   are not listed again;
4. **size** — never more than the capacity (``value.capacity``); ranked by risk, the
   run's decided top-N policy (``decide --kind top_n``) sets a smaller size or a minimum
   score when present;
5. **control** — ``outreach.control_share`` of the list is held out at random, stratified by
   score bin (:func:`~valuechain.lists.control.stratified_control`, seeded with
   ``outreach.seed`` and the week);
6. **output** — the assignment is logged (one transaction; the same week again is
   idempotent, a different draw refused), then the list is written atomically as Parquet
   and CSV: ``week``, the key, ``rank``, ``score``, ``uplift``, ``expected_value``,
   ``score_bin`` (the stratum: bin among the listed), ``population_decile`` (decile of the
   risk among every active customer that Monday, 1 = riskiest), ``group``, ``action`` and
   ``reasons`` (the model's top three contributions,
   when the candidate gives contributions).
"""

from __future__ import annotations

import importlib
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from valuechain.errors import ArtifactError, DataError, SpecError
from valuechain.io import atomic_path, write_parquet
from valuechain.lists.control import control_bins, control_seed, stratified_control
from valuechain.lists.history import Assignment, AssignmentLog
from valuechain.spec.loader import LoadedSpec
from valuechain.spec.models import Outreach, SchedulePoints

__all__ = ["UpliftLike", "WeekList", "list_actions", "outreach_of", "week_list"]

F64 = npt.NDArray[np.float64]


class UpliftLike(Protocol):
    """What the list needs of an uplift model (helper UPLIFT's ``UpliftModel``)."""

    learner: str
    features: list[str]

    def predict(self, frame: pd.DataFrame) -> npt.NDArray[Any]: ...


def outreach_of(loaded: LoadedSpec) -> Outreach:
    """The spec's ``outreach`` block, checked against ``decision.actions``."""
    spec = loaded.spec
    block = spec.outreach
    if block is None:
        raise SpecError(f"{loaded.path}: a weekly list needs an `outreach` block, e.g. "
                        "`outreach: {action: call, control_share: 0.2, stratify_bins: 10, "
                        "cooldown: 35d, seed: 7}` (the action the capacity limits, the random "
                        "control share, the score bins it is stratified by, the time before a "
                        "listed customer may be listed again).")
    if block.action not in spec.decision.actions:
        raise SpecError(f"{loaded.where('outreach', 'action')}: `{block.action}` is not one of "
                        f"`decision.actions` {spec.decision.actions}; name the action a listed "
                        "customer receives (e.g. `call`).")
    return block


def list_actions(loaded: LoadedSpec) -> tuple[str, str] | None:
    """``(action, other)`` from the spec: the outreach action and the other decision action.

    ``None`` without an ``outreach`` block (the policy's own role names are used).
    """
    spec = loaded.spec
    if spec.outreach is None:
        return None
    block = outreach_of(loaded)
    others = [a for a in spec.decision.actions if a != block.action]
    return block.action, (others[0] if others else f"no_{block.action}")


@dataclass(frozen=True)
class WeekList:
    """One week's list (also written as ``<stem>.parquet`` and ``<stem>.csv``)."""

    week: str
    key: str
    rows: int
    treated: int
    control: int
    active: int
    eligible: int
    in_cooldown: int
    capacity: int
    ranked_by: str  # "risk" or "expected_value"
    sized_by: str
    run_id: str
    candidate: str
    uplift: str | None
    logged: int
    parquet: Path
    csv: Path
    seconds: float
    by_bin: list[dict[str, int]] = field(default_factory=list)
    table: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        """Plain data (``valuechain list --json``)."""
        return {"week": self.week, "key": self.key, "rows": self.rows,
                "treated": self.treated, "control": self.control, "active": self.active,
                "eligible": self.eligible, "in_cooldown": self.in_cooldown,
                "capacity": self.capacity, "ranked_by": self.ranked_by,
                "sized_by": self.sized_by, "run_id": self.run_id,
                "candidate": self.candidate, "uplift": self.uplift, "logged": self.logged,
                "parquet": str(self.parquet), "csv": str(self.csv),
                "seconds": round(self.seconds, 2), "by_bin": self.by_bin}

    def lines(self) -> list[str]:
        """What ``valuechain list`` prints."""
        by = "expected value of a call" if self.ranked_by == "expected_value" else "risk"
        out = [f"week {self.week}: {self.rows:,} listed of {self.active:,} active "
               f"({self.eligible:,} eligible, {self.in_cooldown:,} in cooldown), capacity "
               f"{self.capacity:,} a week; ranked by {by} ({self.sized_by})",
               f"  {self.treated:,} to act on, {self.control:,} held out as control "
               f"(stratified by score bin; run {self.run_id}, {self.candidate}"
               + (f", uplift {self.uplift}" if self.uplift else "") + ")",
               "  per bin (treated/control): " + ", ".join(
                   f"{b['bin']}: {b['treated']}/{b['control']}" for b in self.by_bin),
               f"  written: {self.parquet} and {self.csv}"
               + ("" if self.logged else " (assignment already logged: unchanged)")]
        return out


# ---------------------------------------------------------------- the week's scores


def _schedule_time(loaded: LoadedSpec, week: str) -> datetime:
    dp = loaded.spec.decision_points
    if not isinstance(dp, SchedulePoints):
        raise SpecError(f"{loaded.where('decision_points')}: a weekly list needs scheduled "
                        "decision points (`decision_points.schedule`), e.g. every active "
                        "customer every Monday.")
    try:
        day = datetime.fromisoformat(week)
    except ValueError as exc:
        raise DataError(f"`week` {week!r}: expected an ISO date such as 2025-06-02.") from exc
    sched = dp.schedule
    start = sched.start
    if (start.tzinfo is None) != (day.tzinfo is None):
        day = day.replace(tzinfo=start.tzinfo)
    t = day.replace(hour=start.hour, minute=start.minute, second=start.second,
                    microsecond=start.microsecond) if day.time() == datetime.min.time() else day
    steps = (t - start) / sched.every
    if t < start or abs(steps - round(steps)) > 1e-9:
        first = start + max(0, int(np.ceil((t - start) / sched.every))) * sched.every
        raise DataError(f"`week` {week}: not a decision time of the schedule (every "
                        f"{sched.every.days}d from {start.isoformat()}); the next one is "
                        f"{first.date().isoformat()}.")
    return t


def week_frame(loaded: LoadedSpec, at: datetime) -> pd.DataFrame:
    """The features of every decision point at ``at`` (label maturity not required)."""
    from valuechain.data.build import select_engine
    from valuechain.data.plan import SchedulePlan, make_plan

    plan = make_plan(loaded)
    assert isinstance(plan.points, SchedulePlan)
    plan = replace(plan, points=replace(plan.points, start=at, end=at))
    out = select_engine(loaded).execute(plan)
    t_us = int(pd.Timestamp(at).value // 1000)
    if t_us > out.as_of_us:
        end = pd.Timestamp(out.as_of_us, unit="us")
        raise DataError(f"`week` {at.date()}: the sources end at {end}; a list scores what was "
                        "known at the Monday, so extract the data up to it first.")
    frame: pd.DataFrame = out.frame.to_pandas()
    return frame.drop(columns=[c for c in frame.columns if c.startswith("__")])


@dataclass(frozen=True)
class _Model:
    run_id: str
    candidate: str
    model: Any
    calibrator: Any
    names: tuple[str, ...]
    numeric: tuple[str, ...]
    run_dir: Path


def _run_model(loaded: LoadedSpec) -> _Model:
    from valuechain.models import Calibrator, load_candidate
    from valuechain.models.persist import read_json, read_manifest
    from valuechain.train.provenance import fix_command
    from valuechain.train.result import TrainResult
    from valuechain.train.runs import latest_run

    runs = loaded.workspace / "runs"
    run_dir = latest_run(runs, root=loaded.root)
    if run_dir is None:
        raise ArtifactError(f"{runs}: no training run yet; run `{fix_command(loaded.root)}` "
                            "(`valuechain train`) first: the list ranks by the run's model.")
    run = TrainResult.load(run_dir, root=loaded.root)
    best = run.best_candidate
    folder = run_dir / "candidates" / best
    inputs, _ = read_manifest(folder)
    calibrator = Calibrator.from_dict(read_json(run_dir / "calibrators" / f"{best}.json"))
    return _Model(run.run_id, best, load_candidate(folder), calibrator, inputs.columns,
                  inputs.numeric, run_dir)


def _reasons(m: _Model, frame: pd.DataFrame, top: int = 3) -> list[str]:
    from valuechain.registry.fast import RowScorer

    values = RowScorer(m.model, m.calibrator, m.names, m.numeric).contributions(frame)
    if values is None or not len(frame):
        return [""] * len(frame)
    from valuechain.models import LightGBM

    if isinstance(m.model, LightGBM):
        values = values[:, :-1]
    out = []
    for row in values:
        order = np.argsort(-row, kind="stable")[:top]
        out.append(", ".join(m.names[j] for j in order if row[j] > 0))
    return out


def load_latest_uplift(loaded: LoadedSpec) -> tuple[UpliftLike, str] | None:
    """The latest uplift model of the workspace, or None (no run, or no uplift package)."""
    pointer = loaded.workspace / "uplift" / "latest"
    if not pointer.exists():
        return None
    try:  # helper package: present once `valuechain uplift` is installed
        load_uplift = importlib.import_module("valuechain.uplift").load_uplift
    except (ImportError, AttributeError):
        return None
    name = pointer.read_text(encoding="utf-8").strip()
    model: UpliftLike = load_uplift(pointer.parent / name)
    return model, name


# ---------------------------------------------------------------- the list


def _cooldown_start(at: datetime, cooldown: timedelta) -> str:
    """The first listing date still in cooldown at ``at``: lists dated after
    ``at - cooldown`` (a list exactly ``cooldown`` before is over it).

    >>> _cooldown_start(datetime(2025, 6, 16), timedelta(days=35))
    '2025-05-13'
    """
    if cooldown <= timedelta(0):
        return at.date().isoformat()
    return ((at - cooldown).date() + timedelta(days=1)).isoformat()


def _policy_size(m: _Model, capacity: int) -> tuple[int, float | None, str]:
    from valuechain.policy import TopN, load_policy

    path = m.run_dir / "policy.yaml"
    if path.exists():
        policy = load_policy(path)
        if isinstance(policy, TopN):
            return (min(policy.n, capacity), policy.min_score,
                    f"the decided top-{policy.n} policy"
                    + (f", risk >= {policy.min_score:.3g}" if policy.min_score else ""))
    return capacity, None, "the capacity"


def week_list(
    loaded: LoadedSpec,
    week: str,
    *,
    out: Path | None = None,
    uplift: UpliftLike | None = None,
    use_policy: bool = True,
    rank: str = "auto",
) -> WeekList:
    """Make, log and write the list of ``week`` (a Monday of the schedule).

    Parameters
    ----------
    loaded : LoadedSpec
        The project; needs ``outreach``, ``value.capacity`` and a training run.
    week : str
        ISO date of the Monday, e.g. ``"2025-06-02"``.
    out : Path, optional
        The list file (``.parquet`` or ``.csv``; the other format is written beside it);
        default ``<workspace>/lists/<week>.parquet`` and ``.csv``.
    uplift : UpliftLike, optional
        An uplift model to rank by expected value; default the workspace's latest
        (``valuechain uplift``) when there is one, else rank by risk.
    use_policy : bool, default True
        Ranked by risk, apply the run's decided top-N policy (size, minimum score) when
        there is one; otherwise list up to the capacity.
    rank : {"auto", "risk", "value"}
        ``auto``: by the expected value of a call when an uplift model is available, else by
        risk; ``risk``: by risk even with an uplift model (e.g. when ``valuechain uplift``
        finds its list worse than the risk-ranked one); ``value``: an uplift model is
        required.

    Returns
    -------
    WeekList

    Raises
    ------
    SpecError
        Without ``outreach`` or ``value.capacity``, or a schedule.
    DataError
        When the week is not on the schedule or after the data, or the week already has a
        different assignment.
    ArtifactError
        Without a training run.
    """
    from valuechain.train.context import row_costs, spec_capacity

    started = time.perf_counter()
    block = outreach_of(loaded)
    actions = list_actions(loaded)
    assert actions is not None
    found = spec_capacity(loaded)
    if found is None:
        raise SpecError(f"{loaded.where('value')}: a list needs `value.capacity` (e.g. "
                        f"`{block.action}: {{limit: 200, per: 7d}}`): never more than the "
                        "team can call.")
    capacity = int(found[1].limit)
    at = _schedule_time(loaded, week)
    week_iso = at.date().isoformat()
    m = _run_model(loaded)
    frame = week_frame(loaded, at)
    dp = loaded.spec.decision_points
    assert isinstance(dp, SchedulePoints)
    key = dp.schedule.key
    if frame.empty:
        raise DataError(f"`week` {week_iso}: no active customer at that Monday in "
                        f"`{dp.schedule.population}`.")
    score = np.asarray(m.calibrator.apply(np.asarray(m.model.predict(frame), np.float64)),
                       dtype=np.float64)
    if rank not in ("auto", "risk", "value"):
        raise DataError(f"`rank` {rank!r}: expected auto, risk or value.")
    uplift_name: str | None = None
    if rank == "risk":
        uplift = None
    elif uplift is None:
        latest = load_latest_uplift(loaded)
        if latest is not None:
            uplift, uplift_name = latest
    else:
        uplift_name = getattr(uplift, "learner", "given")
    if rank == "value" and uplift is None:
        raise ArtifactError(f"{loaded.workspace / 'uplift'}: `rank` value needs an uplift "
                            "model; run `valuechain uplift --spec DIR` first (or rank by risk).")
    effect: F64 = np.full(len(frame), np.nan)
    ev: F64 = np.full(len(frame), np.nan)
    if uplift is not None:
        effect = np.asarray(uplift.predict(frame), dtype=np.float64)
        value = row_costs(loaded, frame, "false_negative")
        cost = row_costs(loaded, frame, "review")
        if value is None:
            raise SpecError(f"{loaded.where('value', 'costs')}: ranking by the expected value "
                            "of a call needs `false_negative` (what a lost customer costs).")
        ev = effect * np.nan_to_num(value) - (np.nan_to_num(cost) if cost is not None else 0.0)
    keys = frame[key].astype(str).to_numpy()
    log = AssignmentLog(loaded.workspace / "lists" / "assignments.sqlite")
    existing = log.week(week_iso)
    recent = log.listed_between(_cooldown_start(at, block.cooldown), week_iso)
    cooling = np.isin(keys, list(recent)) if recent else np.zeros(len(keys), bool)
    ranked_by = "expected_value" if uplift is not None else "risk"
    priority = ev if uplift is not None else score
    eligible = ~cooling
    size, min_score, sized_by = (_policy_size(m, capacity) if use_policy and uplift is None
                                 else (capacity, None, "the capacity"))
    if uplift is not None:
        eligible &= ev > 0
        sized_by = "the capacity, expected value > 0"
    if min_score is not None:
        eligible &= score >= min_score
    idx = np.flatnonzero(eligible)
    order = idx[np.lexsort((keys[idx], -priority[idx]))][:max(size, 0)]
    assert len(order) <= capacity
    n = len(order)
    control = stratified_control(n, block.control_share, block.stratify_bins,
                                 np.random.default_rng(control_seed(block.seed, week_iso)))
    bins = control_bins(n, block.stratify_bins) + 1
    # decile of each score among every active customer of the week (1 = the riskiest tenth)
    population = np.empty(len(score), dtype=np.int64)
    population[np.lexsort((keys, -score))] = control_bins(len(score), 10) + 1
    table = pd.DataFrame({
        "week": week_iso, key: frame[key].to_numpy()[order],
        "rank": np.arange(1, n + 1, dtype=np.int64), "score": score[order],
        "uplift": effect[order], "expected_value": ev[order], "score_bin": bins,
        "population_decile": population[order],
        "group": np.where(control, "control", "treated"),
        "action": np.where(control, actions[1], actions[0]),
        "reasons": _reasons(m, frame.iloc[order]) if n else []})
    rows = [Assignment(str(k), week_iso, str(g), int(r), float(s),
                       None if np.isnan(e) else float(e))
            for k, g, r, s, e in zip(table[key].astype(str), table["group"], table["rank"],
                                     table["score"], table["expected_value"], strict=True)]
    if existing and {(a.customer, a.group) for a in existing} == {
            (r.customer, r.group) for r in rows}:
        logged = 0
    else:
        logged = log.record(rows, run_id=m.run_id)
    parquet, csv = _paths(loaded, week_iso, out)
    write_parquet(parquet, pa.Table.from_pandas(table, preserve_index=False))
    with atomic_path(csv) as tmp:
        table.to_csv(tmp, index=False)
    by_bin = [{"bin": int(b), "treated": int(((bins == b) & ~control).sum()),
               "control": int(((bins == b) & control).sum())}
              for b in range(1, min(block.stratify_bins, max(n, 1)) + 1)]
    return WeekList(
        week=week_iso, key=key, rows=n, treated=int((~control).sum()),
        control=int(control.sum()), active=len(frame), eligible=int(eligible.sum()),
        in_cooldown=int(cooling.sum()), capacity=capacity, ranked_by=ranked_by,
        sized_by=sized_by, run_id=m.run_id, candidate=m.candidate, uplift=uplift_name,
        logged=logged, parquet=parquet, csv=csv, seconds=time.perf_counter() - started,
        by_bin=by_bin, table=table)


def _paths(loaded: LoadedSpec, week: str, out: Path | None) -> tuple[Path, Path]:
    if out is None:
        base = loaded.workspace / "lists" / week
        return base.with_suffix(".parquet"), base.with_suffix(".csv")
    out = Path(out)
    if out.suffix not in (".parquet", ".csv"):
        raise DataError(f"`out` {out}: expected a .parquet or .csv file (the other format is "
                        "written beside it).")
    return out.with_suffix(".parquet"), out.with_suffix(".csv")

