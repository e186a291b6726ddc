"""``valuechain monitor``: terminal tables, the JSON schema, exit codes, the report section."""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from valuechain.cli import app, console
from valuechain.cli_monitor import render
from valuechain.monitor.alerts import evaluate_alerts, retrain_advice
from valuechain.monitor.run import JSON_SCHEMA, MonitorResult, monitor_folder
from valuechain.report import render_report
from valuechain.report.sections_monitor import monitor_section
from valuechain.spec.loader import load_spec
from valuechain.spec.models import Owners, default_alert_rules

ROOT = Path(__file__).resolve().parents[1]
DAY_US = 86_400_000_000
NAN = math.nan

#: The keys of MonitorResult.to_json() (docs/monitoring.md, schema valuechain.monitor/1).
TOP_KEYS = {"schema", "project", "spec_hash", "bundle_version", "log", "as_of", "window",
            "window_us", "first_window", "last_window", "windows", "decisions",
            "other_versions", "reference_period", "status", "exit_code", "active_alerts",
            "critical_alerts", "alerts", "retrain", "drift_ranking", "coverage", "latest",
            "reference",
            "capacity", "importance", "dispersion", "notes", "seconds"}
ALERT_KEYS = {"rule", "section", "metric", "subject", "severity", "owner", "channel", "active",
              "first_window", "last_window", "windows", "direction", "value", "peak",
              "threshold", "reference", "message"}


def _rows(section: str, metric: str, subject: str, values: list[float], *,
          status: list[str] | None = None, lower: list[float] | None = None,
          upper: list[float] | None = None, n: int = 3000) -> pd.DataFrame:
    k = len(values)
    return pd.DataFrame({
        "window": pd.date_range("2025-09-01", periods=k, freq="D", tz="UTC").astype(
            "datetime64[us, UTC]"),
        "section": section, "metric": metric, "subject": subject,
        "value": pd.Series(values, dtype="float64"),
        "lower": pd.Series(lower or [NAN] * k, dtype="float64"),
        "upper": pd.Series(upper or [NAN] * k, dtype="float64"),
        "n": pd.Series([n] * k, dtype="int64"), "status": status or ["ok"] * k})


def hand_built(critical: bool = False) -> MonitorResult:
    """Six daily windows: is_app drifts from day 3, the queue is full, day 5-6 pending."""
    loss = [4.0, 4.2, 9.0 if critical else 4.1, 9.5 if critical else 4.3, NAN, NAN]
    signals = pd.concat([
        _rows("drift", "psi", "is_app", [0.01, 0.02, 0.3, 0.35, 0.4, 0.38]),
        _rows("drift", "psi", "amount", [0.01, 0.01, 0.02, 0.01, 0.02, 0.01]),
        _rows("drift", "score_psi", "score", [0.01, 0.01, 0.05, 0.06, 0.05, 0.07]),
        _rows("ops", "review_rate", "", [0.04] * 6),
        _rows("ops", "queue_fill", "review", [0.8, 1.0, 1.0, 1.0, 1.0, 1.0]),
        _rows("kpi", "loss_per_1000", "", loss, status=["ok"] * 4 + ["pending"] * 2),
        _rows("kpi", "loss_per_1000", "", [4.0], status=["reference"]),
        _rows("estimate", "loss_per_1000", "", [4.1, 4.0, 4.2, 4.4, 4.5, 4.6],
              lower=[3.0] * 6, upper=[5.5] * 6),
        _rows("estimate", "covered", "loss_per_1000", [1.0, 1.0, 0.0, 0.0]
              if critical else [1.0] * 4),
    ], ignore_index=True)
    importance = {"is_app": 0.3, "amount": 0.6, "segment": 0.1}
    owners = Owners(data_science="Fraud DS", operations="Review desk", product="Payments")
    alerts = evaluate_alerts(signals, default_alert_rules(), owners=owners,
                             default_owner="Risk", channel="#alerts")
    ranking = pd.DataFrame({"feature": ["is_app", "amount"], "importance": [0.3, 0.6],
                            "psi": [0.38, 0.01], "weighted": [0.114, 0.006], "rank": [1, 2]})
    coverage = pd.DataFrame({"metric": ["loss_per_1000"], "windows": [4],
                             "covered": [0.5 if critical else 1.0],
                             "mean_abs_error": [0.3], "mean_error": [0.1]})
    return MonitorResult(
        as_of=datetime(2025, 9, 6, 23, 0, tzinfo=UTC), window_us=DAY_US,
        bundle_version="v1", signals=signals, alerts=tuple(alerts), drift_ranking=ranking,
        coverage=coverage, retrain=retrain_advice(alerts, signals, importance=importance),
        project="fraud-checkout", spec_hash="abc", log="decisions.sqlite", decisions=18_000,
        importance=importance, capacity=("review", 150, DAY_US, "approve"),
        reference_period="test 2025-07-15..2025-07-30")


def test_json_schema_is_stable_and_strict() -> None:
    payload = hand_built().to_json()
    assert set(payload) == TOP_KEYS and payload["schema"] == JSON_SCHEMA
    text = json.dumps(payload, allow_nan=False)  # strict JSON: no NaN anywhere
    assert json.loads(text) == payload
    assert {frozenset(a) for a in payload["alerts"]} == {frozenset(ALERT_KEYS)}
    assert (payload["window"], payload["windows"], payload["decisions"]) == ("1d", 6, 18_000)
    assert payload["first_window"] == "2025-09-01T00:00:00+00:00"
    rules = {(a["rule"], a["subject"]): a for a in payload["alerts"]}
    assert set(rules) == {("feature_drift", "is_app"), ("review_queue_full", "review")}
    drift = rules[("feature_drift", "is_app")]
    assert (drift["windows"], drift["active"], drift["owner"]) == (4, True,
                                                                   "Fraud DS (data_science)")
    assert drift["first_window"] == "2025-09-03T00:00:00+00:00" and drift["peak"] == 0.4
    assert payload["status"] == "alert" and payload["exit_code"] == 0
    assert payload["capacity"] == {"action": "review", "limit": 150, "per": "1d",
                                   "overflow": "approve"}
    pending = [r for r in payload["latest"] if r["metric"] == "loss_per_1000"
               and r["section"] == "kpi"]
    assert pending == [{"window": "2025-09-06T00:00:00+00:00", "section": "kpi",
                        "metric": "loss_per_1000", "subject": "", "value": None,
                        "lower": None, "upper": None, "n": 3000, "status": "pending"}]
    assert payload["retrain"]["recommend"]  # is_app: top-5 importance, active drift
    assert payload["reference"] == [{"section": "kpi", "metric": "loss_per_1000", "subject": "",
                                     "value": 4.0, "lower": None, "upper": None, "n": 3000}]


def test_critical_kpi_alert_sets_the_exit_code_and_the_retrain_reasons() -> None:
    result = hand_built(critical=True)
    payload = result.to_json()
    kpi = [a for a in payload["alerts"] if a["rule"] == "kpi_worse"]
    # reference 4.0 x 1.25 = 5.0: 9.0 and 9.5 breach on days 3 and 4; days 5-6 pending
    assert [(a["windows"], a["threshold"], a["reference"], a["active"]) for a in kpi] == [
        (2, 5.0, 4.0, True)]
    assert payload["status"] == "critical" and result.exit_code == payload["exit_code"] == 1
    reasons = " ".join(payload["retrain"]["reasons"])
    assert "matured KPI worse than allowed" in reasons
    assert "estimate of loss_per_1000 missed its interval on the last 2" in reasons


def test_terminal_tables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(console, "width", 160)
    with console.capture() as captured:
        render(hand_built(critical=True))
    text = captured.get()
    for words in ("fraud-checkout", "bundle v1", "18,000 decisions", "Drift ranking",
                  "is_app", "Operations per window", "queue_fill review", "pending",
                  "Realised KPIs per cohort", "Estimates before labels",
                  "4.6 [3, 5.5]", "Estimates against matured cohorts", "50%",
                  "kpi_worse", "Payments (product)", "critical",
                  "retraining recommended"):
        assert words in text, words


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "fraud"
    project.mkdir()
    shutil.copy(ROOT / "examples" / "fraud" / "valuechain.yaml", project / "valuechain.yaml")
    return project


def test_report_section_draws_the_saved_result(tmp_path: Path) -> None:
    loaded = load_spec(_project(tmp_path))
    assert monitor_section(loaded, loaded.workspace) is None  # nothing deployed yet
    (loaded.workspace / "registry").mkdir(parents=True)
    missing = monitor_section(loaded, loaded.workspace)
    assert missing is not None and missing.status == "missing"
    assert "valuechain monitor" in missing.html
    saved = hand_built(critical=True).save(monitor_folder(loaded))
    assert saved.name == "monitor.json" and (saved.parent / "signals.parquet").exists()
    section = monitor_section(loaded, loaded.workspace)
    assert section is not None
    html = str(section.html)
    assert section.status == "fail"  # an active critical alert
    assert html.count("<svg") == 4  # drift, action mix, queue vs capacity, loss_per_1000
    assert "<script" not in html
    for words in ("capacity limit (150 per 1d)", "pending (labels not mature)",
                  "2 cohort(s) pending", "alert threshold 0.2", "Retraining recommended",
                  'data-key="monitor-alerts"', "Fraud DS (data_science)"):
        assert words in html, words
    result = render_report(loaded, tmp_path / "report.html")
    assert result.section("monitor").status == "fail" and result.ok


@pytest.mark.parametrize(("args", "words"), [
    (["--window", "3mo"], "--window"),
    (["--window", "0d"], "--window"),
    (["--as-of", "yesterday"], "--as-of"),
    (["--since", "2025-13-01"], "--since"),
    (["--spec", "/no/such/project"], "no such spec file"),
    ([], "no version is in production"),
])
def test_user_mistakes_exit_2_without_a_traceback(tmp_path: Path, args: list[str],
                                                  words: str) -> None:
    project = _project(tmp_path)
    runner = CliRunner()
    res = runner.invoke(app, ["monitor", "--spec", str(project), *args])
    assert res.exit_code == 2, res.output
    assert words in res.output and "Traceback" not in res.output
    as_json = runner.invoke(app, ["monitor", "--spec", str(project), "--json", *args])
    assert as_json.exit_code == 2 and json.loads(as_json.stdout)["error"]


def test_unknown_flag_is_a_usage_error() -> None:
    res = CliRunner().invoke(app, ["monitor", "--frobnicate"])
    assert res.exit_code == 2 and "Traceback" not in res.output


# --- on a real decision log (needs the drift and KPI components) -----------------------------

COMPONENTS = ("valuechain.monitor.drift", "valuechain.monitor.ops", "valuechain.monitor.inputs",
              "valuechain.monitor.kpis", "valuechain.monitor.outcomes",
              "valuechain.monitor.estimate")
needs_components = pytest.mark.skipif(
    any(importlib.util.find_spec(m) is None for m in COMPONENTS),
    reason="the drift/ops/KPI/estimate components are not merged yet")


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from valuechain.serve.score import score_file

    from .serve_world import packaged_project

    project = packaged_project(tmp_path_factory.getbasetemp())
    tx = pd.read_parquet(project / "data" / "transactions.parquet")
    late = tx[tx["ts"] >= tx["ts"].max() - pd.Timedelta(days=10)]
    events = tmp_path_factory.mktemp("monitor") / "late.parquet"
    late.to_parquet(events)
    log = project / ".valuechain" / "serve" / "decisions.sqlite"
    if not log.exists():
        score_file(project, events, out=events.with_suffix(".decisions.parquet"),
                   log_path=log)
    return project


@pytest.mark.slow
@needs_components
def test_monitor_on_a_real_log(logged: Path) -> None:
    runner = CliRunner()
    res = runner.invoke(app, ["monitor", "--spec", str(logged), "--json"])
    assert res.exit_code in (0, 1), res.output
    payload = json.loads(res.stdout)
    assert set(payload) >= TOP_KEYS and payload["bundle_version"] == "v1"
    assert payload["exit_code"] == res.exit_code == (1 if payload["critical_alerts"] else 0)
    assert payload["windows"] >= 9 and payload["decisions"] > 0 and payload["importance"]
    assert Path(payload["saved"]).exists()
    # ~200 decisions a day in this small world: daily drift is `insufficient`, weekly is not
    weekly = json.loads(runner.invoke(app, ["monitor", "--spec", str(logged), "--json",
                                            "--window", "1w"]).stdout)
    assert weekly["window"] == "1w" and weekly["drift_ranking"]
    # 10 days after a 60-day horizon: every cohort of the log is pending, none is a zero
    latest_kpi = [r for r in payload["latest"] if r["section"] == "kpi"]
    assert latest_kpi and all(r["status"] != "ok" or r["value"] is not None
                              for r in latest_kpi)
    text = runner.invoke(app, ["monitor", "--spec", str(logged), "--window", "1w",
                               "--report"])
    assert text.exit_code in (0, 1), text.output
    assert "Drift ranking" in text.output and "pending" in text.output
    assert "report:" in text.output
    for args, words in ((["--version", "v9"], "v9"),
                        (["--log", str(logged / "nope.sqlite")], "nope.sqlite"),
                        (["--as-of", "2020-01-01"], "no decision of bundle v1"),
                        (["--since", "2025-09-02", "--as-of", "2025-09-01"], "--since")):
        bad = runner.invoke(app, ["monitor", "--spec", str(logged), *args])
        assert bad.exit_code == 2 and words in bad.output and "Traceback" not in bad.output


def test_example_spec_rules_are_owned_by_set_owners() -> None:
    spec = yaml.safe_load((ROOT / "examples" / "fraud" / "valuechain.yaml").read_text())
    owners = set(spec["owners"])
    for rule in spec["monitoring"]["alerts"]:
        assert rule["owner"] in owners, rule


def test_only_windows_ended_by_as_of_are_monitored() -> None:
    from valuechain.monitor.run import _complete_windows, window_start

    day0 = int(pd.Timestamp("2025-09-01", tz="UTC").value // 1000)
    hours = [0, 5, 23, 24 + 1, 48 + 2, 48 + 20]  # two full days, then 2 decisions of day 3
    decisions = pd.DataFrame({"time_us": [day0 + h * 3_600_000_000 for h in hours]})
    as_of = pd.Timestamp("2025-09-03 20:00", tz="UTC").to_pydatetime()
    kept, partial = _complete_windows(decisions, as_of, DAY_US)
    assert len(kept) == 4 and partial is not None and partial[1] == 2
    assert str(window_start(partial[0], DAY_US)) == "2025-09-03 00:00:00+00:00"
    # at midnight the day has ended: nothing is cut
    midnight = pd.Timestamp("2025-09-04", tz="UTC").to_pydatetime()
    assert _complete_windows(decisions, midnight, DAY_US)[1] is None
    # a log younger than one window keeps its decisions
    young = decisions.head(2)
    six = pd.Timestamp("2025-09-01 06:00", tz="UTC").to_pydatetime()
    assert _complete_windows(young, six, DAY_US)[1] is None


def test_json_mode_keeps_native_prints_off_stdout(capfd: pytest.CaptureFixture[str]) -> None:
    import os

    from valuechain.cli_monitor import _quiet_stdout

    with _quiet_stdout(True):
        os.write(1, b"100% progress bar\n")  # what a C library's progress bar does
    os.write(1, b"{}\n")
    out, err = capfd.readouterr()
    assert out == "{}\n" and "progress bar" in err
