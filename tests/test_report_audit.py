"""The "Leakage audit" report section, rendered from a hand-written ``audit.json``."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from valuechain.audit.empirical import CRITICAL_AUC
from valuechain.errors import DataError
from valuechain.report import Section, render_report
from valuechain.report.sections_audit import MAX_BARS, auc_chart, audit_section
from valuechain.spec import LoadedSpec, load_spec

EVIL = "<script>alert('x')</script>"


def _spec(root: Path, accept: list[dict[str, str]] | None = None) -> LoadedSpec:
    root.mkdir(parents=True, exist_ok=True)
    spec: dict[str, Any] = {
        "project": {"name": "tiny-audit"},
        "decision": {"statement": "s", "owner": "o", "moment": "m", "actions": ["a", "b"]},
        "decision_points": {"source": "orders"},
        "sources": {"orders": {"path": "orders.parquet", "keys": ["order_id"],
                               "event_time": "ts"}},
        "label": {"column": "y", "horizon": "7d"},
        "features": [{"name": "amount", "expr": "amount"}],
    }
    if accept is not None:
        spec["audit"] = {"accept": accept}
    (root / "valuechain.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return load_spec(root)


def _finding(id: str, severity: str, feature: str | None, **extra: Any) -> dict[str, Any]:
    return {"id": id, "check": id.split(":")[0], "severity": severity,
            "features": [feature] if feature else [], "evidence": {"auc_alone": 0.9931},
            "explanation": f"about {feature}", "fix": "set `lag: 7d` on it", "accepted": False,
            **extra}


def _audit_json(critical: bool = True) -> dict[str, Any]:
    findings = [
        _finding("single_feature_power:status", "critical", "status",
                 explanation=f"status leaks {EVIL}",
                 evidence={"auc_alone": 0.9931, "auc_full_model": 0.9987, "test_rows": 4483,
                           "value": "= charged_back", "declared_key": False}),
        _finding("identifier:card_number", "critical", "card_number", accepted=True,
                 accepted_by="Ana (fraud DS)",
                 accepted_reason="card BIN ranges are stable; reviewed 2026-11"),
        {**_finding("temporal_honesty", "info", None),
         "evidence": {"auc_random_split": 0.9201, "auc_time_split": 0.7122, "gap": 0.2079}},
    ]
    if not critical:
        findings = findings[1:]
    return {
        "findings": findings,
        "critical": sum(f["severity"] == "critical" and not f["accepted"] for f in findings),
        "counts": {s: sum(f["severity"] == s for f in findings)
                   for s in ("critical", "warning", "info")},
        "context": {"rows": 14943, "train_rows": 10460, "test_rows": 2836,
                    "auc_time_split": 0.7122455, "auc_random_split": 0.9201416,
                    "feature_auc": {"status": 0.9931, "amount": 0.6697, "card_number": 0.5011,
                                    f"odd {EVIL}": 0.42, "constant": float("nan")},
                    "mode": "project", "frame": "/ws/build/frame.parquet"},
    }


def _write(loaded: LoadedSpec, payload: dict[str, Any], age: float = -60.0) -> Path:
    """Write audit.json, ``age`` seconds newer (negative: older) than the spec file."""
    path = loaded.workspace / "audit.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload))  # NaN stays NaN, as valuechain.io.write_json writes it
    spec_time = loaded.path.stat().st_mtime
    os.utime(path, (spec_time - age, spec_time - age))
    return path


def _render(loaded: LoadedSpec) -> Section:
    section = audit_section(loaded, loaded.workspace)
    assert section is not None
    return section


@pytest.fixture()
def audited(tmp_path: Path) -> LoadedSpec:
    loaded = _spec(tmp_path / "p", accept=[
        {"id": "identifier:card_number", "reason": "card BIN ranges are stable; reviewed 2026-11",
         "by": "Ana (fraud DS)"}])
    _write(loaded, _audit_json(), age=-60.0)
    return loaded


def test_section_shows_findings_accepted_by_and_aucs(audited: LoadedSpec) -> None:
    section = _render(audited)
    html = str(section.html)
    assert section.id == "audit" and section.title == "Leakage audit"
    assert section.status == "fail"
    for finding_id in ("single_feature_power:status", "identifier:card_number",
                       "temporal_honesty"):
        assert finding_id in html
    assert "1 unaccepted critical finding<" in html  # the accepted one is not counted
    assert "Ana (fraud DS)" in html and "card BIN ranges are stable" in html
    assert "0.712" in html and "0.920" in html and "+0.208" in html  # time, random, gap
    assert "0.9931" in html and "4,483" in html and "= charged_back" in html  # evidence
    assert "<code>lag: 7d</code>" in html  # `code` in a fix
    assert "<svg" in html and f"critical {CRITICAL_AUC:g}" in html
    assert html.count('class="badge fail">critical<') == 2
    assert 'class="badge pass">accepted<' in html


def test_user_text_is_escaped(audited: LoadedSpec) -> None:
    html = str(_render(audited).html)
    assert "<script" not in html
    assert "&lt;script&gt;" in html  # in the explanation and in a feature name of the chart


def test_chart_has_a_bar_per_known_auc_and_the_critical_line(audited: LoadedSpec) -> None:
    html = str(_render(audited).html)
    svg = html[html.index("<svg"):html.index("</svg>")]
    assert len(re.findall(r"<rect ", svg)) == 4  # the NaN AUC has no bar
    assert "critical-line" in svg and "0.993" in svg and "0.670" in svg
    assert svg.index("status") < svg.index("amount") < svg.index("card_number")  # by AUC
    many = auc_chart([(f"f{i}", 0.5 + i / 200) for i in range(MAX_BARS)])
    assert len(re.findall(r"<rect ", str(many))) == MAX_BARS


def test_only_accepted_critical_findings_pass(tmp_path: Path) -> None:
    loaded = _spec(tmp_path / "p", accept=[
        {"id": "identifier:card_number", "reason": "stable", "by": "Ana (fraud DS)"}])
    _write(loaded, _audit_json(critical=False))
    section = _render(loaded)
    assert section.status == "ok"
    assert 'class="badge pass">no unaccepted critical finding<' in str(section.html)
    assert "Ana (fraud DS)" in str(section.html)


def test_missing_audit_says_which_command_adds_it(tmp_path: Path) -> None:
    loaded = _spec(tmp_path / "p")
    section = _render(loaded)
    assert section.status == "missing"
    assert "<code>valuechain audit</code>" in str(section.html)


def test_audit_older_than_the_spec_warns(tmp_path: Path) -> None:
    loaded = _spec(tmp_path / "p")
    _write(loaded, _audit_json(critical=False), age=3600.0)
    section = _render(loaded)
    assert section.status == "warn"
    assert "The spec changed after this audit ran" in str(section.html)


def test_acceptance_without_a_finding_is_pointed_out(tmp_path: Path) -> None:
    loaded = _spec(tmp_path / "p", accept=[{"id": "identifier:gone", "reason": "r", "by": "b"}])
    _write(loaded, _audit_json(critical=False))
    html = str(_render(loaded).html)
    assert "<code>identifier:gone</code>" in html and "did not report" in html


def test_malformed_audit_json_fails_naming_the_key(tmp_path: Path) -> None:
    loaded = _spec(tmp_path / "p")
    _write(loaded, {"findings": "oops", "critical": 2, "context": []})
    with pytest.raises(DataError, match=r"audit.json: key `findings` should be a list"):
        _render(loaded)
    renamed = _audit_json()
    renamed["context"]["auc_time"] = renamed["context"].pop("auc_time_split")
    _write(loaded, renamed)
    with pytest.raises(DataError, match=r"`context.auc_time_split` is missing.*valuechain audit"):
        _render(loaded)
    result = render_report(loaded)
    assert [s.id for s in result.failed] == ["audit"]
    assert "context.auc_time_split" in (result.section("audit").error or "")


def test_frame_audited_is_shown_and_another_frame_flagged(audited: LoadedSpec) -> None:
    html = str(_render(audited).html)
    assert 'data-key="origin-audit"' in html and "/ws/build/frame.parquet" in html
    ws = audited.workspace
    (ws / "build").mkdir(parents=True, exist_ok=True)
    (ws / "build" / "manifest.json").write_text(json.dumps(
        {"cache_key": "k2", "frame": {"path": "frame.parquet", "fingerprint": "f" * 32}}))
    payload = _audit_json()
    payload["context"] |= {"frame_fingerprint": "e" * 32, "cache_key": "k1"}
    _write(audited, payload)
    section = _render(audited)
    assert section.status == "fail"  # the critical finding still decides the dot
    html = str(section.html)
    assert 'data-key="mismatch-audit"' in html and "e" * 32 in html and "f" * 32 in html
    assert "<code>valuechain audit</code>" in html


def test_full_report_includes_the_section(audited: LoadedSpec) -> None:
    page = render_report(audited).path.read_text()
    assert 'id="audit"' in page and "Leakage audit" in page
    assert "single_feature_power:status" in page and "<script" not in page
