"""``valuechain decide``: choose the policy on validation, price it on test.

The latest training run's calibrated scores (best candidate) become approve / review /
decline bands (or a threshold, or a top-N list) chosen on the validation period to minimise
cost without exceeding the review capacity; the test period prices the policy against the
baselines (approve all, today's rule, threshold 0.5, the accuracy-optimal threshold) with
day-block bootstrap intervals, and a sensitivity table moves each cost by x0.5 and x2.

Provenance first: the run must have been trained on the frame built now (fingerprints of
``build/manifest.json`` and the run's ``metrics.json``), and the spec's cost and rule
expressions must be the ones the run stored per row; otherwise decide refuses and names the
command that fixes it. The rows priced are the run's stored predictions (``decision_id``,
label, scores, costs, rule): the frame is never joined again. The pricing itself is
:func:`~valuechain.decide.price.price_policy`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from valuechain.artifacts import damaged, open_artifact
from valuechain.decide.outreach import outreach_block, price_outreach
from valuechain.decide.price import (
    Decisions,
    Kind,
    Objective,
    apply,
    optimise,
    price_policy,
    realised_cost,
)
from valuechain.decide.result import DecideResult, Sensitivity
from valuechain.errors import ArtifactError, SpecError
from valuechain.io import write_json
from valuechain.policy import CostModel, capacity_period, describe
from valuechain.spec.durations import format_duration, to_micros
from valuechain.spec.loader import LoadedSpec
from valuechain.train.context import DAY_US, spec_capacity, times_us
from valuechain.train.provenance import check_same_frame, current_frame, fix_command
from valuechain.train.result import TrainResult
from valuechain.train.runs import ID_COLUMN, latest_run

__all__ = ["DecideResult", "decide_project", "run_decisions"]

F64 = npt.NDArray[np.float64]


def _capacity(loaded: LoadedSpec) -> tuple[str, int, int, str, float, str]:
    found = spec_capacity(loaded)
    if found is None:
        raise SpecError(f"{loaded.where('value')}: `decide` needs `value.capacity` (e.g. "
                        "`review: {limit: 150, per: 1d}`): the policy must fit what the team "
                        "can handle.")
    action, cap = found
    return (action, cap.limit, to_micros(cap.per), cap.overflow,
            cap.percentile, format_duration(cap.per))


def _check_value_inputs(loaded: LoadedSpec, run: TrainResult) -> None:
    """Refuse when the spec's costs or rule changed since the run stored them per row."""
    value = loaded.spec.value
    now = {**(value.costs if value else {})}
    rule = value.baseline_policy if value else None
    fix = fix_command(loaded.root)
    changed = [f"`value.costs.{k}` (run: {run.value.costs.get(k)!r}, spec now: {now.get(k)!r})"
               for k in sorted(set(now) | set(run.value.costs))
               if now.get(k) != run.value.costs.get(k)]
    if rule != run.value.baseline_policy:
        changed.append(f"`value.baseline_policy` (run: {run.value.baseline_policy!r}, spec "
                       f"now: {rule!r})")
    if changed:
        raise ArtifactError(
            f"{loaded.where('value')}: run {run.run_id} stored per-row costs and rule computed "
            f"with other expressions than the spec's now: {'; '.join(changed)}. Run `{fix}` to "
            "store the current ones, then decide again.")
    if "false_negative" not in now or "false_positive" not in now:
        raise SpecError(f"{loaded.where('value', 'costs')}: `decide` needs the costs "
                        "`false_negative` (a positive approved) and `false_positive` (a "
                        "negative declined), as SQL over frame columns.")


def _read_predictions(run_dir: Path, role: str, needed: list[str], root: Path) -> pd.DataFrame:
    path = run_dir / f"predictions_{role}.parquet"
    fix = fix_command(root)
    table = open_artifact(path, "parquet", rebuild=fix, columns=needed,
                          what=f"the {role} predictions of run {run_dir.name}")
    if table.columns[0] != ID_COLUMN or table[ID_COLUMN].isna().any() or (
            table[ID_COLUMN].duplicated().any()):
        raise damaged(path, f"`{ID_COLUMN}` must be the first column, never null and unique",
                      fix, what=f"the {role} predictions of run {run_dir.name}")
    return table


def run_decisions(loaded: LoadedSpec, run: TrainResult, run_dir: Path, role: str,
                  per_us: int) -> tuple[Decisions, npt.NDArray[np.bool_] | None]:
    """One period of a run's stored predictions as :class:`Decisions` (and today's rule)."""
    value = loaded.spec.value
    assert value is not None
    best = run.best_candidate
    time_col = run.frame.time_column or ""
    needed = [ID_COLUMN, "label", f"score_{best}", "cost_false_negative",
              "cost_false_positive"]
    if value.baseline_policy:
        needed.append("rule")
    if not time_col:
        raise damaged(run_dir / "metrics.json", "`frame.time_column` is not recorded",
                      fix_command(loaded.root), what="the training run")
    table = _read_predictions(run_dir, role, [*needed, time_col], loaded.root)
    us = times_us(table[time_col])
    origin = (int(pd.Timestamp(run.frame.time_origin).value // 1000)
              if run.frame.time_origin else (int(us.min()) // DAY_US) * DAY_US)
    review = (table["cost_review"].to_numpy(dtype=np.float64)
              if "cost_review" in table.columns else 0.0)
    costs = CostModel(false_negative=table["cost_false_negative"].to_numpy(dtype=np.float64),
                      false_positive=table["cost_false_positive"].to_numpy(dtype=np.float64),
                      review=review, catch_rate=value.review.catch_rate,
                      friction=value.review.friction)
    rows = Decisions(scores=table[f"score_{best}"].to_numpy(dtype=np.float64),
                     labels=table["label"].to_numpy(dtype=np.float64), costs=costs,
                     periods=capacity_period(us, per_us), days=(us - origin) // DAY_US)
    rule = table["rule"].to_numpy(dtype=bool) if "rule" in table.columns else None
    key = _outreach_key(loaded)
    if key is not None:  # a weekly list: the customer of each row, for the cooldown
        entity = _read_predictions(run_dir, role, [ID_COLUMN, key], loaded.root)[key]
        rows = replace(rows, entity=entity.astype(str).to_numpy())
    return rows, rule


def _outreach_key(loaded: LoadedSpec) -> str | None:
    """The schedule's entity key when the spec has ``outreach`` (else None)."""
    from valuechain.spec.models import SchedulePoints

    dp = loaded.spec.decision_points
    if loaded.spec.outreach is None or not isinstance(dp, SchedulePoints):
        return None
    return dp.schedule.key


def decide_project(
    loaded: LoadedSpec,
    *,
    kind: Kind = "three_band",
    objective: Objective = "expected",
    seed: int = 0,
    progress: Callable[[str, float], None] | None = None,
) -> DecideResult:
    """Optimise the policy on validation, evaluate it on test, write ``policy.yaml``.

    Refuses (``ArtifactError``, a ``DataError``) when the latest run was trained on another
    frame than the one built now, when the spec's costs or rule changed since, or when the
    run's files are missing or damaged; each message names the command that fixes it.

    Parameters
    ----------
    loaded : LoadedSpec
        The project's spec; its ``value`` section gives the capacity and what a review
        achieves (the costs and rule come from the run, checked equal to the spec's).
    kind : {"three_band", "threshold", "top_n"}
        The policy family.
    objective : {"expected", "realised"}
        Minimise the expected cost under the calibrated scores, or the realised cost of the
        validation labels.
    seed : int, default 0
        Seed of the day-block bootstrap of the savings.
    progress : callable, optional
        Called as ``progress(step, fraction)``.

    Returns
    -------
    DecideResult
        Also written to ``<workspace>/decide.json``; the policy to
        ``runs/<run_id>/policy.yaml``.

    Examples
    --------
    >>> from valuechain.spec import load_spec  # doctest: +SKIP
    >>> decide_project(load_spec("examples/fraud")).test.capacity.within  # doctest: +SKIP
    True
    """
    runs = loaded.workspace / "runs"
    run_dir = latest_run(runs, root=loaded.root)
    if run_dir is None:
        raise ArtifactError(f"{runs}: no training run yet. Run `{fix_command(loaded.root)}` "
                            "first (`valuechain train`).")
    run = TrainResult.load(run_dir, root=loaded.root)
    check_same_frame(run.frame, current_frame(loaded.workspace, root=loaded.root),
                     run_id=run.run_id, root=loaded.root)
    _check_value_inputs(loaded, run)
    action, limit, per_us, overflow, percentile, per = _capacity(loaded)
    data = {role: run_decisions(loaded, run, run_dir, role, per_us)
            for role in ("validation", "test")}
    if progress:
        progress("optimising on validation", 0.2)
    (validation, _), (test, rule) = data["validation"], data["test"]
    if kind == "top_n" and loaded.spec.outreach is not None:
        return _decide_outreach(loaded, run, run_dir, validation, test, rule, limit, per,
                                per_us, objective, seed, progress)
    priced = price_policy(
        test.scores, test.labels, test.costs, test.periods, limit, validation=validation,
        days=test.days, baselines={"rules": rule} if rule is not None else None, kind=kind,
        objective=objective, action=action, overflow=overflow,  # type: ignore[arg-type]
        percentile=percentile, per=per, seed=seed)
    def reprice(field: str, factor: float) -> dict[str, Any]:
        moved_val, moved_test = validation.scaled(field, factor), test.scaled(field, factor)
        opt = optimise(kind, moved_val, limit, overflow, percentile, per, objective)
        cost = realised_cost(moved_test, apply(opt.policy, moved_test, limit, overflow))
        entry: dict[str, Any] = {"policy": opt.policy.to_dict(), "test_cost": float(cost.sum())}
        for name in ("approve_all", "rules"):
            if name in priced.baseline_actions:
                entry[f"savings_vs_{name}"] = float(realised_cost(
                    moved_test, priced.baseline_actions[name]).sum() - cost.sum())
        return entry

    sensitivity = _sensitivity(reprice, progress)
    policy_path = run_dir / "policy.yaml"
    # The policy names what it was made from, for the bundle and the decision log later.
    policy = replace(priced.policy, metadata={
        **priced.policy.metadata, "run_id": run.run_id, "candidate": run.best_candidate,
        "frame_fingerprint": run.frame.fingerprint, "spec_hash": run.spec_hash})
    body: dict[str, Any] = {
        "run_id": run.run_id, "candidate": run.best_candidate, "kind": kind,
        "objective": objective, "policy": policy.to_dict(),
        "validation": priced.validation, "test": priced.test, "baselines": priced.baselines,
        "sensitivity": sensitivity, "frontier": list(priced.optimum.frontier),
        "threshold_curve": _threshold_curve(test), "frame": run.frame,
        "policy_file": policy_path.relative_to(loaded.workspace).as_posix(),
    }
    body["value_chain"] = _value_chain(loaded, run, body, action)
    result = DecideResult(**body).at(loaded.workspace)
    policy.save(policy_path)
    write_json(loaded.workspace / "decide.json", result.to_json())
    if progress:
        progress("done", 1.0)
    return result


def _decide_outreach(loaded: LoadedSpec, run: TrainResult, run_dir: Path,
                     validation: Decisions, test: Decisions,
                     rule: npt.NDArray[np.bool_] | None, limit: int, per: str, per_us: int,
                     objective: Objective, seed: int,
                     progress: Callable[[str, float], None] | None) -> DecideResult:
    """``decide --kind top_n`` for a spec with ``outreach``: a weekly list (see
    :mod:`valuechain.decide.outreach`)."""
    from valuechain.lists import list_actions

    outreach = loaded.spec.outreach
    assert outreach is not None
    names = list_actions(loaded)
    key = _outreach_key(loaded)
    if names is None or key is None or validation.entity is None or test.entity is None:
        raise SpecError(f"{loaded.where('decision_points')}: a weekly outreach list needs "
                        "scheduled decision points (`decision_points.schedule`): the cooldown "
                        "follows each customer from week to week.")
    entity = {"validation": validation.entity, "test": test.entity}
    cooldown_us = to_micros(outreach.cooldown)
    cooldown_periods = -(-cooldown_us // per_us)
    per_days = per_us / DAY_US

    def priced_with(val: Decisions, tst: Decisions) -> Any:
        return price_outreach(tst, val, entity_test=entity["test"],
                              entity_validation=entity["validation"], limit=limit,
                              names=names, per=per, per_days=per_days,
                              cooldown_periods=int(cooldown_periods), rule=rule,
                              objective=objective, seed=seed)

    priced = priced_with(validation, test)
    def reprice(field: str, factor: float) -> dict[str, Any]:
        moved = priced_with(validation.scaled(field, factor), test.scaled(field, factor))
        return {"policy": moved.policy.to_dict(), "test_cost": moved.test.expected_cost,
                **{f"savings_vs_{name}": s.value
                   for name, s in (moved.test.savings or {}).items()}}

    sensitivity = _sensitivity(reprice, progress)
    policy_path = run_dir / "policy.yaml"
    policy = replace(priced.policy, metadata={
        **priced.policy.metadata, "run_id": run.run_id, "candidate": run.best_candidate,
        "frame_fingerprint": run.frame.fingerprint, "spec_hash": run.spec_hash})
    body: dict[str, Any] = {
        "run_id": run.run_id, "candidate": run.best_candidate, "kind": "top_n",
        "objective": objective, "policy": policy.to_dict(),
        "validation": priced.validation, "test": priced.test, "baselines": priced.baselines,
        "sensitivity": sensitivity, "frontier": list(priced.optimum.frontier),
        "threshold_curve": _threshold_curve(test), "frame": run.frame,
        "policy_file": policy_path.relative_to(loaded.workspace).as_posix(),
        "outreach": outreach_block(priced, _days(outreach.cooldown), key),
    }
    body["value_chain"] = _outreach_chain(loaded, run, body, names, per)
    result = DecideResult(**body).at(loaded.workspace)
    policy.save(policy_path)
    write_json(loaded.workspace / "decide.json", result.to_json())
    if progress:
        progress("done", 1.0)
    return result


def _days(span: timedelta) -> str:
    """A duration in whole days when it is one (``35d`` rather than ``5w``)."""
    whole = span.total_seconds() % 86_400 == 0
    return f"{span.days}d" if whole else format_duration(span)


def _outreach_chain(loaded: LoadedSpec, run: TrainResult, body: dict[str, Any],
                    names: tuple[str, str], per: str) -> list[dict[str, str]]:
    spec = loaded.spec
    owners = spec.owners
    best = run.best_candidate
    test = run.candidates[best].model_dump()["test"]
    summary = body["test"].model_dump()
    acts = summary["actions_per_period"]
    cap = summary["capacity"]
    savings = summary["savings"]
    currency = spec.value.currency if spec.value else ""
    period = describe(body["policy"], per=per).split(" highest scores ", 1)[-1].split(" ")[:2]
    when = " ".join(period) if period else "a period"
    today = savings.get("rules") or savings["no_outreach"]
    today_name = "today's rule" if "rules" in savings else "contacting nobody"
    return [
        {"link": "model output", "owner": owners.data_science or "(no owner)",
         "what": f"{best}: test AUC {test['roc_auc']:.3f}, average precision "
                 f"{test['average_precision']:.3f}, calibrated"},
        {"link": "decision rule", "owner": spec.decision.owner,
         "what": describe(body["policy"], per=per).removeprefix("Policy: ")},
        {"link": "changed behaviour", "owner": owners.operations or "(no owner)",
         "what": f"{acts[names[0]]['mean']:.0f} customers to {names[0]} {when} on average "
                 f"(max {cap['max_used']:.0f} of {cap['limit']}), a listed customer not "
                 f"listed again for {body['outreach']['cooldown']}"},
        {"link": "KPI", "owner": owners.product or spec.decision.owner,
         "what": f"{spec.decision.kpi or 'expected cost'}: {currency} "
                 f"{savings['no_outreach']['value']:,.0f} saved vs contacting nobody, "
                 f"{currency} {today['value']:,.0f} vs {today_name} over the test period "
                 "(intervals resample customers)"},
    ]


def _sensitivity(reprice: Callable[[str, float], dict[str, Any]],
                 progress: Callable[[str, float], None] | None) -> list[Sensitivity]:
    """Each cost halved and doubled in turn: the policy chosen again and priced on test."""
    moves = [(f, x) for f in ("false_negative", "false_positive", "review") for x in (0.5, 2.0)]
    out = []
    for number, (field, factor) in enumerate(moves):
        if progress:
            progress(f"sensitivity {number + 1}/{len(moves)}: {field.replace('_', ' ')} "
                     f"cost x{factor:g}", 0.6 + 0.35 * number / len(moves))
        out.append(Sensitivity(cost=field, factor=factor, **reprice(field, factor)))
    return out


def _threshold_curve(rows: Decisions, points: int = 60) -> list[dict[str, float]]:
    """Precision and recall on test when everything at or above a threshold is acted on."""
    out = []
    positives = max(rows.labels.sum(), 1.0)
    for t in np.unique(np.quantile(rows.scores, np.linspace(0.5, 1.0, points))):
        flagged = rows.scores >= t
        taken = flagged.sum()
        out.append({"threshold": float(t), "flagged": int(taken),
                    "precision": float((rows.labels[flagged]).sum() / taken) if taken else 0.0,
                    "recall": float(rows.labels[flagged].sum() / positives)})
    return out


def _value_chain(loaded: LoadedSpec, run: TrainResult, body: dict[str, Any],
                 action: str) -> list[dict[str, str]]:
    spec = loaded.spec
    owners = spec.owners
    best = run.best_candidate
    metrics = {"candidates": {best: run.candidates[best].model_dump()}}
    test = metrics["candidates"][best]["test"]
    policy = body["policy"]
    summary = body["test"].model_dump()
    acts = summary["actions_per_period"]
    cap = summary["capacity"]
    savings = summary["savings"]
    currency = spec.value.currency if spec.value else ""
    today = savings.get("rules") or savings["approve_all"]
    capacity = next(iter(spec.value.capacity.values()), None) \
        if spec.value and spec.value.capacity else None
    rule_text = describe(policy, cap["limit"] if capacity else None,
                         per=format_duration(capacity.per) if capacity else None,
                         overflow=capacity.overflow if capacity else None)
    return [
        {"link": "model output", "owner": owners.data_science or "(no owner)",
         "what": f"{best}: test AUC {test['roc_auc']:.3f}, average precision "
                 f"{test['average_precision']:.3f}, calibrated ({metrics['candidates'][best]['calibration']['method']})"},
        {"link": "decision rule", "owner": spec.decision.owner,
         "what": rule_text.removeprefix("Policy: ")},
        {"link": "changed behaviour", "owner": owners.operations or "(no owner)",
         "what": f"per period: {acts['approve']['mean']:.0f} approved, "
                 f"{acts[action]['mean'] if action in acts else 0:.0f} to {action} (max "
                 f"{cap['max_used']:.0f} of {cap['limit']}), {acts['decline']['mean']:.1f} "
                 "declined"},
        {"link": "KPI", "owner": owners.product or spec.decision.owner,
         "what": f"{spec.decision.kpi or 'expected cost'}: {currency} "
                 f"{savings['approve_all']['value']:,.0f} of losses avoided vs approving all, "
                 f"{currency} {today['value']:,.0f} saved vs today's policy over the test "
                 "period"},
    ]
