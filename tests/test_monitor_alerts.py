"""Alert rules on signals tables: min samples, consecutive windows, de-duplication, advice."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from valuechain.cli import app
from valuechain.errors import DataError, SpecError
from valuechain.monitor.alerts import (
    SIGNAL_COLUMNS,
    Alert,
    empty_signals,
    evaluate_alerts,
    retrain_advice,
    rule_notes,
)
from valuechain.spec.loader import load_spec
from valuechain.spec.models import AlertRule, Monitoring, Owners, default_alert_rules

ROOT = Path(__file__).resolve().parents[1]
NAN = math.nan


def signals(values: list[float], *, metric: str = "psi", subject: str = "amount",
            section: str = "drift", n: int | list[int] = 1000,
            status: str | list[str] = "ok", start: str = "2025-08-04",
            lower: list[float] | None = None, upper: list[float] | None = None,
            **extra: Any) -> pd.DataFrame:
    """One series of daily signals from 2025-08-04 (a Monday)."""
    k = len(values)
    frame = pd.DataFrame({
        "window": pd.date_range(start, periods=k, freq="D", tz="UTC").astype(
            "datetime64[us, UTC]"),
        "section": section, "metric": metric, "subject": subject,
        "value": pd.Series(values, dtype="float64"),
        "lower": pd.Series(lower if lower is not None else [NAN] * k, dtype="float64"),
        "upper": pd.Series(upper if upper is not None else [NAN] * k, dtype="float64"),
        "n": pd.Series(n if isinstance(n, list) else [n] * k, dtype="int64"),
        "status": status if isinstance(status, list) else [status] * k, **extra})
    return frame


def rule(**kw: Any) -> AlertRule:
    return AlertRule.model_validate({"name": "r", "metric": "psi", "above": 0.2, **kw})


def days(alert: Alert) -> tuple[str, str, int]:
    assert alert.last_window is not None
    return (f"{alert.first_window:%m-%d}", f"{alert.last_window:%m-%d}", alert.windows)


def test_signals_helper_has_the_contract_columns() -> None:
    assert tuple(signals([0.1]).columns) == SIGNAL_COLUMNS
    assert tuple(empty_signals().columns) == SIGNAL_COLUMNS


def test_consecutive_windows_fire_once_the_streak_is_long_enough() -> None:
    # breach pattern: x . x x . x x x  -> with windows=2: streaks 08-07..08-08, 08-10..08-12
    s = signals([0.3, 0.1, 0.3, 0.3, 0.1, 0.3, 0.3, 0.3])
    alerts = evaluate_alerts(s, [rule(windows=2)])
    assert [days(a) for a in alerts] == [("08-09", "08-11", 3), ("08-06", "08-07", 2)]
    assert [a.active for a in alerts] == [True, False]  # active first
    assert alerts[0].value == 0.3 and alerts[0].threshold == 0.2
    assert evaluate_alerts(s, [rule(windows=4)]) == []
    assert len(evaluate_alerts(s, [rule(windows=1)])) == 3


def test_threshold_is_strict_and_nan_values_are_skipped() -> None:
    s = signals([0.2, 0.2000001, NAN, 0.5])
    alerts = evaluate_alerts(s, [rule(windows=2)])
    assert [days(a) for a in alerts] == [("08-05", "08-07", 2)]  # the NaN day is skipped


def test_min_samples_skips_windows_without_breaking_or_extending_the_streak() -> None:
    # day:   04    05   06   07    08
    # psi:   0.3   0.9  0.3  0.05  0.3
    # n:     600   40   600  30    600    (min_samples 500: days 05 and 07 not evaluated)
    s = signals([0.3, 0.9, 0.3, 0.05, 0.3], n=[600, 40, 600, 30, 600])
    [alert] = evaluate_alerts(s, [rule(windows=3, min_samples=500)])
    assert days(alert) == ("08-04", "08-08", 3)  # 3 evaluated windows, not 5
    assert alert.peak == 0.3  # the 0.9 on 40 samples never counts
    # without min_samples, day 07 (0.05) breaks the streak: 04-06 is 3 windows, 08 alone
    [alert] = evaluate_alerts(s, [rule(windows=3)])
    assert days(alert) == ("08-04", "08-06", 3) and not alert.active


def test_insufficient_and_pending_statuses_are_never_evaluated() -> None:
    s = signals([0.9, 0.9, 0.9, 0.9], status=["insufficient", "pending", "ok", "pending"])
    [alert] = evaluate_alerts(s, [rule(windows=1)])
    assert days(alert) == ("08-06", "08-06", 1)
    assert evaluate_alerts(s, [rule(windows=2)]) == []


def test_large_samples_with_negligible_effect_do_not_fire() -> None:
    # 40 features, a million decisions a day, a tiny (yet "significant") shift everywhere
    frames = [signals([0.01 + i * 1e-4] * 10, subject=f"f{i}", n=1_000_000) for i in range(40)]
    s = pd.concat(frames, ignore_index=True)
    assert evaluate_alerts(s, default_alert_rules()) == []


def test_one_alert_per_rule_subject_streak() -> None:
    s = pd.concat([signals([0.5] * 20, subject="amount"), signals([0.5] * 20, subject="hour"),
                   signals([0.1] * 20, subject="segment")], ignore_index=True)
    alerts = evaluate_alerts(s, [rule(windows=2)])
    assert [(a.subject, a.windows) for a in alerts] == [("amount", 20), ("hour", 20)]


def test_below_rules_and_specific_subjects() -> None:
    s = pd.concat([
        signals([0.5, 0.25, 0.2, 0.4], metric="precision", section="kpi", subject=""),
        signals([0.1, 0.1, 0.1, 0.1], metric="review_rate", section="ops", subject="review"),
        signals([0.0, 0.0, 0.0, 0.0], metric="review_rate", section="ops", subject="decline"),
    ], ignore_index=True)
    [low] = evaluate_alerts(s, [AlertRule(name="p", metric="precision", below=0.3, windows=2)])
    assert days(low) == ("08-05", "08-06", 2) and low.direction == "below" and not low.active
    assert low.peak == 0.2 and low.value == 0.2
    wildcard = evaluate_alerts(s, [AlertRule(name="r", metric="review_rate", below=0.05)])
    assert [a.subject for a in wildcard] == ["decline"]
    only = evaluate_alerts(s, [AlertRule(name="r", metric="review_rate", subject="review",
                                         above=0.05, windows=4)])
    assert [(a.subject, a.windows) for a in only] == [("review", 4)]


def test_section_separates_realised_from_estimated_metrics() -> None:
    s = pd.concat([signals([0.1, 0.1], metric="precision", section="kpi", subject=""),
                   signals([0.1, 0.1], metric="precision", section="estimate", subject="")],
                  ignore_index=True)
    both = evaluate_alerts(s, [AlertRule(name="p", metric="precision", below=0.3)])
    assert sorted(a.section for a in both) == ["estimate", "kpi"]
    kpi = evaluate_alerts(s, [AlertRule(name="p", metric="precision", below=0.3,
                                        section="kpi")])
    assert [a.section for a in kpi] == ["kpi"]


def test_severity_owner_and_channel_are_carried() -> None:
    s = signals([0.5, 0.5])
    owners = Owners(data_science="Fraud DS team")
    rules = [rule(name="a", severity="critical", owner="data_science", channel="#pager"),
             rule(name="b", severity="info", owner="Jane Doe"),
             rule(name="c")]
    alerts = evaluate_alerts(s, rules, owners=owners, default_owner="Risk team",
                             channel="#ml")
    got = {a.rule: (a.severity, a.owner, a.channel) for a in alerts}
    assert got == {"a": ("critical", "Fraud DS team (data_science)", "#pager"),
                   "b": ("info", "Jane Doe", "#ml"), "c": ("warning", "Risk team", "#ml")}
    assert [a.rule for a in alerts] == ["a", "c", "b"]  # critical, warning, info
    payload = alerts[0].to_json()
    assert payload["first_window"] == "2025-08-04T00:00:00+00:00" and payload["windows"] == 2
    assert "psi of amount (drift) above 0.2 in 2 consecutive windows" in payload["message"]


def test_confident_rules_use_the_interval() -> None:
    s = signals([0.5, 0.5], metric="cost", section="estimate", subject="",
                lower=[0.1, 0.3], upper=[0.9, 0.9])
    loose = AlertRule(name="c", metric="cost", above=0.2)
    strict = AlertRule(name="c", metric="cost", above=0.2, confident=True)
    assert [a.windows for a in evaluate_alerts(s, [loose])] == [2]
    assert [days(a) for a in evaluate_alerts(s, [strict])] == [("08-05", "08-05", 1)]


def test_relative_rules_need_a_reference_value() -> None:
    s = signals([5.0, 6.5, 6.4, 7.0], metric="loss_per_1000", section="kpi", subject="")
    relative = AlertRule(name="kpi", metric="loss_per_1000", above_reference=0.25, windows=2)
    assert evaluate_alerts(s, [relative]) == []
    [note] = rule_notes(s, [relative])
    assert "no reference value of `loss_per_1000`" in note
    # the reference as a signals row (status "reference") or as an argument: 5 * 1.25 = 6.25
    ref = signals([5.0], metric="loss_per_1000", section="kpi", subject="",
                  status="reference")
    [alert] = evaluate_alerts(pd.concat([s, ref], ignore_index=True), [relative])
    assert days(alert) == ("08-05", "08-07", 3) and alert.threshold == pytest.approx(6.25)
    assert alert.reference == 5.0 and "the reference's 5 +25%" in alert.message
    [same] = evaluate_alerts(s, [relative], references={("loss_per_1000", ""): 5.0})
    assert days(same) == days(alert)
    assert rule_notes(s, [AlertRule(name="x", metric="volume_z", above=3)]) == [
        "rule 'x': no signal of metric `volume_z` (yet)."]


def test_defaults_and_empty_rule_lists() -> None:
    assert [r.name for r in Monitoring().rules] == [
        "feature_drift", "score_drift", "review_queue_full", "kpi_worse"]
    feature = Monitoring(drift_threshold=0.3).rules[0]
    assert (feature.above, feature.windows, feature.min_samples) == (0.3, 2, 500)
    assert Monitoring.model_validate({"alerts": []}).rules == ()
    # the fraud example writes its own rules
    loaded = load_spec(ROOT / "examples" / "fraud")
    assert loaded.spec.monitoring is not None
    names = [r.name for r in loaded.spec.monitoring.rules]
    assert "feature_drift" in names and len(names) == len(set(names))


def test_missing_columns_are_a_data_error() -> None:
    with pytest.raises(DataError, match=r"columns \['status'\] are missing"):
        evaluate_alerts(signals([0.1]).drop(columns="status"), [rule()])


@pytest.mark.parametrize(("alerts", "field", "words"), [
    ([{"name": "a", "metric": "psi"}], "monitoring.alerts.0",
     "needs exactly one threshold"),
    ([{"name": "a", "metric": "psi", "above": 0.1, "below": 0.0}], "monitoring.alerts.0",
     "got `above`, `below`"),
    ([{"name": "a", "metric": "psi", "above": 0.1, "severity": "urgent"}],
     "monitoring.alerts.0.severity", "'info', 'warning' or 'critical'"),
    ([{"name": "a", "metric": "psi", "above": 0.1, "windows": 0}],
     "monitoring.alerts.0.windows", "greater than or equal to 1"),
    ([{"name": "a", "metric": "psi", "above": 0.1}, {"name": "a", "metric": "ks", "above": 1}],
     "monitoring", "two alert rules are named 'a'"),
    ([{"name": "a", "metric": "psi", "abov": 0.1}], "monitoring.alerts.0.abov",
     "remove it or check its spelling"),
])
def test_spec_errors_name_the_field(tmp_path: Path, alerts: list[dict[str, Any]], field: str,
                                    words: str) -> None:
    spec = yaml.safe_load((ROOT / "examples" / "fraud" / "valuechain.yaml").read_text())
    spec["owners"].pop("operations")
    spec["monitoring"]["alerts"] = alerts
    (tmp_path / "valuechain.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    with pytest.raises(SpecError) as raised:
        load_spec(tmp_path)
    assert f"field `{field}`" in str(raised.value) and words in str(raised.value)
    res = CliRunner().invoke(app, ["monitor", "--spec", str(tmp_path)])
    assert res.exit_code == 2, res.output
    assert f"field `{field}`" in res.output and "Traceback" not in res.output


def test_retrain_advice_weighs_importance_and_ignores_operations() -> None:
    s = pd.concat([signals([0.5] * 3, subject="amount"), signals([0.5] * 3, subject="noise"),
                   signals([1.0] * 3, metric="queue_fill", section="ops", subject="review")],
                  ignore_index=True)
    alerts = evaluate_alerts(s, default_alert_rules())
    assert sorted(a.rule for a in alerts) == ["feature_drift", "feature_drift",
                                              "review_queue_full"]
    importance = {"amount": 0.5, **{f"f{i}": 0.08 for i in range(5)}, "noise": 0.01}
    advice = retrain_advice(alerts, s, importance=importance)
    assert advice.recommend and len(advice.reasons) == 1
    assert "amount (psi 0.5 over 3 windows)" in advice.reasons[0]
    assert "noise" not in advice.reasons[0]
    only_noise = retrain_advice([a for a in alerts if a.subject != "amount"], s,
                                importance=importance)
    assert only_noise.to_json() == {"recommend": False, "reasons": []}


def test_retrain_advice_from_kpi_alerts_and_missed_estimates() -> None:
    kpi = signals([9.0, 9.0], metric="loss_per_1000", section="kpi", subject="")
    [alert] = evaluate_alerts(kpi, [AlertRule(name="k", metric="loss_per_1000", above=6,
                                              windows=2, severity="critical")])
    advice = retrain_advice([alert], kpi)
    assert advice.recommend and advice.reasons[0].startswith("matured KPI worse than allowed")
    covered = signals([1.0, 0.0, 0.0], metric="covered", section="estimate",
                      subject="precision")
    [reason] = retrain_advice([], covered).reasons
    assert "estimate of precision missed its interval on the last 2 matured cohorts" in reason
    assert "(since 2025-08-05)" in reason
    once = signals([0.0, 1.0, 0.0], metric="covered", section="estimate", subject="precision")
    assert not retrain_advice([], once).recommend


def test_an_alert_owned_by_an_unset_owner_fails_the_readiness_check(tmp_path: Path) -> None:
    """Not a spec error: `check` names the gap (exit 1) and the alert names the role."""
    from valuechain.spec.readiness import readiness

    spec = yaml.safe_load((ROOT / "examples" / "fraud" / "valuechain.yaml").read_text())
    spec["owners"].pop("operations")
    spec["monitoring"]["alerts"] = [{"name": "a", "metric": "psi", "above": 0.1,
                                     "owner": "operations"}]
    (tmp_path / "valuechain.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    from valuechain.spec.loader import load_spec

    loaded = load_spec(tmp_path)
    item = {c.item: c for c in readiness(loaded.spec)}["operational_ownership"]
    assert not item.passed
    assert "alert rule 'a' is owned by `owners.operations`, which is not set" in item.reason
