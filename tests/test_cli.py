"""The commands end to end through the CLI, with machine output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from typer.testing import CliRunner

from valuechain.cli import app

from .conftest import small_fraud_project


def test_demo_generates_checks_builds_and_reports(tmp_path: Path) -> None:
    small_fraud_project(tmp_path, min_positives=10)
    result = CliRunner().invoke(app, ["demo", "fraud", "--dir", str(tmp_path), "--rows",
                                      "150000", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["check"]["passed"] is True
    assert [c["item"] for c in out["check"]["checklist"]] == [
        "task_to_decision_fit", "training_inference_parity", "evaluation_realism",
        "operational_ownership", "monitoring_discipline"]
    assert out["build"]["rows"]["total"] == 150_000
    assert out["audit"]["critical"] == 0 and "findings" in out["audit"]
    assert "lightgbm" in out["train"]["candidates"]
    assert out["decide"]["test"]["capacity"]["limit"] == 150
    assert out["report"]["ok"] is True and out["report"]["failed"] == []
    assert out["report"]["mismatches"] == []
    report = Path(out["report"]["report"]).read_text()
    assert "Label maturity" in report and "<svg" in report
    # the same project through the other commands: thin layers over valuechain.api
    again = CliRunner().invoke(app, ["report", "--spec", str(tmp_path), "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.output)["report"] == out["report"]["report"]
    bad = CliRunner().invoke(app, ["decide", "--spec", str(tmp_path), "--kind", "bands"])
    assert bad.exit_code == 2
    assert "`--kind` 'bands': expected one of three_band, threshold, top_n" in bad.output
    bad_json = CliRunner().invoke(app, ["decide", "--spec", str(tmp_path), "--objective",
                                        "profit", "--json"])
    assert bad_json.exit_code == 2
    assert json.loads(bad_json.output) == {
        "error": "`--objective` 'profit': expected one of expected, realised.",
        "type": "SpecError"}
    explained = CliRunner().invoke(app, ["audit", "--spec", str(tmp_path), "--explain",
                                         "no_such_finding"])
    assert explained.exit_code == 2 and "`--explain` 'no_such_finding': no such" in (
        explained.output)


def test_check_fails_with_exit_1_and_names_the_gap(fraud_project: Path, tmp_path: Path) -> None:
    text = (fraud_project / "valuechain.yaml").read_text()
    broken = tmp_path / "valuechain.yaml"
    broken.write_text(text.replace("  ml_engineering:", "  # ml_engineering:"))
    shutil.copytree(fraud_project / "data", tmp_path / "data")
    result = CliRunner().invoke(app, ["check", "--spec", str(broken), "--json"])
    assert result.exit_code == 1
    out = json.loads(result.output)
    ownership = {c["item"]: c for c in out["checklist"]}["operational_ownership"]
    assert ownership["passed"] is False and "ml_engineering" in ownership["reason"]
    assert all(c["passed"] for c in out["data_checks"])


def test_generate_json(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["generate", "fraud", "--out", str(tmp_path), "--rows",
                                      "5000", "--seed", "1", "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["rows"]["transactions"] == 5000
    assert Path(out["paths"]["chargebacks"]).exists()
