"""valuechain decide on a trained demo world: capacity respected, savings priced, policy.yaml."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from valuechain.cli import app
from valuechain.decide import decide_project
from valuechain.policy import load_policy
from valuechain.spec import load_spec
from valuechain.train import train_project


@pytest.fixture(scope="module")
def trained(train_world: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    project = tmp_path_factory.mktemp("decide")
    shutil.copy(train_world / "valuechain.yaml", project / "valuechain.yaml")
    shutil.copytree(train_world / "data", project / "data")
    train_project(load_spec(project), candidates=["prior", "rules", "lightgbm"])
    return project


def test_three_band_policy_respects_capacity_and_saves_money(trained: Path) -> None:
    loaded = load_spec(trained)
    result = decide_project(loaded)
    out = result.to_json()
    assert out["policy"]["kind"] == "three_band"
    assert out["policy"]["review_at"] <= out["policy"]["decline_at"]
    for role in ("validation", "test"):
        summary = out[role]
        assert set(summary["actions_per_period"]) == {"approve", "review", "decline"}
        for stats in summary["actions_per_period"].values():
            assert stats["max"] >= stats["mean"] >= 0
        cap = summary["capacity"]
        assert cap["limit"] == 150 and cap["max_used"] <= cap["limit"]
        assert cap["periods_over_limit"] == 0
        assert cap["requested_max"] >= cap["max_used"]
    # Chosen on validation under capacity: the bands themselves fit every validation day.
    assert out["validation"]["capacity"]["requested_over_limit"] == 0
    savings = out["test"]["savings"]
    assert set(savings) == {"approve_all", "rules", "threshold_0.5", "accuracy_optimal"}
    assert savings["approve_all"]["low"] > 0, savings["approve_all"]
    for s in savings.values():
        assert s["low"] <= s["value"] <= s["high"]
    # policy.yaml round-trips and decides the same way.
    policy = load_policy(result.policy_path)
    assert policy.to_dict()["review_at"] == pytest.approx(out["policy"]["review_at"])
    scores = np.linspace(0, 1, 101)
    from valuechain.policy import policy_from_dict

    np.testing.assert_array_equal(policy.apply(scores),
                                  policy_from_dict(out["policy"]).apply(scores))
    # Sensitivity: every cost halved and doubled.
    assert {(e["cost"], e["factor"]) for e in out["sensitivity"]} == {
        (c, f) for c in ("false_negative", "false_positive", "review") for f in (0.5, 2.0)}
    links = [link["link"] for link in out["value_chain"]]
    assert links == ["model output", "decision rule", "changed behaviour", "KPI"]
    assert json.loads((loaded.workspace / "decide.json").read_text())["policy"] == out["policy"]


@pytest.mark.parametrize(("kind", "objective"), [("threshold", "expected"),
                                                 ("top_n", "expected"),
                                                 ("three_band", "realised")])
def test_other_policy_kinds_through_the_cli(trained: Path, kind: str, objective: str) -> None:
    result = CliRunner().invoke(app, ["decide", "--spec", str(trained), "--kind", kind,
                                      "--objective", objective, "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["policy"]["kind"] == kind and out["objective"] == objective
    assert out["test"]["capacity"]["periods_over_limit"] == 0 or kind == "threshold"
    assert {"value", "low", "high"} <= set(out["test"]["savings"]["approve_all"])


def test_decide_without_a_run_says_what_to_do(fraud_project: Path, tmp_path: Path) -> None:
    shutil.copy(fraud_project / "valuechain.yaml", tmp_path / "valuechain.yaml")
    result = CliRunner().invoke(app, ["decide", "--spec", str(tmp_path)])
    assert result.exit_code == 2 and "valuechain train" in result.output
