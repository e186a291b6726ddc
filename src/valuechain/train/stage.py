"""``valuechain train``: how will this do on the future, and does it beat today's policy?

Consecutive periods from the spec (train, validation, test, embargo-separated), baselines
first (prior, today's rules), then logistic regression and LightGBM; each calibrated on
validation; metrics with day-block bootstrap intervals on validation and test; verdicts of
every candidate against every baseline; the random-split score beside the time-split one;
an optional rolling-origin backtest. Everything lands in ``<workspace>/runs/<run_id>/``.

Provenance: the run records the frame it was trained on (path relative to the workspace,
fingerprint and cache key from ``build/manifest.json``, checked against the file's bytes)
and stores, per validation and test decision, ``decision_id`` first, the label, the spec's
costs and rule and every candidate's scores, so ``decide`` never re-reads the frame.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from valuechain.artifacts import damaged, fix_command, open_artifact, project_relative
from valuechain.data.build import build_frame
from valuechain.errors import SpecError
from valuechain.evaluate import (
    RANDOM_TIME_GAP,
    default_periods,
    ece,
    paired_difference,
    random_split,
    reliability_table,
    rolling_origin,
    split_validation,
    time_splits,
    verdict,
)
from valuechain.evaluate import average_precision as ap_of
from valuechain.evaluate import roc_auc as auc_of
from valuechain.io import write_text
from valuechain.models import (
    CANDIDATES,
    Calibrator,
    Candidate,
    FeatureSet,
    fit_calibrator,
    make_candidate,
)
from valuechain.spec.durations import format_duration
from valuechain.spec.loader import LoadedSpec
from valuechain.spec.models import Period
from valuechain.train.card import CARD_FILE, model_card
from valuechain.train.context import EvaluationContext, value_columns
from valuechain.train.provenance import FrameRef, current_frame
from valuechain.train.result import TrainResult, ValueInputs
from valuechain.train.runs import ID_COLUMN, RunWriter
from valuechain.train.scoring import INTERVALS, curves, per_period, scored
from valuechain.train.steps import Steps

__all__ = ["BASELINES", "TrainRun", "train_project"]

BASELINES = ("prior", "rules")
HEADLINE = "average_precision"
Progress = Callable[[str, float], None]
#: Rough relative cost of each step, for progress bars only (about seconds on the 1 M-row
#: fraud demo on a busy 2-core host: LightGBM's fit dominates, an interval is ~0.1 s).
FIT_WEIGHT = {"prior": 0.2, "rules": 3.0, "logistic": 15.0, "lightgbm": 150.0}
OTHER_FIT_WEIGHT = 30.0
INTERVAL_WEIGHT = 0.1
VERDICT_WEIGHT = 0.3
PREPARED_AT = 0.08  # share of the bar reached once the frame is read and priced
F64 = npt.NDArray[np.float64]


#: Former name of :class:`~valuechain.train.result.TrainResult`.
TrainRun = TrainResult


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
    train, validation = split_validation(times, masks[names[0]])
    return {"train": train, "validation": validation, "test": masks[names[1]]}


Factory = Callable[[], Candidate]


def _fit(make: Factory, frame: pd.DataFrame, roles: dict[str, npt.NDArray[np.bool_]],
         y: F64) -> Candidate:
    train, valid = roles["train"], roles["validation"]
    return make().fit(frame[train], y[train], frame[valid], y[valid])


_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _factories(names: list[str], features: FeatureSet, rules: str | None, seed: int,
               estimators: Mapping[str, Any] | None) -> dict[str, Factory]:
    """How to make each candidate afresh: ours by name, the user's through ``as_candidate``."""
    def ours(name: str) -> Factory:
        return lambda: make_candidate(name, features, seed=seed, rules=rules)

    out: dict[str, Factory] = {name: ours(name) for name in names}
    if not estimators:
        return out
    from valuechain.models import as_candidate  # the adapter lives with the models

    for name, estimator in estimators.items():
        if name in CANDIDATES or name in out:
            raise SpecError(
                f"`estimators`: the name {name!r} is taken by a built-in candidate "
                f"({', '.join(sorted(set(CANDIDATES) | set(out)))}); name your estimator "
                "differently, e.g. 'my_lightgbm'.")
        if not _NAME.match(name):
            raise SpecError(
                f"`estimators`: the name {name!r} cannot name a candidate (it becomes a "
                "folder and the column `score_<name>`); use letters, digits, '_', '.' or "
                "'-', starting with a letter or digit.")
        out[name] = _theirs(as_candidate, name, estimator, features, seed)
    return out


def _theirs(adapt: Callable[..., Candidate], name: str, estimator: Any, features: FeatureSet,
            seed: int) -> Factory:
    return lambda: adapt(name, estimator, features, seed=seed)


def _decision_ids(loaded: LoadedSpec, frame: pd.DataFrame) -> npt.NDArray[np.object_]:
    """The frame's ``decision_id`` column (made by ``valuechain build``), checked unique."""
    path = loaded.workspace / "build" / "frame.parquet"
    rebuild = fix_command(loaded.root, "build", "--force")
    if ID_COLUMN not in frame.columns:
        raise damaged(path, f"no `{ID_COLUMN}` column: built by an older valuechain", rebuild,
                      what="the built frame")
    ids = frame[ID_COLUMN].astype("string").to_numpy(dtype=object)
    missing = pd.isna(ids)
    dup = pd.Series(ids).duplicated().to_numpy()
    if missing.any() or dup.any():
        what = (f"{int(missing.sum())} rows have no decision id" if missing.any() else
                f"decision id {ids[int(np.flatnonzero(dup)[0])]!r} names several rows")
        raise damaged(path, f"{what}; each decision needs one identity", rebuild,
                      what="the built frame")
    return np.asarray(ids, dtype=object)


def _relative_manifest(manifest: Mapping[str, Any], root: Path) -> dict[str, Any]:
    """The build manifest as a run keeps it: the spec's and sources' paths relative to the
    project folder (when inside it), so a project folder can move after training."""
    out = dict(manifest)
    if isinstance(out.get("spec"), dict) and out["spec"].get("path"):
        out["spec"] = {**out["spec"], "path": project_relative(out["spec"]["path"], root)}
    if isinstance(out.get("sources"), dict):
        out["sources"] = {
            name: {**info, "path": project_relative(info["path"], root)}
            if isinstance(info, dict) and isinstance(info.get("path"), str) else info
            for name, info in out["sources"].items()}
    return out


def train_project(
    loaded: LoadedSpec,
    *,
    seed: int = 0,
    candidates: Sequence[str] | None = None,
    backtest_folds: int = 0,
    progress: Progress | None = None,
    estimators: Mapping[str, Any] | None = None,
    as_of: datetime | None = None,
) -> TrainResult:
    """Train, calibrate and evaluate every candidate; write the run; return its result.

    Parameters
    ----------
    loaded : LoadedSpec
        The project's spec (``valuechain.spec.load_spec``).
    seed : int, default 0
        Seed of the models, the calibration folds and every bootstrap.
    candidates : sequence of str, optional
        Built-in candidates to train (default: prior, rules when the spec has a
        ``value.baseline_policy``, logistic, lightgbm).
    backtest_folds : int, default 0
        Rolling-origin folds to add (0: none).
    progress : callable, optional
        Called as ``progress(step, fraction)``.
    estimators : mapping of str to estimator, optional
        Your own scikit-learn compatible classifiers (with ``predict_proba``), by name; each
        becomes a candidate beside ours through :func:`valuechain.models.as_candidate`
        (fitted on the training period, calibrated and evaluated like ours). A name of a
        built-in candidate is refused.
    as_of : datetime, optional
        Train on the frame built as of this time (default: the latest time in the sources),
        as ``valuechain build --as-of``.

    Returns
    -------
    TrainResult
        Also written to ``<workspace>/runs/<run_id>/metrics.json``.

    Examples
    --------
    >>> from valuechain.spec import load_spec  # doctest: +SKIP
    >>> run = train_project(load_spec("examples/fraud"), candidates=["prior", "lightgbm"])
    ... # doctest: +SKIP
    >>> run.best_candidate  # doctest: +SKIP
    'lightgbm'
    """
    started = time.perf_counter()
    spec = loaded.spec
    if progress:
        progress("checking the frame is current", 0.0)
    built = build_frame(loaded, as_of=as_of)
    if progress:
        progress("reading the frame", 0.02)
    frame_ref = current_frame(loaded.workspace, root=loaded.root, manifest=built.manifest)
    frame = open_artifact(built.frame, "parquet", what="the built frame",
                          rebuild=fix_command(loaded.root, "build", "--force"))
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
    make = _factories(names, features, rules, seed, estimators)
    if progress:
        progress("pricing every row (costs, today's rule)", 0.04)
    ids = _decision_ids(loaded, frame)
    columns = value_columns(loaded, frame, ids, roles["validation"] | roles["test"])
    ctx = EvaluationContext.of(loaded, frame, time_col, columns)
    frame_ref = frame_ref.model_copy(update={
        "time_origin": pd.Timestamp(ctx.origin_us, unit="us").isoformat(),
        "time_column": time_col})
    writer = RunWriter(loaded.workspace / "runs", spec_hash=loaded.hash, seed=seed)
    try:
        prepared = _Prepared(loaded, frame, built, times, y, periods, embargo, roles, features,
                             rules, list(make), ctx, seed, make, ids, columns, frame_ref)
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
    make: dict[str, Factory]
    ids: npt.NDArray[np.object_]
    columns: dict[str, npt.NDArray[np.generic]]
    frame_ref: FrameRef


def _run(p: _Prepared, writer: RunWriter, backtest_folds: int, progress: Progress | None,
         started: float) -> TrainResult:
    loaded, frame, built, times, y = p.loaded, p.frame, p.built, p.times, p.y
    periods, embargo, roles, features = p.periods, p.embargo, p.roles, p.features
    names, ctx, seed = p.names, p.ctx, p.seed
    time_col = built.manifest["frame"]["time_column"]
    results: dict[str, Any] = {}
    test_scores: dict[str, F64] = {}
    predictions: dict[str, dict[str, F64]] = {"validation": {}, "test": {}}
    steps = Steps(progress, _plan(names, backtest_folds), start=PREPARED_AT)
    for index, name in enumerate(names):
        of = f"candidate {index + 1}/{len(names)} {name}"
        steps(f"{of}: fitting", _fit_weight(name))
        model = _fit(p.make[name], frame, roles, y)
        raw = {role: model.predict(frame[roles[role]]) for role in ("validation", "test")}
        calibrator = (Calibrator.identity("the prior is its own calibration")
                      if name == "prior" else fit_calibrator(
                          raw["validation"], y[roles["validation"]], seed=seed))
        entry: dict[str, Any] = {}
        for role in ("validation", "test"):
            score = calibrator.apply(raw[role])
            mask = roles[role]
            entry[role] = scored(score, y[mask], ctx.subset(mask), seed, tick=_ticker(
                steps, f"{of}: {role} interval of"))
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
        test_scores[name] = calibrated
        writer.save_candidate(name, model, calibrator)
        # described after saving: a saved candidate also says how (e.g. skops, checksum)
        results[name] = {"describe": model.describe(), **entry}
    test = roles["test"]
    days = ctx.days[test]
    verdicts = []
    pairs = _pairs(names)
    for number, (name, baseline) in enumerate(pairs, start=1):
        steps(f"verdict {number}/{len(pairs)}: {name} vs {baseline} (paired bootstrap)",
              VERDICT_WEIGHT)
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
    steps(f"refitting {best} on a random split", 1.5 * _fit_weight(best))
    random_vs_time = _random_vs_time(best, p.make[best], seed, frame, roles, y,
                                     auc_of(predictions["test"][f"raw_{best}"], y[test]))
    steps("metrics per period and curves", 1.0 * len(names))
    freq = "W" if (times[test].max() - times[test].min()) > pd.Timedelta(days=21) else "D"
    value = loaded.spec.value
    metrics: dict[str, Any] = {
        "headline_metric": HEADLINE,
        "frame": p.frame_ref,
        "value": ValueInputs(costs=dict(value.costs) if value else {},
                             baseline_policy=value.baseline_policy if value else None),
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
        metrics["backtest"] = _backtest(loaded, frame, times, y, seed, backtest_folds,
                                        embargo, roles, {n: p.make[n] for n in names}, steps)
    steps("writing the run", 3.0)
    metrics["seconds"] = round(time.perf_counter() - started, 2)
    keep = [c for c in (*built.manifest["frame"]["id_columns"], time_col) if c != ID_COLUMN]
    for role in ("validation", "test"):
        mask = roles[role]
        part = pd.DataFrame({ID_COLUMN: pd.array(p.ids[mask], dtype="string")})
        for column in keep:
            part[column] = frame.loc[mask, column].to_numpy()
        part["label"] = y[mask]
        for column, values in p.columns.items():
            part[column] = values[mask]
        for column, values in predictions[role].items():
            part[column] = values
        writer.save_predictions(role, part)
    result = TrainResult(run_id=writer.run_id, created_at=writer.created_at,
                         spec_hash=writer.spec_hash, seed=seed, **metrics)
    _, run_dir = writer.finish(result, _relative_manifest(built.manifest, loaded.root))
    result = result.at(run_dir)
    write_text(Path(run_dir) / CARD_FILE, model_card(result, loaded))
    steps.done()
    return result


def _fit_weight(name: str) -> float:
    return FIT_WEIGHT.get(name, OTHER_FIT_WEIGHT)


def _pairs(names: list[str]) -> list[tuple[str, str]]:
    """(candidate, baseline) pairs given a verdict: every candidate against every baseline."""
    out = []
    for name in names:
        for baseline in (b for b in BASELINES if b in names and b != name):
            if name in BASELINES and BASELINES.index(name) < BASELINES.index(baseline):
                continue
            out.append((name, baseline))
    return out


def _plan(names: list[str], backtest_folds: int) -> float:
    """Total progress weight of a run with these candidates (see :data:`FIT_WEIGHT`)."""
    fits = sum(_fit_weight(n) for n in names)
    best = max((_fit_weight(n) for n in names if n not in BASELINES), default=1.0)
    return (fits + 2 * INTERVALS * INTERVAL_WEIGHT * len(names)
            + VERDICT_WEIGHT * len(_pairs(names)) + 1.5 * best + 1.0 * len(names)
            + backtest_folds * fits + 3.0)


def _ticker(steps: Steps, prefix: str) -> Callable[[str], None]:
    return lambda metric: steps(f"{prefix} {metric.replace('_', ' ')}", INTERVAL_WEIGHT)


def _describe(mask: npt.NDArray[np.bool_], times: pd.Series, y: F64) -> dict[str, Any]:
    if not mask.any():
        return {"rows": 0, "positives": 0}
    return {"start": times[mask].min().isoformat(), "end": times[mask].max().isoformat(),
            "rows": int(mask.sum()), "positives": int(y[mask].sum())}


def _random_vs_time(name: str, make: Factory, seed: int, frame: pd.DataFrame,
                    roles: dict[str, npt.NDArray[np.bool_]], y: F64,
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
    model = _fit(make, frame, shuffled, y)
    random_auc = auc_of(model.predict(frame[shuffled["test"]]), y[shuffled["test"]])
    gap = random_auc - time_auc
    if gap >= RANDOM_TIME_GAP:
        why = ("a random split scores higher because training rows sit beside test rows in "
               "time: the same customers, cards and campaigns appear on both sides, and any "
               "drift is hidden. The time split is what the next period will look like.")
    elif gap <= -RANDOM_TIME_GAP:
        why = ("the time split scores higher than a random split: the test period is easier "
               "than average (e.g. a loud campaign), so expect lower scores later.")
    else:
        why = "random and time splits agree: little drift or cross-time sharing shows here."
    return {"candidate": name, "auc_time_split": time_auc, "auc_random_split": random_auc,
            "gap": gap, "threshold": RANDOM_TIME_GAP, "explanation": why}


def _backtest(loaded: LoadedSpec, frame: pd.DataFrame, times: pd.Series, y: F64, seed: int,
              folds: int, embargo: timedelta, roles: dict[str, npt.NDArray[np.bool_]],
              make: dict[str, Factory], steps: Steps | None = None) -> dict[str, Any]:
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
        fit_rows, valid_rows = split_validation(times, train_rows)
        fold_roles = {"train": fit_rows, "validation": valid_rows, "test": test_rows}
        scores = {}
        for name in make:
            if steps is not None:
                steps(f"backtest fold {fold.index + 1}/{len(plan)}: fitting {name}",
                      _fit_weight(name))
            model = _fit(make[name], frame, fold_roles, y)
            s = model.predict(frame[test_rows])
            scores[name] = {"roc_auc": auc_of(s, y[test_rows]),
                            "average_precision": ap_of(s, y[test_rows])}
        out.append({"fold": fold.index, "train_start": fold.train_start.isoformat(),
                    "train_end": fold.train_end.isoformat(),
                    "test_start": fold.test_start.isoformat(),
                    "test_end": fold.test_end.isoformat(), "candidates": scores})
    summary = {}
    for name in make:
        aucs = np.array([f["candidates"][name]["roc_auc"] for f in out])
        aps = np.array([f["candidates"][name]["average_precision"] for f in out])
        summary[name] = {"roc_auc_mean": float(np.nanmean(aucs)),
                         "roc_auc_std": float(np.nanstd(aucs)),
                         "average_precision_mean": float(np.nanmean(aps)),
                         "average_precision_std": float(np.nanstd(aps))}
    return {"folds": out, "summary": summary}
