"""valuechain train end to end on a generated world: runs, metrics, verdicts, persistence."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from valuechain.cli import app
from valuechain.models import load_candidate
from valuechain.spec import load_spec
from valuechain.train import list_runs, train_project

METRICS = ("roc_auc", "average_precision", "brier", "log_loss", "ece",
           "precision_at_capacity", "recall_at_capacity", "expected_cost")


def test_train_writes_a_complete_run(train_world: Path) -> None:
    loaded = load_spec(train_world)
    run = train_project(loaded, seed=1)
    out = run.to_json()
    assert set(out["candidates"]) == {"prior", "rules", "logistic", "lightgbm"}
    for entry in out["candidates"].values():
        for role in ("validation", "test"):
            for metric in METRICS:
                assert metric in entry[role], (role, metric)
                assert f"{metric}_low" in entry[role] and f"{metric}_high" in entry[role]
                low, high = entry[role][f"{metric}_low"], entry[role][f"{metric}_high"]
                assert low <= high or np.isnan(low)
    test = out["candidates"]
    assert test["prior"]["test"]["roc_auc"] == pytest.approx(0.5)
    assert test["lightgbm"]["test"]["roc_auc"] > 0.75
    assert "card_precision_at_k" in test["lightgbm"]["test"]
    # Verdicts: every model against every baseline, with the paired interval.
    pairs = {(v["candidate"], v["baseline"]): v for v in out["verdicts"]}
    for model in ("logistic", "lightgbm"):
        for baseline in ("prior", "rules"):
            assert pairs[(model, baseline)]["verdict"] == "beats"
            assert pairs[(model, baseline)]["difference"]["low"] > 0
    gap = out["random_vs_time"]
    assert {"auc_time_split", "auc_random_split", "gap", "explanation"} <= set(gap)
    # The run directory: portable models, calibrators, predictions, metrics.
    run_dir = Path(out["run_dir"])
    assert (run_dir / "candidates" / "lightgbm" / "model.txt").exists()
    assert not list(run_dir.rglob("*.pkl")) and not list(run_dir.rglob("*.pickle"))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["run_id"] == out["run_id"] and metrics["splits"]["embargo"] == "60d"
    assert metrics["candidates"]["lightgbm"]["calibration"]["method"] in ("isotonic", "sigmoid")
    predictions = pd.read_parquet(run_dir / "predictions_test.parquet")
    reloaded = load_candidate(run_dir / "candidates" / "lightgbm")
    frame = pd.read_parquet(loaded.workspace / metrics["frame"]["path"])
    test_rows = frame[frame["transaction_id"].isin(predictions["transaction_id"])]
    again = reloaded.predict(test_rows.set_index("transaction_id").loc[
        predictions["transaction_id"]].reset_index())
    np.testing.assert_allclose(again, predictions["raw_lightgbm"], rtol=1e-9)
    assert list_runs(loaded.workspace / "runs")[0]["run_id"] == out["run_id"]
    assert (loaded.workspace / "runs" / "latest").read_text().strip() == out["run_id"]


def test_train_cli_json_and_embargo_error(train_world: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["train", "--spec", str(train_world), "--candidates",
                                      "prior,logistic", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert set(out["candidates"]) == {"prior", "logistic"} and out["run_id"]
    listed = CliRunner().invoke(app, ["runs", "--spec", str(train_world), "--json"])
    assert out["run_id"] in listed.output

    spec = yaml.safe_load((train_world / "valuechain.yaml").read_text())
    spec["split"]["embargo"] = "7d"
    (tmp_path / "valuechain.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    shutil.copytree(train_world / "data", tmp_path / "data")
    bad = CliRunner().invoke(app, ["train", "--spec", str(tmp_path)])
    assert bad.exit_code == 2 and "Traceback" not in bad.output
    assert "embargo" in bad.output and "60d" in bad.output


def test_backtest_folds_step_forward(train_world: Path) -> None:
    run = train_project(load_spec(train_world), candidates=["prior", "logistic"],
                        backtest_folds=3)
    backtest = run.metrics["backtest"]
    assert len(backtest["folds"]) == 3
    starts = [f["test_start"] for f in backtest["folds"]]
    assert starts == sorted(starts)
    for fold in backtest["folds"]:
        assert fold["train_end"] < fold["test_start"]
    assert backtest["summary"]["prior"]["roc_auc_mean"] == pytest.approx(0.5)


def test_a_failed_run_leaves_nothing_behind(train_world: Path) -> None:
    from valuechain.errors import ValuechainError

    loaded = load_spec(train_world)
    runs = loaded.workspace / "runs"
    before = sorted(p.name for p in runs.iterdir()) if runs.exists() else []
    with pytest.raises(ValuechainError, match="not enough history"):
        train_project(loaded, candidates=["prior"], backtest_folds=40)
    assert sorted(p.name for p in runs.iterdir()) == before
    assert not list(runs.glob(".tmp-*"))


@pytest.mark.parametrize("distinct", [1, 3, 12, 5000])
def test_curves_collapse_tied_scores_as_scikit_learn_does(distinct: int) -> None:
    from sklearn.metrics import precision_recall_curve, roc_curve

    from valuechain.train.scoring import curves

    rng = np.random.default_rng(distinct)
    labels = (rng.random(4000) < 0.1).astype(np.float64)
    # heavy ties: `distinct` score values (1 = the constant `prior`), shuffled rows
    levels = np.sort(rng.random(distinct))
    scores = levels[rng.integers(0, distinct, len(labels))] + 0.05 * labels * (distinct > 1)
    scores = np.round(scores, 6)
    out = curves(scores, labels, points=10_000)
    fpr, tpr, _ = roc_curve(labels, scores, drop_intermediate=False)
    np.testing.assert_allclose(out["roc"]["fpr"], fpr, atol=1e-5)
    np.testing.assert_allclose(out["roc"]["tpr"], tpr, atol=1e-5)
    precision, recall, _ = precision_recall_curve(labels, scores)
    # scikit-learn: increasing thresholds plus a final (recall 0, precision 1) point
    np.testing.assert_allclose(out["pr"]["recall"], recall[:-1][::-1], atol=1e-5)
    np.testing.assert_allclose(out["pr"]["precision"], precision[:-1][::-1], atol=1e-5)
    if distinct == 1:
        assert out["roc"] == {"fpr": [0.0, 1.0], "tpr": [0.0, 1.0]}
        assert out["pr"]["precision"] == [pytest.approx(labels.mean(), abs=1e-5)]


def test_curves_are_thinned_but_keep_both_ends() -> None:
    from valuechain.train.scoring import curves

    rng = np.random.default_rng(0)
    labels = (rng.random(20_000) < 0.2).astype(np.float64)
    out = curves(rng.random(20_000) + labels, labels, points=50)
    assert 45 <= len(out["pr"]["recall"]) <= 50
    assert out["roc"]["fpr"][-1] == out["roc"]["tpr"][-1] == out["pr"]["recall"][-1] == 1.0
    assert out["roc"]["fpr"] == sorted(out["roc"]["fpr"])


def test_user_estimators_are_candidates_beside_ours(train_world: Path, tmp_path: Path) -> None:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.linear_model import LogisticRegression

    from valuechain.errors import SpecError

    run = train_project(load_spec(train_world), candidates=["prior"],
                        estimators={"my_hgb": HistGradientBoostingClassifier(max_iter=30)})
    assert set(run.candidates) == {"prior", "my_hgb"}
    assert run.best_candidate == "my_hgb"
    assert run.candidates["my_hgb"].test["roc_auc"] > 0.75
    assert any(v.candidate == "my_hgb" and v.baseline == "prior" for v in run.verdicts)
    predictions = pd.read_parquet(Path(run.run_dir) / "predictions_test.parquet")
    assert {"score_my_hgb", "raw_my_hgb"} <= set(predictions.columns)
    assert list((Path(run.run_dir) / "candidates" / "my_hgb").iterdir())  # saved with the run
    assert run.candidates["my_hgb"].describe["persistence"] == "skops"  # described once saved
    with pytest.raises(SpecError, match="'lightgbm' is taken by a built-in candidate"):
        train_project(load_spec(train_world), candidates=["prior"],
                      estimators={"lightgbm": LogisticRegression()})
