"""Money that cannot silently go wrong: stale frames, stored costs, damaged runs, moved projects.

One run is trained once on a 150k-transaction world; each test works on its own copy of the
project folder (runs store no absolute path, so a copy decides like the original).
"""

from __future__ import annotations

import json
import shutil
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from valuechain.cli import app
from valuechain.data.build import build_frame
from valuechain.data.sources import fingerprint
from valuechain.decide import DecideResult, decide_project
from valuechain.errors import ArtifactError, DataError, SpecError
from valuechain.spec import load_spec
from valuechain.train import TrainResult, latest_run, train_project


@pytest.fixture(scope="module")
def trained(train_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("provenance") / "project"
    project.mkdir()
    shutil.copy(train_world / "valuechain.yaml", project / "valuechain.yaml")
    shutil.copytree(train_world / "data", project / "data")
    train_project(load_spec(project), candidates=["prior", "rules", "logistic"])
    return project


@pytest.fixture()
def project(trained: Path, tmp_path: Path) -> Path:
    """A private copy of the trained project (data, spec, built frame and run)."""
    copy = tmp_path / "copy"
    shutil.copytree(trained, copy)
    return copy


def _edit_spec(project: Path, edit: dict[str, object]) -> None:
    spec = yaml.safe_load((project / "valuechain.yaml").read_text())
    for dotted, value in edit.items():
        *parents, last = dotted.split(".")
        node = spec
        for key in parents:
            node = node[key]
        node[last] = value
    (project / "valuechain.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))


def test_decide_refuses_a_run_made_from_another_frame(project: Path) -> None:
    loaded = load_spec(project)
    run = TrainResult.load(latest_run(loaded.workspace / "runs"))
    assert run.frame.path == "build/frame.parquet"  # relative to the workspace
    assert run.frame.fingerprint == fingerprint([loaded.workspace / "build" / "frame.parquet"])
    before = decide_project(loaded).to_json()["test"]["savings"]["approve_all"]["value"]

    build_frame(loaded, as_of=datetime(2025, 8, 1), force=True)
    rebuilt = fingerprint([loaded.workspace / "build" / "frame.parquet"])
    assert rebuilt != run.frame.fingerprint
    with pytest.raises(ArtifactError) as caught:
        decide_project(loaded)
    message = str(caught.value)
    assert run.frame.fingerprint in message and rebuilt in message
    assert f"valuechain train --spec {project}" in message
    assert "\n" not in message  # one paragraph

    cli = CliRunner().invoke(app, ["decide", "--spec", str(project)])
    assert cli.exit_code == 2 and "Traceback" not in cli.output
    assert run.frame.fingerprint in cli.output.replace("\n", "")

    # The command it names fixes it: train on the current frame, then decide.
    train_project(load_spec(project), candidates=["prior", "rules", "logistic"])
    after = decide_project(load_spec(project)).to_json()
    assert after["frame"]["fingerprint"] == fingerprint(
        [loaded.workspace / "build" / "frame.parquet"])
    assert np.isfinite(before) and after["test"]["decisions"] > 0


def test_typed_results_round_trip_through_their_files(project: Path) -> None:
    loaded = load_spec(project)
    run_dir = latest_run(loaded.workspace / "runs")
    assert run_dir is not None
    run = TrainResult.load(run_dir)
    on_disk = json.loads((run_dir / "metrics.json").read_text())
    assert run.to_metrics() == on_disk  # the writer's dict is the loader's
    assert run.to_json()["candidates"]["logistic"]["test"] == on_disk["candidates"][
        "logistic"]["test"]
    decided = decide_project(loaded)
    again = DecideResult.load(loaded.workspace)
    assert again.to_json() == decided.to_json() == json.loads(
        (loaded.workspace / "decide.json").read_text())
    assert again.frame == run.frame and again.run_id == run.run_id


def test_a_frame_replaced_by_hand_is_refused(project: Path) -> None:
    loaded = load_spec(project)
    frame_path = loaded.workspace / "build" / "frame.parquet"
    frame = pd.read_parquet(frame_path)
    run = TrainResult.load(latest_run(loaded.workspace / "runs"))
    frame.iloc[:-1].to_parquet(frame_path, index=False)
    with pytest.raises(ArtifactError) as caught:
        decide_project(loaded)
    message = str(caught.value)
    assert run.frame.fingerprint in message and fingerprint([frame_path]) in message
    assert f"valuechain build --spec {project} --force" in message or (
        f"valuechain train --spec {project}" in message)


def test_predictions_carry_the_decision_id_and_every_priced_input(project: Path) -> None:
    loaded = load_spec(project)
    run_dir = latest_run(loaded.workspace / "runs")
    assert run_dir is not None
    frame = pd.read_parquet(loaded.workspace / "build" / "frame.parquet")
    for role in ("validation", "test"):
        table = pd.read_parquet(run_dir / f"predictions_{role}.parquet")
        assert table.columns[0] == "decision_id" and table["decision_id"].is_unique
        for column in ("label", "cost_false_negative", "cost_false_positive", "cost_review",
                       "rule", "score_logistic", "raw_logistic"):
            assert column in table.columns, column
        rows = frame.set_index(frame["transaction_id"].astype(str)).loc[table["decision_id"]]
        np.testing.assert_allclose(table["cost_false_negative"], rows["amount"])
        np.testing.assert_allclose(table["cost_false_positive"], 0.1 * rows["amount"] + 5)
        assert (table["cost_review"] == 3.0).all()
        rule = (rows["amount"] > 500) | (rows["ships_abroad"] == 1)
        np.testing.assert_array_equal(table["rule"].to_numpy(), rule.to_numpy())


def test_decide_no_longer_needs_the_frame_and_survives_a_moved_project(
        project: Path, tmp_path: Path) -> None:
    original = decide_project(load_spec(project)).to_json()
    moved = tmp_path / "elsewhere" / "renamed"
    shutil.move(str(project), moved)
    result = decide_project(load_spec(moved))
    assert result.to_json()["test"]["savings"] == original["test"]["savings"]
    assert result.policy_path == moved / ".valuechain" / "runs" / result.run_id / "policy.yaml"
    assert result.policy_path.exists()
    from valuechain.policy import load_policy

    metadata = load_policy(result.policy_path).metadata
    assert metadata["run_id"] == result.run_id and metadata["candidate"] == "logistic"
    assert metadata["frame_fingerprint"] == original["frame"]["fingerprint"]
    again = DecideResult.load(moved / ".valuechain")
    assert again.test.savings is not None
    assert again.test.savings["approve_all"].value == original["test"]["savings"][
        "approve_all"]["value"]


def test_a_null_cost_is_a_data_error_never_zero(project: Path) -> None:
    # amount is null for the night-time payments of the cost expression
    _edit_spec(project, {"value.costs.false_negative":
                         "CASE WHEN hour_of_day < 2 THEN NULL ELSE amount END"})
    loaded = load_spec(project)
    frame = pd.read_parquet(loaded.workspace / "build" / "frame.parquet")
    with pytest.raises(DataError) as caught:
        train_project(loaded, candidates=["prior"])
    message = str(caught.value)
    assert "false_negative" in message and "null" in message
    assert "coalesce" in message and "decision_id" in message
    count = int(message.split(" is null (or not a finite number) on ")[1].split(" of ")[0]
                .replace(",", ""))
    night = frame["hour_of_day"] < 2
    assert 0 < count < night.sum()  # only the priced (validation and test) rows count
    example = message.split("e.g. decision_id '")[1].split("'")[0]
    assert frame.loc[frame["transaction_id"].astype(str) == example, "hour_of_day"].item() < 2


def test_a_negative_cost_is_a_data_error(project: Path) -> None:
    _edit_spec(project, {"value.costs.false_positive": "0.1 * amount - 20"})
    with pytest.raises(DataError, match=r"false_positive.*negative on [0-9,]+ of"):
        train_project(load_spec(project), candidates=["prior"])


def test_decide_refuses_costs_changed_since_the_run(project: Path) -> None:
    _edit_spec(project, {"value.costs.false_negative": "2 * amount"})
    with pytest.raises(ArtifactError, match=r"value\.costs\.false_negative.*'amount'.*"
                                            r"'2 \* amount'.*valuechain train --spec"):
        decide_project(load_spec(project))


def test_several_capacities_are_refused_naming_the_ignored_ones(project: Path) -> None:
    _edit_spec(project, {"value.capacity": {"review": {"limit": 150, "per": "1d"},
                                            "decline": {"limit": 40, "per": "1d"}}})
    with pytest.raises(SpecError, match=r"value\.capacity.*2 capacities.*`decline` would be "
                                        r"ignored"):
        decide_project(load_spec(project))
    with pytest.raises(SpecError, match="`decline` would be ignored"):
        train_project(load_spec(project), candidates=["prior"])


@pytest.mark.parametrize("damage", ["missing", "truncated", "key"])
def test_a_damaged_run_is_an_artifact_error_naming_the_file(project: Path, damage: str) -> None:
    loaded = load_spec(project)
    run_dir = latest_run(loaded.workspace / "runs")
    assert run_dir is not None
    metrics = run_dir / "metrics.json"
    if damage == "missing":
        (run_dir / "predictions_test.parquet").unlink()
        culprit = "predictions_test.parquet"
    elif damage == "truncated":
        metrics.write_text(metrics.read_text()[:200])
        culprit = "metrics.json"
    else:
        body = json.loads(metrics.read_text())
        del body["best_candidate"]
        metrics.write_text(json.dumps(body))
        culprit = "metrics.json"
    with pytest.raises(ArtifactError) as caught:
        decide_project(loaded)
    message = str(caught.value)
    assert culprit in message and f"valuechain train --spec {project}" in message
    if damage == "key":
        assert "best_candidate" in message
    cli = CliRunner().invoke(app, ["decide", "--spec", str(project)])
    assert cli.exit_code == 2 and "Traceback" not in cli.output


def test_a_damaged_predictions_file_is_an_artifact_error(project: Path) -> None:
    loaded = load_spec(project)
    run_dir = latest_run(loaded.workspace / "runs")
    assert run_dir is not None
    path = run_dir / "predictions_validation.parquet"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ArtifactError, match=r"predictions_validation\.parquet.*damaged"):
        decide_project(loaded)
