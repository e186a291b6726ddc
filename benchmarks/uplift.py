"""Uplift learners: ours against scikit-uplift's on the churn world's randomized history.

Usage (a built churn project with a ``treatment:`` block; scikit-uplift optional)::

    python benchmarks/uplift.py --spec /path/to/churn --truth /path/to/churn/data/truth
    PYTHONPATH=/tmp/sklift python benchmarks/uplift.py --spec ...   # with scikit-uplift 0.5.1

Fits each learner on the randomized listings of the spec's training period (LightGBM stops
early on validation), then on the randomized listings of the test period reports the fit
time, the Qini coefficient (:func:`valuechain.uplift.metrics.qini_coefficient`, 95 %
interval resampling customers) and, with the truth, the correlation of the prediction with
the true effect and its mean against the true mean. scikit-uplift's ``TwoModels``
(vanilla) and ``ClassTransformation`` (no propensity: it assumes half treated) run on the
same rows with the same classifiers. It also cross-checks our Qini curve against
``sklift.metrics.qini_curve`` on the same ranking (outcome "stays" = 1 - churn). Prints a
Markdown table.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from valuechain.artifacts import fix_command, open_artifact
from valuechain.data.build import build_frame
from valuechain.evaluate.bootstrap import block_bootstrap
from valuechain.models import FeatureSet
from valuechain.spec.loader import load_spec
from valuechain.uplift.assign import assignment_for
from valuechain.uplift.learners import fit_learner
from valuechain.uplift.metrics import qini_coefficient, qini_curve
from valuechain.uplift.run import _roles, mature_mask, read_truth


def _sklift_rows(train: pd.DataFrame, test: pd.DataFrame, features: FeatureSet
                 ) -> tuple[np.ndarray, np.ndarray]:
    both = pd.get_dummies(pd.concat([train, test])[list(features.columns)],
                          columns=list(features.categorical), dummy_na=True, dtype=float)
    both = both.fillna(0.0)
    return both.iloc[: len(train)].to_numpy(), both.iloc[len(train):].to_numpy()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, required=True)
    parser.add_argument("--truth", type=Path)
    parser.add_argument("--n-boot", type=int, default=200)
    args = parser.parse_args()
    import lightgbm  # noqa: F401  (imported before the clock starts: not part of a fit)
    import sklearn.linear_model  # noqa: F401
    loaded = load_spec(args.spec)
    built = build_frame(loaded)
    frame = open_artifact(built.frame, "parquet", rebuild=fix_command(loaded.root, "build"))
    time_col = str(built.manifest["frame"]["time_column"])
    frame[time_col] = pd.to_datetime(frame[time_col]).astype("datetime64[us]")
    y_all = (frame[loaded.spec.label.name].to_numpy(np.float64) > 0).astype(np.float64)
    roles = _roles(loaded, frame, time_col, y_all)
    a = assignment_for(loaded, frame, time_col).frame
    a = a[mature_mask(built.manifest, loaded, a[time_col])].reset_index(drop=True)
    rows = a["frame_row"].to_numpy()
    y, t, e = y_all[rows], a["treated"].to_numpy(np.float64), a["propensity"].to_numpy()
    tr, va, te = (roles[r][rows] for r in ("train", "validation", "test"))
    key = loaded.spec.treatment.key  # type: ignore[union-attr]
    features = FeatureSet.infer(frame, [f.name for f in loaded.spec.features])
    truth = None
    if args.truth:
        tt = read_truth(args.truth, key).rename(columns={"decision_time": time_col})
        truth = a[[key, time_col]].merge(tt, on=[key, time_col], how="left")["uplift"]
        truth = truth.to_numpy(np.float64)[te]
    blocks = a.loc[te, key].to_numpy()
    results: list[dict[str, Any]] = []

    def record(name: str, seconds: float, pred: np.ndarray) -> None:
        iv = block_bootstrap(qini_coefficient, blocks, pred, t[te], y[te], n_boot=args.n_boot)
        row = {"learner": name, "fit_s": seconds, "qini": iv}
        if truth is not None:
            ok = np.isfinite(truth)
            row["corr"] = float(np.corrcoef(pred[ok], truth[ok])[0, 1])
            row["mean"] = float(np.mean(pred))
            row["true_mean"] = float(np.mean(truth[ok]))
        results.append(row)
        print(f"{name}: {seconds:.1f} s, Qini {iv.value:.4f}", flush=True)

    for learner in ("two_model", "class_transformation"):
        for base in ("logistic", "lightgbm"):
            started = time.perf_counter()
            model = fit_learner(learner, features, a[tr], y[tr], t[tr], e[tr], a[va], y[va],
                                t[va], e[va], base=base)
            record(f"valuechain {learner} / {base}", time.perf_counter() - started,
                   model.predict(a[te]))
    try:
        from lightgbm import LGBMClassifier
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler
        from sklift.metrics import qini_curve as sk_qini_curve
        from sklift.models import ClassTransformation, TwoModels
    except ImportError as err:
        print(f"scikit-uplift not importable ({err}); only our learners measured")
    else:
        x_tr, x_te = _sklift_rows(a[tr | va], a[te], features)
        fit_rows = tr | va  # sklift has no early stopping: train on train + validation
        # stays = 1 - churn: sklift maximises the outcome, so its uplift is our effect
        stays, treat = 1 - y[fit_rows], t[fit_rows].astype(int)
        classifiers = {
            "logistic": lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
            "lightgbm": lambda: LGBMClassifier(n_estimators=100, learning_rate=0.05,
                                               num_leaves=7, min_child_samples=50,
                                               verbose=-1),
        }
        for base, make in classifiers.items():
            started = time.perf_counter()
            two = TwoModels(estimator_trmnt=make(), estimator_ctrl=make(), method="vanilla")
            two.fit(x_tr, stays, treat)
            record(f"scikit-uplift TwoModels / {base}", time.perf_counter() - started,
                   two.predict(x_te))
            started = time.perf_counter()
            ct = ClassTransformation(estimator=make())
            ct.fit(x_tr, stays, treat)
            record(f"scikit-uplift ClassTransformation / {base}",
                   time.perf_counter() - started, ct.predict(x_te))
        # the metric itself: our Qini curve = sklift's on "stays"
        score = np.random.default_rng(0).uniform(size=int(te.sum()))
        k, ours = qini_curve(score, t[te], y[te])
        xs, theirs = sk_qini_curve(1 - y[te], score, t[te].astype(int))
        gap = float(np.max(np.abs(np.interp(xs, k, ours) - theirs)))
        print(f"Qini curve, ours vs sklift.metrics.qini_curve: largest gap {gap:.2e}")
    print(f"\n{int(tr.sum()):,} train, {int(va.sum()):,} validation, {int(te.sum()):,} test "
          f"randomized listings ({int(t[te].sum()):,} treated on test)\n")
    head = "| learner | fit s | test Qini [95 %] |" + (
        " corr. with true effect | mean prediction (true mean) |" if truth is not None else "")
    print(head)
    print("|---|---|---|" + ("---|---|" if truth is not None else ""))
    for r in results:
        iv = r["qini"]
        line = f"| {r['learner']} | {r['fit_s']:.1f} | {iv.value:.4f} [{iv.low:.4f}, {iv.high:.4f}] |"
        if truth is not None:
            line += f" {r['corr']:.3f} | {r['mean']:.4f} ({r['true_mean']:.4f}) |"
        print(line)


if __name__ == "__main__":
    main()
