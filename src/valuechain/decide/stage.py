"""``valuechain decide``: choose the policy on validation, price it on test.

The latest training run's calibrated scores (best candidate) become approve / review /
decline bands (or a threshold, or a top-N list) chosen on the validation period to minimise
cost without exceeding the review capacity; the test period prices the policy against the
baselines (approve all, today's rule, threshold 0.5, the accuracy-optimal threshold) with
day-block bootstrap intervals, and a sensitivity table moves each cost by x0.5 and x2.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import duckdb
import numpy as np
import numpy.typing as npt
import pandas as pd

from valuechain.errors import DataError, SpecError
from valuechain.io import write_json
from valuechain.policy import (
    CostModel,
    Optimum,
    apply_with_capacity,
    optimize_three_band,
    optimize_threshold,
    optimize_top_n,
)
from valuechain.spec.durations import format_duration
from valuechain.spec.loader import LoadedSpec
from valuechain.train.context import row_costs
from valuechain.train.runs import finite, latest_run

__all__ = ["DecideResult", "decide_project"]

F64 = npt.NDArray[np.float64]
Kind = Literal["three_band", "threshold", "top_n"]
Objective = Literal["expected", "realised"]
N_BOOT = 500
DAY_US = 86_400_000_000


@dataclass(frozen=True)
class Rows:
    """One period's decisions: calibrated scores, labels, capacity periods, days, costs."""

    scores: F64
    labels: F64
    periods: npt.NDArray[np.int64]
    days: npt.NDArray[np.int64]
    costs: CostModel
    rule: npt.NDArray[np.bool_] | None


@dataclass(frozen=True)
class DecideResult:
    run_id: str
    policy_path: Path
    body: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = finite(self.body)
        return out


def _capacity(loaded: LoadedSpec) -> tuple[str, int, int, str, float, str]:
    value = loaded.spec.value
    if value is None or not value.capacity:
        raise SpecError(f"{loaded.where('value')}: `decide` needs `value.capacity` (e.g. "
                        "`review: {limit: 150, per: 1d}`): the policy must fit what the team "
                        "can handle.")
    action, cap = next(iter(value.capacity.items()))
    return (action, cap.limit, int(cap.per.total_seconds() * 1_000_000), cap.overflow,
            cap.percentile, format_duration(cap.per))


def _rows(loaded: LoadedSpec, frame: pd.DataFrame, predictions: pd.DataFrame, best: str,
          time_col: str, per_us: int, origin_us: int) -> Rows:
    value = loaded.spec.value
    assert value is not None
    ids = [c for c in predictions.columns if c in frame.columns and c != time_col]
    merged = predictions.merge(frame.drop(columns=[time_col]), on=ids, how="left",
                               suffixes=("", "_frame"))
    t = pd.to_datetime(merged[time_col])
    if getattr(t.dt, "tz", None) is not None:
        t = t.dt.tz_convert("UTC").dt.tz_localize(None)
    us = t.to_numpy(dtype="datetime64[us]").astype(np.int64)
    fn = row_costs(loaded, merged, "false_negative")
    fp = row_costs(loaded, merged, "false_positive")
    if fn is None or fp is None:
        raise SpecError(f"{loaded.where('value', 'costs')}: `decide` needs the costs "
                        "`false_negative` (a positive approved) and `false_positive` (a "
                        "negative declined), as SQL over frame columns.")
    review = row_costs(loaded, merged, "review")
    rule = None
    if value.baseline_policy:
        con = duckdb.connect()
        con.register("frame", merged)
        rule = con.sql(f"SELECT coalesce(CAST(({value.baseline_policy}) AS BOOLEAN), false) "
                       "AS r FROM frame").df()["r"].to_numpy(dtype=bool)
    costs = CostModel(false_negative=fn, false_positive=fp,
                      review=np.zeros(len(fn)) if review is None else review,
                      catch_rate=value.review.catch_rate, friction=value.review.friction)
    return Rows(scores=merged[f"score_{best}"].to_numpy(dtype=np.float64),
                labels=merged["label"].to_numpy(dtype=np.float64),
                periods=(us - origin_us) // per_us, days=(us - origin_us) // DAY_US,
                costs=costs, rule=rule)


def _realised(rows: Rows, actions: npt.NDArray[np.str_]) -> F64:
    by_action = rows.costs.action_costs(rows.labels)
    out = np.zeros(len(actions))
    for name, cost in by_action.items():
        mask = actions == name
        out[mask] = np.asarray(cost, dtype=np.float64)[mask]
    return out


def _summary(rows: Rows, actions: npt.NDArray[np.str_], review_action: str,
             limit: int) -> dict[str, Any]:
    cost = _realised(rows, actions)
    periods, index = np.unique(rows.periods, return_inverse=True)
    per_action = {}
    for name in ("approve", "review", "decline"):
        counts = np.bincount(index, weights=(actions == name), minlength=len(periods))
        per_action[name] = {"max": float(counts.max(initial=0)), "mean": float(counts.mean())
                            if len(counts) else 0.0, "total": int(counts.sum())}
    reviews = np.bincount(index, weights=(actions == review_action), minlength=len(periods))
    return {
        "expected_cost": float(cost.sum()),
        "cost_per_1000": float(1000 * cost.mean()) if len(cost) else 0.0,
        "decisions": len(cost),
        "actions_per_period": per_action,
        "capacity": {
            "limit": limit, "max_used": float(reviews.max(initial=0)),
            "mean_used": float(reviews.mean()) if len(reviews) else 0.0,
            "p50_used": float(np.quantile(reviews, 0.5)) if len(reviews) else 0.0,
            "p90_used": float(np.quantile(reviews, 0.9)) if len(reviews) else 0.0,
            "periods_over_limit": int((reviews > limit).sum()), "periods": len(reviews),
            "used_per_period": reviews.astype(int).tolist(),
        },
        "caught_positives": float(((actions != "approve") * rows.labels).sum()),
        "positives": float(rows.labels.sum()),
    }


def _savings(rows: Rows, baseline: F64, policy: F64, seed: int) -> dict[str, float]:
    """Money saved (baseline cost - policy cost) with a 95 % day-block bootstrap interval."""
    days, index = np.unique(rows.days, return_inverse=True)
    diff = np.bincount(index, weights=baseline - policy, minlength=len(days))
    rng = np.random.default_rng(seed)
    draws = diff[rng.integers(0, len(days), size=(N_BOOT, len(days)))].sum(axis=1)
    return {"value": float(diff.sum()), "low": float(np.quantile(draws, 0.025)),
            "high": float(np.quantile(draws, 0.975)),
            "per_day": float(diff.sum() / max(len(days), 1))}


def _baselines(rows: Rows, validation: Rows, review_action: str, limit: int,
               overflow: str) -> dict[str, npt.NDArray[np.str_]]:
    n = len(rows.scores)
    out = {"approve_all": np.full(n, "approve", dtype=object)}
    if rows.rule is not None:
        # Today's rule sends flagged cases to review, first come first served per period.
        flagged = rows.rule.copy()
        order = np.argsort(rows.periods, kind="stable")
        rank = np.zeros(n, dtype=np.int64)
        sorted_flags = flagged[order].astype(np.int64)
        per_period = pd.Series(sorted_flags).groupby(rows.periods[order]).cumsum().to_numpy()
        rank[order] = per_period
        actions = np.full(n, "approve", dtype=object)
        actions[flagged & (rank <= limit)] = review_action
        actions[flagged & (rank > limit)] = overflow
        out["rules"] = actions
    out["threshold_0.5"] = np.where(rows.scores >= 0.5, "decline", "approve").astype(object)
    # Accuracy-optimal threshold, chosen on validation.
    cuts = np.unique(validation.scores)
    best_t, best_acc = 0.5, -1.0
    order = np.argsort(validation.scores)
    s, y = validation.scores[order], validation.labels[order]
    neg_below = np.cumsum(1 - y)  # negatives with score <= s[k]
    pos_total = y.sum()
    pos_below = np.cumsum(y)
    for k in np.searchsorted(s, cuts, side="right") - 1:
        acc = (neg_below[k] + (pos_total - pos_below[k])) / len(s)
        if acc > best_acc:
            best_acc, best_t = float(acc), float(s[k]) + 1e-12
    out["accuracy_optimal"] = np.where(rows.scores >= best_t, "decline",
                                       "approve").astype(object)
    return out


def _optimise(kind: Kind, rows: Rows, limit: int, overflow: str, percentile: float,
              per: str, objective: Objective) -> Optimum:
    """Minimise cost on validation: expected under the calibrated scores (smooth, relies on
    calibration) or realised under the labels (no model assumption, can overfit few days)."""
    target = rows.scores if objective == "expected" else rows.labels
    if kind == "three_band":
        return optimize_three_band(rows.scores, rows.costs, target, rows.periods, limit,
                                   overflow=overflow, percentile=percentile)
    if kind == "threshold":
        return optimize_threshold(rows.scores, rows.costs, target, rows.periods)
    return optimize_top_n(rows.scores, rows.costs, target, rows.periods, limit, per=per)


def _scaled(rows: Rows, field: str, factor: float) -> Rows:
    value = getattr(rows.costs, field)
    return replace(rows, costs=replace(rows.costs, **{field: np.asarray(value) * factor}))


def decide_project(
    loaded: LoadedSpec,
    *,
    kind: Kind = "three_band",
    objective: Objective = "expected",
    seed: int = 0,
    progress: Callable[[str, float], None] | None = None,
) -> DecideResult:
    """Optimise the policy on validation, evaluate it on test, write ``policy.yaml``."""
    runs = loaded.workspace / "runs"
    run_dir = latest_run(runs)
    if run_dir is None:
        raise DataError(f"{runs}: no training run yet. Run `valuechain train` first.")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    best = metrics["best_candidate"]
    manifest = json.loads((run_dir / "frame_manifest.json").read_text())
    frame = pd.read_parquet(metrics["frame"]["path"])
    time_col = manifest["frame"]["time_column"]
    action, limit, per_us, overflow, percentile, per = _capacity(loaded)
    t0 = pd.to_datetime(frame[time_col]).min()
    origin = (int(pd.Timestamp(t0).tz_localize(None).value // 1000) // DAY_US) * DAY_US
    data = {role: _rows(loaded, frame, pd.read_parquet(run_dir / f"predictions_{role}.parquet"),
                        best, time_col, per_us, origin) for role in ("validation", "test")}
    if progress:
        progress("optimising on validation", 0.2)
    optimum = _optimise(kind, data["validation"], limit, overflow, percentile, per, objective)
    policy = optimum.policy
    applied = {role: np.asarray(apply_with_capacity(policy, rows.scores, rows.periods, limit,
                                                    overflow), dtype=object)
               for role, rows in data.items()}
    body: dict[str, Any] = {
        "run_id": metrics["run_id"], "candidate": best, "kind": kind, "objective": objective,
        "policy": policy.to_dict(),
        "validation": _summary(data["validation"], applied["validation"], action, limit),
        "test": _summary(data["test"], applied["test"], action, limit),
    }
    for role, rows in data.items():
        # What the bands ask for before the overflow rule (the summaries count after it).
        asked = np.asarray(policy.apply(rows.scores, rows.periods), dtype=object) == action
        _, index = np.unique(rows.periods, return_inverse=True)
        requested = np.bincount(index, weights=asked)
        body[role]["capacity"]["requested_max"] = float(requested.max(initial=0))
        body[role]["capacity"]["requested_over_limit"] = int((requested > limit).sum())
    test = data["test"]
    policy_cost = _realised(test, applied["test"])
    baselines = _baselines(test, data["validation"], action, limit, overflow)
    body["baselines"] = {name: _summary(test, acts, action, limit)
                         for name, acts in baselines.items()}
    body["test"]["savings"] = {name: _savings(test, _realised(test, acts), policy_cost, seed)
                               for name, acts in baselines.items()}
    if progress:
        progress("sensitivity", 0.6)
    body["sensitivity"] = []
    for field in ("false_negative", "false_positive", "review"):
        for factor in (0.5, 2.0):
            moved = {role: _scaled(rows, field, factor) for role, rows in data.items()}
            opt = _optimise(kind, moved["validation"], limit, overflow, percentile, per,
                            objective)
            acts = np.asarray(apply_with_capacity(opt.policy, moved["test"].scores,
                                                  moved["test"].periods, limit, overflow),
                              dtype=object)
            cost = _realised(moved["test"], acts)
            entry = {"cost": field, "factor": factor, "policy": opt.policy.to_dict(),
                     "test_cost": float(cost.sum())}
            for name in ("approve_all", "rules"):
                if name in baselines:
                    entry[f"savings_vs_{name}"] = float(
                        _realised(moved["test"], baselines[name]).sum() - cost.sum())
            body["sensitivity"].append(entry)
    body["frontier"] = list(optimum.frontier)
    body["threshold_curve"] = _threshold_curve(test)
    body["value_chain"] = _value_chain(loaded, metrics, best, body, action)
    policy_path = run_dir / "policy.yaml"
    policy.save(policy_path)
    write_json(loaded.workspace / "decide.json", finite(body))
    if progress:
        progress("done", 1.0)
    return DecideResult(metrics["run_id"], policy_path, body)


def _threshold_curve(rows: Rows, points: int = 60) -> list[dict[str, float]]:
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


def _value_chain(loaded: LoadedSpec, metrics: dict[str, Any], best: str,
                 body: dict[str, Any], action: str) -> list[dict[str, str]]:
    spec = loaded.spec
    owners = spec.owners
    test = metrics["candidates"][best]["test"]
    policy = body["policy"]
    acts = body["test"]["actions_per_period"]
    cap = body["test"]["capacity"]
    savings = body["test"]["savings"]
    currency = spec.value.currency if spec.value else ""
    today = savings.get("rules") or savings["approve_all"]
    rule_text = ", ".join(f"{k}={v:.4g}" for k, v in policy.items()
                          if isinstance(v, float | int) and k not in ("version",))
    return [
        {"link": "model output", "owner": owners.data_science or "(no owner)",
         "what": f"{best}: test AUC {test['roc_auc']:.3f}, average precision "
                 f"{test['average_precision']:.3f}, calibrated ({metrics['candidates'][best]['calibration']['method']})"},
        {"link": "decision rule", "owner": spec.decision.owner,
         "what": f"{policy['kind']} ({rule_text})"},
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
