"""``valuechain train``: how will this do on the future, and does it beat today's policy?

Consecutive periods from the spec (train, validation, test, embargo-separated), baselines
first (prior, today's rules), then logistic regression and LightGBM; each calibrated on
validation; metrics with day-block bootstrap intervals on validation and test; verdicts of
every candidate against every baseline; the random-split score beside the time-split one;
an optional rolling-origin backtest. Everything lands in ``<workspace>/runs/<run_id>/``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from valuechain.data.build import build_frame
from valuechain.errors import SpecError
from valuechain.evaluate import average_precision as ap_of
from valuechain.evaluate import (
    default_periods,
    ece,
    paired_difference,
    random_split,
    reliability_table,
    rolling_origin,
    time_splits,
    verdict,
)
from valuechain.evaluate import roc_auc as auc_of
from valuechain.models import Calibrator, Candidate, FeatureSet, fit_calibrator, make_candidate
from valuechain.spec.durations import format_duration
from valuechain.spec.loader import LoadedSpec
from valuechain.spec.models import Period
from valuechain.train.context import EvaluationContext
from valuechain.train.runs import RunWriter, finite
from valuechain.train.scoring import curves, per_period, scored

__all__ = ["BASELINES", "TrainRun", "train_project"]

BASELINES = ("prior", "rules")
HEADLINE = "average_precision"
Progress = Callable[[str, float], None]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class TrainRun:
    run_id: str
    run_dir: str
    metrics: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = finite({
            "run_id": self.run_id,
            "run_dir": self.run_dir,
            "candidates": {
                name: {"validation": c["validation"], "test": c["test"]}
                for name, c in self.metrics["candidates"].items()
            },
            "verdicts": self.metrics["verdicts"],
            "random_vs_time": self.metrics["random_vs_time"],
        })
        return out


def _periods(loaded: LoadedSpec, times: pd.Series) -> tuple[list[Period], timedelta]:
    spec = loaded.spec
    horizon = spec.label.horizon
    split = spec.split
    embargo = (split.embargo if split and split.embargo is not None else horizon)
    if split is not None and len(split.periods) >= 2:
        return list(split.periods), embargo
    return default_periods(times, horizon, embargo=embargo), embargo


def _roles(loaded: LoadedSpec, masks: dict[str, npt.NDArray[np.bool_]], periods: list[Period],
           times: pd.Series) -> dict[str, npt.NDArray[np.bool_]]:
    """train / validation / test masks; with two periods, validation = train's last fifth."""
    names = [p.name for p in periods]
    if len(names) >= 3:
        return {"train": masks[names[0]], "validation": masks[names[1]],
                "test": masks[names[2]]}
    train = masks[names[0]]
    cut = times[train].quantile(0.8)
    return {"train": train & (times < cut).to_numpy(),
            "validation": train & (times >= cut).to_numpy(), "test": masks[names[1]]}


def _fit(name: str, features: FeatureSet, rules: str | None, seed: int, frame: pd.DataFrame,
         roles: dict[str, npt.NDArray[np.bool_]], y: F64) -> Candidate:
    candidate = make_candidate(name, features, seed=seed, rules=rules)
    train, valid = roles["train"], roles["validation"]
    return candidate.fit(frame[train], y[train], frame[valid], y[valid])


def train_project(
    loaded: LoadedSpec,
    *,
    seed: int = 0,
    candidates: Sequence[str] | None = None,
    backtest_folds: int = 0,
    progress: Progress | None = None,
) -> TrainRun:
    """Train, calibrate and evaluate every candidate; write the run; return its summary."""
    started = time.perf_counter()
    spec = loaded.spec
    built = build_frame(loaded)
    frame = pd.read_parquet(built.frame)
    time_col = built.manifest["frame"]["time_column"]
    times = pd.to_datetime(frame[time_col])
    y = (frame[spec.label.name].to_numpy(dtype=np.float64) > 0).astype(np.float64)
    periods, embargo = _periods(loaded, frame[time_col])
    masks = time_splits(frame[time_col], y, periods, embargo=embargo,
                        horizon=spec.label.horizon,
                        min_positives=spec.split.min_positives if spec.split else 20,
                        source=loaded.path.name)
    roles = _roles(loaded, masks, periods, times)
    features = FeatureSet.infer(frame, [f.name for f in spec.features])
    rules = spec.value.baseline_policy if spec.value else None
    names = list(candidates or [c for c in ("prior", "rules", "logistic", "lightgbm")
                                if c != "rules" or rules])
    if "rules" in names and not rules:
        raise SpecError(f"{loaded.where('value')}: candidate 'rules' needs "
                        "`value.baseline_policy` (the rule the business runs today).")
    ctx = EvaluationContext.of(loaded, frame, time_col)
    writer = RunWriter(loaded.workspace / "runs", spec_hash=loaded.hash, seed=seed)
    try:
        prepared = _Prepared(loaded, frame, built, times, y, periods, embargo, roles, features,
                             rules, names, ctx, seed)
        return _run(prepared, writer, backtest_folds, progress, started)
    except BaseException:
        writer.abort()
        raise


@dataclass(frozen=True)
class _Prepared:
    """The frame, labels, split roles and settings every candidate is trained with."""

    loaded: LoadedSpec
    frame: pd.DataFrame
    built: Any
    times: pd.Series
    y: F64
    periods: list[Period]
    embargo: timedelta
    roles: dict[str, npt.NDArray[np.bool_]]
    features: FeatureSet
    rules: str | None
    names: list[str]
    ctx: EvaluationContext
    seed: int


def _run(p: _Prepared, writer: RunWriter, backtest_folds: int, progress: Progress | None,
         started: float) -> TrainRun:
    loaded, frame, built, times, y = p.loaded, p.frame, p.built, p.times, p.y
    periods, embargo, roles, features = p.periods, p.embargo, p.roles, p.features
    rules, names, ctx, seed = p.rules, p.names, p.ctx, p.seed
    time_col = built.manifest["frame"]["time_column"]
    results: dict[str, Any] = {}
    test_scores: dict[str, F64] = {}
    predictions: dict[str, dict[str, F64]] = {"validation": {}, "test": {}}
    for index, name in enumerate(names):
        if progress:
            progress(f"fitting {name}", 0.05 + 0.7 * index / len(names))
        model = _fit(name, features, rules, seed, frame, roles, y)
        raw = {role: model.predict(frame[roles[role]]) for role in ("validation", "test")}
        calibrator = (Calibrator.identity("the prior is its own calibration")
                      if name == "prior" else fit_calibrator(
                          raw["validation"], y[roles["validation"]], seed=seed))
        entry: dict[str, Any] = {"describe": model.describe()}
        for role in ("validation", "test"):
            score = calibrator.apply(raw[role])
            mask = roles[role]
            entry[role] = scored(score, y[mask], ctx.subset(mask), seed)
            predictions[role][f"score_{name}"] = score
            predictions[role][f"raw_{name}"] = raw[role]
        y_test = y[roles["test"]]
        calibrated = predictions["test"][f"score_{name}"]
        entry["calibration"] = {
            "method": calibrator.method,
            "ece_before": ece(raw["test"], y_test), "ece_after": ece(calibrated, y_test),
            "reason": calibrator.reason,
        }
        entry["reliability"] = {
            "before": reliability_table(raw["test"], y_test).to_dict(orient="records"),
            "after": reliability_table(calibrated, y_test).to_dict(orient="records"),
        }
        results[name] = entry
        test_scores[name] = calibrated
        writer.save_candidate(name, model, calibrator)
    if progress:
        progress("verdicts and random split", 0.8)
    test = roles["test"]
    days = ctx.days[test]
    verdicts = []
    for name in names:
        for baseline in (b for b in BASELINES if b in names and b != name):
            if name in BASELINES and BASELINES.index(name) < BASELINES.index(baseline):
                continue
            diff = paired_difference(HEADLINE, days, test_scores[name], test_scores[baseline],
                                     y[test], seed=seed)
            a, b = results[name]["test"], results[baseline]["test"]
            verdicts.append({
                "candidate": name, "baseline": baseline, "metric": HEADLINE,
                "difference": {"value": diff.value, "low": diff.low, "high": diff.high},
                "verdict": verdict(diff),
                "intervals_overlap": bool(a[f"{HEADLINE}_low"] <= b[f"{HEADLINE}_high"]),
            })
    # Chosen on validation: choosing on test would make the test score optimistic.
    best = max((n for n in names if n not in BASELINES), default=names[-1],
               key=lambda n: np.nan_to_num(results[n]["validation"][HEADLINE], nan=-1.0))
    random_vs_time = _random_vs_time(best, features, rules, seed, frame, roles, y,
                                     auc_of(predictions["test"][f"raw_{best}"], y[test]))
    freq = "W" if (times[test].max() - times[test].min()) > pd.Timedelta(days=21) else "D"
    metrics: dict[str, Any] = {
        "headline_metric": HEADLINE,
        "frame": {"path": str(built.frame), "cache_key": built.manifest["cache_key"],
                  "rows": built.rows.__dict__},
        "splits": {
            **{role: _describe(mask, times, y) for role, mask in roles.items()},
            "embargo": format_duration(embargo),
            "periods": [{"name": p.name, "start": p.start.isoformat(),
                         "end": p.end.isoformat()} for p in periods],
        },
        "features": {"numeric": list(features.numeric),
                     "categorical": list(features.categorical)},
        "candidates": {n: {k: v for k, v in e.items() if k != "reliability"}
                       for n, e in results.items()},
        "verdicts": verdicts,
        "best_candidate": best,
        "random_vs_time": random_vs_time,
        "per_period": {n: per_period(test_scores[n], y[test], times[test], ctx.subset(test),
                                     freq) for n in names},
        "reliability": {n: results[n]["reliability"] for n in names},
        "curves": {n: curves(test_scores[n], y[test]) for n in names},
        "backtest": None,
    }
    if backtest_folds:
        if progress:
            progress("backtest", 0.85)
        metrics["backtest"] = _backtest(loaded, frame, times, y, features, rules, seed,
                                        backtest_folds, embargo, roles,
                                        [n for n in names if n != "rules" or rules])
    metrics["seconds"] = round(time.perf_counter() - started, 2)
    ids = [*built.manifest["frame"]["id_columns"], time_col]
    for role in ("validation", "test"):
        part = frame.loc[roles[role], ids].reset_index(drop=True)
        part["label"] = y[roles[role]]
        for column, values in predictions[role].items():
            part[column] = values
        writer.save_predictions(role, part)
    run_id, run_dir = writer.finish(metrics, built.manifest)
    if progress:
        progress("done", 1.0)
    return TrainRun(run_id, str(run_dir), {**metrics, "run_id": run_id})


def _describe(mask: npt.NDArray[np.bool_], times: pd.Series, y: F64) -> dict[str, Any]:
    if not mask.any():
        return {"rows": 0, "positives": 0}
    return {"start": times[mask].min().isoformat(), "end": times[mask].max().isoformat(),
            "rows": int(mask.sum()), "positives": int(y[mask].sum())}


def _random_vs_time(name: str, features: FeatureSet, rules: str | None, seed: int,
                    frame: pd.DataFrame, roles: dict[str, npt.NDArray[np.bool_]], y: F64,
                    time_auc: float) -> dict[str, Any]:
    """The same candidate on a random split of the same rows, beside the time split."""
    pool = roles["train"] | roles["validation"] | roles["test"]
    idx = np.flatnonzero(pool)
    split = random_split(len(idx), test_share=float(roles["test"].sum() / pool.sum()), seed=seed)
    rest = idx[split["train"]]
    rng = np.random.default_rng(seed)
    is_valid = rng.random(len(rest)) < roles["validation"].sum() / max(
        (roles["train"] | roles["validation"]).sum(), 1)
    shuffled = {"train": np.zeros(len(y), bool), "validation": np.zeros(len(y), bool),
                "test": np.zeros(len(y), bool)}
    shuffled["train"][rest[~is_valid]] = True
    shuffled["validation"][rest[is_valid]] = True
    shuffled["test"][idx[split["test"]]] = True
    model = _fit(name, features, rules, seed, frame, shuffled, y)
    random_auc = auc_of(model.predict(frame[shuffled["test"]]), y[shuffled["test"]])
    gap = random_auc - time_auc
    if gap > 0.02:
        why = ("a random split scores higher because training rows sit beside test rows in "
               "time: the same customers, cards and campaigns appear on both sides, and any "
               "drift is hidden. The time split is what the next period will look like.")
    elif gap < -0.02:
        why = ("the time split scores higher than a random split: the test period is easier "
               "than average (e.g. a loud campaign), so expect lower scores later.")
    else:
        why = "random and time splits agree: little drift or cross-time sharing shows here."
    return {"candidate": name, "auc_time_split": time_auc, "auc_random_split": random_auc,
            "gap": gap, "explanation": why}


def _backtest(loaded: LoadedSpec, frame: pd.DataFrame, times: pd.Series, y: F64,
              features: FeatureSet, rules: str | None, seed: int, folds: int,
              embargo: timedelta, roles: dict[str, npt.NDArray[np.bool_]],
              names: list[str]) -> dict[str, Any]:
    """Rolling-origin folds (expanding window) with the test period's length."""
    test_times = times[roles["test"]]
    length = (test_times.max() - test_times.min()).to_pytimedelta() + timedelta(days=1)
    mature = times <= test_times.max()
    plan = rolling_origin(times[mature], n_folds=folds, test_length=length, embargo=embargo,
                          horizon=loaded.spec.label.horizon)
    out: list[dict[str, Any]] = []
    for fold in plan:
        train_rows = np.zeros(len(y), bool)
        test_rows = np.zeros(len(y), bool)
        train_rows[np.flatnonzero(mature)[fold.train]] = True
        test_rows[np.flatnonzero(mature)[fold.test]] = True
        cut = times[train_rows].quantile(0.85)
        fold_roles = {"train": train_rows & (times < cut).to_numpy(),
                      "validation": train_rows & (times >= cut).to_numpy(), "test": test_rows}
        scores = {}
        for name in names:
            model = _fit(name, features, rules, seed, frame, fold_roles, y)
            s = model.predict(frame[test_rows])
            scores[name] = {"roc_auc": auc_of(s, y[test_rows]),
                            "average_precision": ap_of(s, y[test_rows])}
        out.append({"fold": fold.index, "train_start": fold.train_start.isoformat(),
                    "train_end": fold.train_end.isoformat(),
                    "test_start": fold.test_start.isoformat(),
                    "test_end": fold.test_end.isoformat(), "candidates": scores})
    summary = {}
    for name in names:
        aucs = np.array([f["candidates"][name]["roc_auc"] for f in out])
        aps = np.array([f["candidates"][name]["average_precision"] for f in out])
        summary[name] = {"roc_auc_mean": float(np.nanmean(aucs)),
                         "roc_auc_std": float(np.nanstd(aucs)),
                         "average_precision_mean": float(np.nanmean(aps)),
                         "average_precision_std": float(np.nanstd(aps))}
    return {"folds": out, "summary": summary}
