"""``valuechain uplift``: learn the effect of the action, judge it, compare lists, write a run.

Steps, on the built frame (``valuechain build``) and the spec's ``treatment:`` history:

1. join the assignment onto the frame (:func:`~valuechain.uplift.assign.assignment_for`);
   the spec's split gives the train / validation / test periods (as ``valuechain train``);
2. fit every learner (two-model and class transformation over logistic and LightGBM) on the
   assigned training rows, LightGBM stopping early on the validation rows; choose the one
   with the highest validation Qini coefficient;
3. on the assigned test rows: Qini, AUUC and uplift at k with intervals resampling customers,
   the Qini and gain curves with bands; the same for the risk score of the latest training
   run (``runs/latest``), for comparison;
4. on every test decision point: the risk-ranked (the run's best candidate), uplift-ranked,
   random and today's-rule (``value.baseline_policy``) lists of ``capacity`` per week,
   their saves and money (:mod:`~valuechain.uplift.compare`);
5. with ``truth``: every estimate against the generator's true effects;
6. control vs treated outcome rates per matured week and the pooled estimate so far.

Everything lands in ``<workspace>/uplift/<run_id>/`` (``uplift.json``, ``model/`` = the
chosen learner, ``learners/<name>/``, ``scores_test.parquet``), written into a temporary
folder and renamed into place; ``uplift/latest`` names the newest run.
"""

from __future__ import annotations

import os
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
import pyarrow as pa

from valuechain.artifacts import fix_command, open_artifact
from valuechain.data.build import build_frame
from valuechain.data.pit import is_mature
from valuechain.errors import DataError, SpecError
from valuechain.evaluate import default_periods, split_validation, time_splits
from valuechain.expressions import evaluate
from valuechain.io import write_json, write_parquet, write_text
from valuechain.models import FeatureSet
from valuechain.policy.capacity import capacity_period
from valuechain.spec.durations import to_micros
from valuechain.spec.loader import LoadedSpec
from valuechain.train.context import row_costs, spec_capacity
from valuechain.train.runs import latest_run
from valuechain.uplift.assign import assignment_for, treatment_of
from valuechain.uplift.compare import ListOutcome, compare_lists, ht_terms, top_per_period
from valuechain.uplift.learners import (
    CHOSEN,
    ClassTransformation,
    TwoModel,
    fit_learner,
    save_learner,
)
from valuechain.uplift.metrics import curve_band, uplift_intervals
from valuechain.uplift.planner import PooledEstimate, pooled_estimate, weekly_rates

__all__ = ["DEFAULT_LEARNERS", "UpliftRun", "mature_mask", "pooled_estimate_for", "read_truth",
           "run_uplift"]

F64 = npt.NDArray[np.float64]
Progress = Callable[[str, float], None]
#: The learners fitted by default: (learner, base classifier).
DEFAULT_LEARNERS: tuple[tuple[str, str], ...] = (
    ("two_model", "logistic"), ("class_transformation", "logistic"),
    ("two_model", "lightgbm"), ("class_transformation", "lightgbm"))
LATEST = "latest"


@dataclass(frozen=True)
class UpliftRun:
    """A finished ``valuechain uplift`` run: its id, folder and ``uplift.json`` content."""

    run_id: str
    path: Path
    summary: dict[str, Any]
    seconds: float


def read_truth(path: Path, key: str) -> pd.DataFrame:
    """The true effects: ``key``, ``decision_time``, ``uplift`` from a Parquet file or a
    ``truth/`` folder holding ``uplift.parquet``."""
    file = path / "uplift.parquet" if path.is_dir() else path
    if not file.is_file():
        raise DataError(f"`truth` {path}: no such file (expected the generator's "
                        "truth/uplift.parquet or the truth/ folder holding it).")
    truth = open_artifact(file, "parquet", rebuild="valuechain generate churn --truth",
                          what="the true effects")
    missing = [c for c in (key, "decision_time", "uplift") if c not in truth.columns]
    if missing:
        raise DataError(f"`truth` {file}: columns {missing} are missing; expected "
                        f"'{key}', 'decision_time' and 'uplift' (valuechain generate churn).")
    out = truth[[key, "decision_time", "uplift"]].copy()
    out["decision_time"] = pd.to_datetime(out["decision_time"]).astype("datetime64[us]")
    return out


def _roles(loaded: LoadedSpec, frame: pd.DataFrame, time_col: str, y: F64
           ) -> dict[str, npt.NDArray[np.bool_]]:
    spec = loaded.spec
    horizon = spec.label.horizon
    split = spec.split
    embargo = split.embargo if split and split.embargo is not None else horizon
    periods = (list(split.periods) if split is not None and len(split.periods) >= 2
               else default_periods(frame[time_col], horizon, embargo=embargo))
    masks = time_splits(frame[time_col], y, periods, embargo=embargo, horizon=horizon,
                        min_positives=spec.split.min_positives if spec.split else 20,
                        source=loaded.path.name)
    names = [p.name for p in periods]
    if len(names) >= 3:
        return {"train": masks[names[0]], "validation": masks[names[1]],
                "test": masks[names[2]]}
    train, validation = split_validation(pd.to_datetime(frame[time_col]), masks[names[0]])
    return {"train": train, "validation": validation, "test": masks[names[1]]}


def _risk_scores(loaded: LoadedSpec, ids: pd.Series) -> tuple[F64 | None, str | None]:
    """The best candidate's test scores of the latest training run, aligned with ``ids``."""
    run = latest_run(loaded.workspace / "runs", root=loaded.root)
    if run is None or not (run / "predictions_test.parquet").is_file():
        return None, None
    metrics = open_artifact(run / "metrics.json", "json", expect=dict,
                            rebuild=fix_command(loaded.root))
    best = metrics.get("best_candidate")
    preds = open_artifact(run / "predictions_test.parquet", "parquet",
                          rebuild=fix_command(loaded.root))
    column = f"score_{best}"
    if column not in preds.columns or "decision_id" not in preds.columns:
        return None, None
    scores = ids.map(preds.set_index("decision_id")[column])
    if scores.isna().mean() > 0.01:
        return None, None  # the run was made on another frame or period
    return scores.fillna(scores.median()).to_numpy(dtype=np.float64), f"{run.name}:{best}"


def mature_mask(manifest: dict[str, Any], loaded: LoadedSpec, times: pd.Series
                ) -> npt.NDArray[np.bool_]:
    """Rows whose label is mature at the frame's ``as_of`` (:func:`valuechain.data.pit.
    is_mature` with the build's label delay): the built frame holds only those, this makes
    sure a listing younger than the horizon never counts."""
    as_of = pd.Timestamp(manifest["as_of"])
    if as_of.tzinfo is not None:
        as_of = as_of.tz_convert("UTC").tz_localize(None)
    as_of_us = int(as_of.value // 1000)
    delay = manifest.get("label_delay")
    delay_us = int(float(delay.get("seconds", 0)) * 1e6) if isinstance(delay, dict) else 0
    horizon_us = to_micros(loaded.spec.label.horizon)
    t_us = pd.to_datetime(times).to_numpy().astype("datetime64[us]").astype(np.int64)
    return np.array([is_mature(int(t), horizon_us, delay_us, as_of_us) for t in t_us],
                    dtype=bool)


def pooled_estimate_for(loaded: LoadedSpec, *, n_boot: int = 500, seed: int = 0
                        ) -> PooledEstimate:
    """The pooled control - treated outcome rate over the spec's matured listings so far."""
    treatment_of(loaded)
    built = build_frame(loaded)
    frame = open_artifact(built.frame, "parquet", what="the built frame",
                          rebuild=fix_command(loaded.root, "build", "--force"))
    time_col = str(built.manifest["frame"]["time_column"])
    a = assignment_for(loaded, frame, time_col).frame
    a = a[mature_mask(built.manifest, loaded, a[time_col])]
    y = (a[loaded.spec.label.name].to_numpy(dtype=np.float64) > 0).astype(np.float64)
    return pooled_estimate(y, a["treated"].to_numpy(dtype=np.float64),
                           _week_labels(a[time_col]), a[loaded.spec.treatment.key  # type: ignore[union-attr]
                                                       ].to_numpy(), n_boot=n_boot, seed=seed)


def _iv(interval: Any) -> dict[str, float]:
    return {"value": interval.value, "low": interval.low, "high": interval.high}


def _week_labels(times: pd.Series) -> list[str]:
    return [t.strftime("%Y-%m-%d") for t in pd.to_datetime(times)]


def run_uplift(
    loaded: LoadedSpec,
    *,
    truth: Path | None = None,
    learners: Sequence[tuple[str, str]] = DEFAULT_LEARNERS,
    n_boot: int = 200,
    seed: int = 0,
    progress: Progress | None = None,
) -> UpliftRun:
    """Run the whole uplift stage and publish ``<workspace>/uplift/<run_id>/``.

    Raises
    ------
    SpecError
        No ``treatment:`` block, or no capacity (``value.capacity``).
    DataError
        The history does not join, a group lacks both classes, the truth is unreadable.
    """
    started = time.perf_counter()

    def step(what: str, share: float) -> None:
        if progress:
            progress(what, share)

    spec = loaded.spec
    block = treatment_of(loaded)
    capacity = spec_capacity(loaded)
    if capacity is None:
        raise SpecError(f"{loaded.where('value')}: `value.capacity` is needed: the lists "
                        "compared take `limit` decision points per period, e.g. "
                        "`capacity: {call: {limit: 200, per: 7d}}`.")
    action, cap = capacity
    step("reading the frame", 0.0)
    built = build_frame(loaded)
    frame = open_artifact(built.frame, "parquet", what="the built frame",
                          rebuild=fix_command(loaded.root, "build", "--force"))
    time_col = str(built.manifest["frame"]["time_column"])
    frame[time_col] = pd.to_datetime(frame[time_col]).astype("datetime64[us]")
    y_all = (frame[spec.label.name].to_numpy(dtype=np.float64) > 0).astype(np.float64)
    roles = _roles(loaded, frame, time_col, y_all)
    step("joining the randomized history", 0.05)
    assignment = assignment_for(loaded, frame, time_col)
    a = assignment.frame
    a = a[mature_mask(built.manifest, loaded, a[time_col])].reset_index(drop=True)
    rows = a["frame_row"].to_numpy()
    y = y_all[rows]
    t = a["treated"].to_numpy(dtype=np.float64)
    e = a["propensity"].to_numpy(dtype=np.float64)
    arole = {name: mask[rows] for name, mask in roles.items()}
    features = FeatureSet.infer(frame, [f.name for f in spec.features])
    key = block.key
    truth_frame = read_truth(truth, key) if truth is not None else None
    true_all: F64 | None = None
    if truth_frame is not None:
        joined = frame[[key, time_col]].merge(
            truth_frame.rename(columns={"decision_time": time_col}), on=[key, time_col],
            how="left")
        true_all = joined["uplift"].to_numpy(dtype=np.float64)

    # 2. learners
    fitted: dict[str, TwoModel | ClassTransformation] = {}
    scores: dict[str, dict[str, Any]] = {}
    tr, va, te = arole["train"], arole["validation"], arole["test"]
    for i, (learner, base) in enumerate(learners):
        name = f"{learner}_{base}"
        step(f"fitting {name}", 0.1 + 0.4 * i / max(1, len(learners)))
        t0 = time.perf_counter()
        model = fit_learner(learner, features, a[tr], y[tr], t[tr], e[tr], a[va], y[va],
                            t[va], e[va], base=base, seed=seed)
        fitted[name] = model
        valid_pred, test_pred = model.predict(a[va]), model.predict(a[te])
        blocks_v, blocks_t = a.loc[va, key].to_numpy(), a.loc[te, key].to_numpy()
        weeks_t = a.loc[te, time_col].to_numpy()
        k_share = 0.3
        scores[name] = {
            "learner": learner, "base": base, "fit_seconds": round(time.perf_counter() - t0, 2),
            "validation": {m: _iv(iv) for m, iv in uplift_intervals(
                valid_pred, t[va], y[va], blocks_v, k=k_share, n_boot=n_boot,
                seed=seed).items()},
            "test": {m: _iv(iv) for m, iv in uplift_intervals(
                test_pred, t[te], y[te], blocks_t, k=k_share, periods=weeks_t, n_boot=n_boot,
                seed=seed).items()},
            "test_mean_prediction": float(np.mean(test_pred)),
        }
        if true_all is not None:
            true_t = true_all[rows][te]
            ok = np.isfinite(true_t)
            scores[name]["test_truth"] = {
                "corr_listed": float(np.corrcoef(test_pred[ok], true_t[ok])[0, 1]),
                "mean_true_listed": float(np.mean(true_t[ok]))}
    chosen = max(fitted, key=lambda n: np.nan_to_num(
        scores[n]["validation"]["qini"]["value"], nan=-np.inf))
    model = fitted[chosen]

    # 3. risk vs uplift ranking on the randomized test rows
    step("scoring the test weeks", 0.55)
    test_rows = np.flatnonzero(roles["test"])
    test_frame = frame.iloc[test_rows]
    risk_test, risk_source = _risk_scores(loaded, test_frame["decision_id"]) if \
        "decision_id" in test_frame.columns else (None, None)
    uplift_test = model.predict(test_frame)
    assigned_test = a[te]
    blocks_t = assigned_test[key].to_numpy()
    pos_in_test = pd.Series(np.arange(len(test_rows)), index=test_rows)
    at = pos_in_test.reindex(assigned_test["frame_row"].to_numpy()).to_numpy()
    curves = {"uplift": {kind: curve_band(kind, uplift_test[at], t[te], y[te], blocks_t,
                                          n_boot=n_boot, seed=seed).to_json()
                         for kind in ("qini", "gain")}}
    ranking = {"uplift": scores[chosen]["test"]}
    if risk_test is not None:
        step("the risk ranking on the same rows", 0.6)
        curves["risk"] = {kind: curve_band(kind, risk_test[at], t[te], y[te], blocks_t,
                                           n_boot=n_boot, seed=seed).to_json()
                          for kind in ("qini", "gain")}
        ranking["risk"] = {m: _iv(iv) for m, iv in uplift_intervals(
            risk_test[at], t[te], y[te], blocks_t, k=0.3,
            periods=assigned_test[time_col].to_numpy(), n_boot=n_boot, seed=seed).items()}

    # 4. lists on every test decision point
    step("comparing lists", 0.7)
    per_us = to_micros(cap.per)
    t_us = test_frame[time_col].to_numpy().astype("datetime64[us]").astype(np.int64)
    period = capacity_period(t_us, per_us)
    lists: dict[str, npt.NDArray[np.bool_]] = {}
    if risk_test is not None:
        lists["risk"] = top_per_period(risk_test, period, cap.limit, seed)
    lists["uplift"] = top_per_period(uplift_test, period, cap.limit, seed)
    if risk_test is not None:
        # the uplift model only saw customers today's rule listed (high risk): rank by
        # uplift within the riskiest 2 x capacity, where its training data lies
        pool = top_per_period(risk_test, period, 2 * cap.limit, seed)
        lists["risk_then_uplift"] = top_per_period(np.where(pool, uplift_test, -np.inf),
                                                   period, cap.limit, seed) & pool
    rng = np.random.default_rng(seed)
    lists["random"] = top_per_period(rng.uniform(size=len(test_rows)), period, cap.limit, seed)
    rule_expr = spec.value.baseline_policy if spec.value else None
    if rule_expr:
        flag = np.asarray(evaluate(rule_expr, test_frame,
                                   where=loaded.where("value", "baseline_policy")))
        flag = np.nan_to_num(flag.astype(np.float64))
        lists["rule"] = top_per_period(flag, period, cap.limit, seed)
    value = row_costs(loaded, test_frame, "false_negative")
    cost = row_costs(loaded, test_frame, "review")
    value = np.zeros(len(test_rows)) if value is None else np.nan_to_num(value)
    cost = np.zeros(len(test_rows)) if cost is None else np.nan_to_num(cost)
    assigned_mask = np.zeros(len(test_rows), dtype=bool)
    assigned_mask[at] = True
    full_t = np.zeros(len(test_rows))
    full_t[at] = t[te]
    full_e = np.full(len(test_rows), 0.5)
    full_e[at] = e[te]
    true_test = None if true_all is None else true_all[test_rows]
    outcomes: list[ListOutcome] = compare_lists(
        lists, customers=test_frame[key].to_numpy(), value=value, cost=cost,
        assigned=assigned_mask, outcome=y_all[test_rows], treated=full_t, propensity=full_e,
        true_uplift=true_test, reference="risk", n_boot=n_boot, seed=seed)

    # 5. truth checks (generated worlds)
    checks: dict[str, Any] = {}
    pooled = pooled_estimate(y, t, _week_labels(a[time_col]), a[key].to_numpy(),
                             n_boot=max(n_boot, 200), seed=seed)
    if true_all is not None:
        true_listed = true_all[rows]
        checks["pooled_vs_true_mean"] = {
            "estimate": _iv(pooled.effect), "true_mean_uplift_listed": float(
                np.nanmean(true_listed)),
            "agrees": pooled.effect.contains(float(np.nanmean(true_listed)))}
        terciles = pd.qcut(pd.Series(scores_chosen := fitted[chosen].predict(a[te])), 3,
                           labels=False, duplicates="drop").to_numpy()
        by_group = []
        for g in sorted(set(terciles.tolist())):
            sel = terciles == g
            est = pooled_estimate(y[te][sel], t[te][sel], np.zeros(int(sel.sum())),
                                  blocks_t[sel], n_boot=n_boot, seed=seed).effect
            truth_g = float(np.nanmean(true_listed[te][sel]))
            by_group.append({"group": int(g) + 1, "rows": int(sel.sum()),
                             "mean_predicted": float(np.mean(scores_chosen[sel])),
                             "estimate": _iv(est), "true_mean": truth_g,
                             "agrees": est.contains(truth_g)})
        checks["by_predicted_tercile"] = by_group
        checks["lists"] = {o.name: o.to_json().get("estimate_covers_truth") for o in outcomes}
    weekly = weekly_rates(y, t, _week_labels(a[time_col]))

    summary: dict[str, Any] = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "spec_hash": loaded.hash, "seed": seed, "n_boot": n_boot,
        "treatment": block.model_dump(mode="json"), "assignment": assignment.to_json(),
        "label": spec.label.name, "action": action, "capacity": cap.limit,
        "capacity_per": str(cap.per),
        "periods": {name: int(mask.sum()) for name, mask in arole.items()},
        "chosen_learner": chosen, "learners": scores, "risk_source": risk_source,
        "ranking_on_randomized_test_rows": ranking, "curves": curves,
        "lists": [o.to_json() for o in outcomes],
        "weeks_test": len(np.unique(period)),
        "pooled": pooled.to_json(),
        "weekly": weekly.assign(week=weekly["week"].astype(str)).to_dict(orient="records"),
        "truth": str(truth) if truth is not None else None, "truth_checks": checks or None,
    }
    summary["verdict"] = _verdict(outcomes)

    # 6. publish
    step("writing the run", 0.9)
    root = loaded.workspace / "uplift"
    root.mkdir(parents=True, exist_ok=True)
    run_id = f"{datetime.now(UTC):%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
    summary["run_id"] = run_id
    import tempfile

    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
    try:
        for name, m in fitted.items():
            save_learner(m, tmp / "learners" / name, {"name": name})
        save_learner(model, tmp / CHOSEN, {"name": chosen, "run_id": run_id})
        out = pd.DataFrame({
            "decision_id": test_frame["decision_id"].to_numpy() if "decision_id" in
            test_frame.columns else np.arange(len(test_rows)),
            key: test_frame[key].to_numpy(), time_col: test_frame[time_col].to_numpy(),
            "label": y_all[test_rows], "uplift": uplift_test, "assigned": assigned_mask,
            "treated": full_t, "propensity": full_e,
            "ht": np.where(assigned_mask, ht_terms(y_all[test_rows], full_t, full_e), 0.0),
            **({"risk": risk_test} if risk_test is not None else {}),
            **{f"in_{n}": mask for n, mask in lists.items()},
            **({"true_uplift": true_test} if true_test is not None else {})})
        write_parquet(tmp / "scores_test.parquet", pa.Table.from_pandas(out,
                                                                        preserve_index=False))
        summary["seconds"] = round(time.perf_counter() - started, 1)
        write_json(tmp / "uplift.json", summary)
        final = root / run_id
        os.replace(tmp, final)
        os.chmod(final, 0o755)
    except BaseException:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
        raise
    write_text(root / LATEST, run_id + "\n")
    step("done", 1.0)
    return UpliftRun(run_id, final, summary, time.perf_counter() - started)


def _verdict(outcomes: list[ListOutcome]) -> str:
    """One honest sentence: does the uplift-ranked list save more than the risk-ranked one?"""
    by = {o.name: o for o in outcomes}
    if "uplift" not in by or "risk" not in by:
        return "no risk-ranked list to compare with (train a run first: valuechain train)"
    u, r = by["uplift"], by["risk"]
    if u.true_saves_vs_risk is not None:
        d = u.true_saves_vs_risk
        if d.low > 0:
            return (f"the uplift-ranked list saves more churners than the risk-ranked list "
                    f"(true saves {u.true_saves.value if u.true_saves else 0:.1f} vs "
                    f"{r.true_saves.value if r.true_saves else 0:.1f}, difference "
                    f"{d.value:+.1f} [{d.low:+.1f}, {d.high:+.1f}])")
        if d.high < 0:
            return (f"the uplift-ranked list saves FEWER churners than the risk-ranked list "
                    f"(difference {d.value:+.1f} [{d.low:+.1f}, {d.high:+.1f}]): the effect "
                    "was learned only on the customers today's rule listed, and the model "
                    "extrapolates poorly to the rest of the population")
        return (f"the uplift-ranked list does not save measurably more churners than the "
                f"risk-ranked list (difference {d.value:+.1f} [{d.low:+.1f}, {d.high:+.1f}])")
    return (f"estimated on the randomized overlap only: uplift list "
            f"{u.saves_measured.value:.1f} saves over {u.measured} measured rows "
            f"({u.measured_share:.0%} of the list), risk list {r.saves_measured.value:.1f} "
            f"over {r.measured} ({r.measured_share:.0%}); the rest is not measurable from "
            "the history")
