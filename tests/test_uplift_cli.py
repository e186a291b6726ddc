"""`valuechain uplift` and `valuechain plan-holdout` end to end on a small churn world."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import yaml
from typer.testing import CliRunner

from tests.uplift_world import churn_project
from valuechain.cli import app
from valuechain.spec.loader import load_spec
from valuechain.train.stage import train_project
from valuechain.uplift import UpliftModel, load_uplift

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("uplift")
    spec = churn_project(root, customers=1500, seed=4)
    train_project(load_spec(spec), candidates=["prior", "logistic"])
    return root


@pytest.fixture(scope="module")
def summary(project: Path) -> dict[str, object]:
    result = CliRunner().invoke(app, [
        "uplift", "--spec", str(project), "--truth", str(project / "data" / "truth"),
        "--learners", "two_model_logistic,class_transformation_logistic", "--n-boot", "30",
        "--json"])
    assert result.exit_code == 0, result.output
    out: dict[str, object] = json.loads(result.stdout)
    return out


def test_uplift_run_writes_artifacts_and_loads(project: Path, summary: dict[str, object]
                                                ) -> None:
    root = project / ".valuechain" / "uplift"
    run_id = (root / "latest").read_text().strip()
    assert run_id == summary["run_id"]
    assert (root / run_id / "uplift.json").is_file()
    assert not list(root.glob(".tmp-*"))  # published whole
    model = load_uplift(root)  # follows `latest`
    assert isinstance(model, UpliftModel)
    assert f"{model.learner}_logistic" == summary["chosen_learner"]
    for name in ("two_model_logistic", "class_transformation_logistic"):
        assert load_uplift(root / run_id / "learners" / name).learner in name


def test_lists_respect_capacity_and_truth_checks(summary: dict[str, object]) -> None:
    lists = {o["name"]: o for o in summary["lists"]}  # type: ignore[attr-defined]
    assert set(lists) == {"risk", "uplift", "uplift_value", "risk_then_uplift", "random",
                          "rule", "oracle"}
    assert lists["oracle"]["true_saves"]["value"] >= max(
        o["true_saves"]["value"] for o in lists.values()) - 1e-9
    weeks = summary["weeks_test"]
    for o in lists.values():
        assert o["listed"] <= summary["capacity"] * weeks  # type: ignore[operator]
        assert o["true_saves"]["low"] <= o["true_saves"]["value"] <= o["true_saves"]["high"]
    assert "uplift-ranked list" in str(summary["verdict"])
    checks = summary["truth_checks"]
    pooled = checks["pooled_vs_true_mean"]  # type: ignore[index]
    # the randomized history's estimate agrees with the generator's true mean effect
    assert pooled["agrees"] is True


def test_plan_holdout_with_and_without_spec(project: Path) -> None:
    result = CliRunner().invoke(app, ["plan-holdout", "--base", "0.086", "--effect", "0.019",
                                      "--list", "200", "--control-share", "0.2"])
    assert result.exit_code == 0, result.output
    assert "47 weeks" in result.output
    result = CliRunner().invoke(app, ["plan-holdout", "--base", "0.1", "--effect", "0.02",
                                      "--list", "30", "--control-share", "0.2", "--spec",
                                      str(project), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["plan"]["weeks"] > 0
    assert out["pooled"]["weeks"] > 10 and out["pooled"]["control"] > 0
    assert np.isfinite(out["pooled"]["effect"]["value"])


@pytest.mark.parametrize(("args", "message"), [
    (["plan-holdout", "--base", "2", "--effect", "0.01", "--list", "200",
      "--control-share", "0.2"], "`--base`"),
    (["uplift", "--learners", "three_model_logistic"], "is not a learner"),
    (["uplift", "--learners", "two_model_logistic", "--blocks", "year"],
     "`--blocks` must be 'customer' or 'week'"),
])
def test_user_errors_exit_2(project: Path, args: list[str], message: str) -> None:
    if args[0] == "uplift":
        args = [*args, "--spec", str(project)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert message in result.output.replace("\n", " ")


def test_spec_without_treatment_exits_2(project: Path, tmp_path: Path) -> None:
    spec = yaml.safe_load((project / "valuechain.yaml").read_text())
    del spec["treatment"]
    (tmp_path / "valuechain.yaml").write_text(yaml.safe_dump(spec))
    (tmp_path / "data").symlink_to(project / "data")
    result = CliRunner().invoke(app, ["uplift", "--spec", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "no `treatment:` block" in result.output.replace("\n", " ")


def test_report_section_draws_curves_lists_and_planner(project: Path,
                                                       summary: dict[str, object]) -> None:
    from valuechain.report.sections_churn import uplift_section

    loaded = load_spec(project / "valuechain.yaml")
    section = uplift_section(loaded, loaded.workspace)
    assert section is not None and section.id == "uplift"
    html = str(section.html)
    # Qini, gain vs budget, control vs treated per week, pooled effect after each week
    assert html.count("<svg") == 4
    for key in ("uplift-summary", "uplift-verdict", "uplift-lists", "uplift-learners",
                "uplift-truth", "uplift-planner"):
        assert f'data-key="{key}"' in html
    assert "95 % band" in html and "risk_then_uplift" in html
    # no card without an uplift run
    assert uplift_section(loaded, project / "elsewhere") is None
