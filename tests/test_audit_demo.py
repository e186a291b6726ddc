"""The audit on the fraud demo world: planted leaks are critical, legitimate features are not."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from valuechain.audit import audit_project, explain
from valuechain.spec import load_spec


def _naive_project(fraud_project: Path, tmp_path: Path) -> Path:
    spec = yaml.safe_load((fraud_project / "valuechain.yaml").read_text())
    # The tempting mistakes: disputes joined by transaction id without time, the exported
    # `status` column, and the card id as a number.
    spec["sources"]["disputes"] = {"path": "data/disputes.parquet", "role": "dimension",
                                   "keys": ["dispute_id"]}
    spec["features"] += [
        {"name": "dispute_channel", "lookup": {"source": "disputes", "key": "transaction_id",
                                               "column": "channel"}},
        {"name": "status", "expr": "status"},
        {"name": "card_number", "expr": "card_id"},
    ]
    (tmp_path / "valuechain.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    shutil.copytree(fraud_project / "data", tmp_path / "data")
    return tmp_path


def test_planted_leaks_are_critical(fraud_project: Path, tmp_path: Path) -> None:
    loaded = load_spec(_naive_project(fraud_project, tmp_path))
    result, data = audit_project(loaded)
    critical = {f.id for f in result.findings if f.severity == "critical"}
    assert "unversioned_dimension:dispute_channel" in critical
    assert "post_outcome_signature:status" in critical
    assert "identifier:card_number" in critical
    assert "single_feature_power:status" in critical
    leaks = {"dispute_channel", "status", "card_number"}
    assert all(set(f.features) <= leaks for f in result.findings if f.severity == "critical")
    assert result.exit_code == 1
    # The evidence carries the numbers, and --explain shows rows.
    status = result.get("post_outcome_signature:status")
    assert status is not None and status.evidence["value"] == "= charged_back"
    assert status.evidence["positive_rate"] >= 0.8
    rows = explain(status, data)
    assert len(rows) > 0 and set(rows["status"]) == {"charged_back"}
    dispute = result.get("unversioned_dimension:dispute_channel")
    assert dispute is not None and dispute.evidence["share"] == 1.0
    joined = explain(dispute, data, loaded)
    assert (joined["opened_at"] > joined["decision_time"]).all()


def test_legitimate_features_have_no_critical_finding(fraud_project: Path) -> None:
    result, _ = audit_project(load_spec(fraud_project))
    assert result.critical == 0, [f.id for f in result.findings if f.severity == "critical"]
    assert result.get("temporal_honesty") is not None


def test_accepted_finding_stays_visible_but_does_not_fail(fraud_project: Path,
                                                          tmp_path: Path) -> None:
    project = _naive_project(fraud_project, tmp_path)
    spec = yaml.safe_load((project / "valuechain.yaml").read_text())
    spec["features"] = [f for f in spec["features"]
                        if f["name"] not in ("dispute_channel", "status")]
    spec["audit"] = {"accept": [{"id": "identifier:card_number", "by": "Ana (fraud DS)",
                                 "reason": "card BIN ranges are stable; reviewed 2026-11"}]}
    (project / "valuechain.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    result, _ = audit_project(load_spec(project))
    finding = result.get("identifier:card_number")
    assert finding is not None and finding.accepted and finding.accepted_by == "Ana (fraud DS)"
    assert result.critical == 0 and result.exit_code == 0
