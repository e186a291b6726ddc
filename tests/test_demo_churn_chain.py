"""``valuechain demo churn`` end to end on a small world, then the week's list: capacity,
stratified control, idempotent assignment, cooldown, immature weeks, the CLI."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from valuechain.cli import app
from valuechain.demo.churn_chain import run_churn_demo
from valuechain.lists import Assignment, AssignmentLog, control_bins, week_list
from valuechain.lists.week import week_frame
from valuechain.spec import load_spec

pytestmark = pytest.mark.slow

CUSTOMERS = 1500
LIMIT = 30  # max(10, round(20 * 1500 / 1000))


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], list[str]]:
    project = tmp_path_factory.mktemp("churn-demo") / "churn"
    lines: list[str] = []
    out = run_churn_demo(project, customers=CUSTOMERS, seed=11, echo=lines.append)
    return project, out, lines


def test_the_chain_runs_and_prints_each_step(chain: tuple[Path, dict[str, Any], list[str]]
                                             ) -> None:
    _, out, lines = chain
    steps = [line.split(":", 1)[0] for line in lines]
    for step in ("generate", "check", "build", "audit", "train", "decide", "uplift", "list",
                 "report"):
        assert step in steps, (step, lines)
    assert out["check"]["passed"]
    assert out["audit"]["counts"]["critical"] == 0
    decided = out["decide"]
    assert decided["kind"] == "top_n"
    assert (decided["policy"]["action"], decided["policy"]["other"]) == ("call", "no_call")
    assert set(decided["baselines"]) == {"no_outreach", "random_list", "rules"}
    assert decided["test"]["capacity"]["limit"] == LIMIT
    assert decided["test"]["capacity"]["max_used"] <= LIMIT
    assert decided["test"]["savings"]["no_outreach"]["blocks"] == "customers"
    assert any("a week" in line for line in lines if line.startswith("decide"))
    assert out["report"]["ok"], out["report"]
    html = Path(out["report"]["report"]).read_text(encoding="utf-8")
    assert "Lists handed out" in html and "per week" in html


def test_decide_never_evaluates_immature_weeks(chain: tuple[Path, dict[str, Any], list[str]]
                                               ) -> None:
    project, out, _ = chain
    loaded = load_spec(project)
    as_of = datetime.fromisoformat(str(out["build"]["as_of"])).replace(tzinfo=None)
    run_dir = loaded.workspace / "runs" / out["train"]["run_id"]
    for role in ("validation", "test"):
        times = pd.read_parquet(run_dir / f"predictions_{role}.parquet",
                                columns=["decision_time"])["decision_time"]
        assert (times + timedelta(days=30) <= as_of).all(), role
    frame = pd.read_parquet(loaded.workspace / "build" / "frame.parquet",
                            columns=["decision_time"])
    assert (frame["decision_time"] + timedelta(days=30) <= as_of).all()


def test_the_list_fits_capacity_holds_out_a_stratified_control_and_is_idempotent(
        chain: tuple[Path, dict[str, Any], list[str]]) -> None:
    project, out, _ = chain
    listed = out["list"]
    table = pd.read_parquet(listed["parquet"])
    assert len(table) == listed["rows"] <= LIMIT
    assert listed["control"] == round(0.2 * listed["rows"])
    assert (table["group"] == "control").sum() == listed["control"]
    assert set(table["action"]) <= {"call", "no_call"}
    assert (table.loc[table["group"] == "control", "action"] == "no_call").all()
    assert table["rank"].tolist() == list(range(1, len(table) + 1))
    order = "expected_value" if listed["ranked_by"] == "expected_value" else "score"
    assert np.all(np.diff(table[order].to_numpy()) <= 1e-9)  # ranked by risk or EV
    m = len(table)
    sizes = np.bincount(control_bins(m, 10), minlength=10)
    per_bin = np.bincount(table["score_bin"] - 1, weights=table["group"] == "control",
                          minlength=10)
    floor = np.floor(listed["control"] / max(m, 1) * sizes + 1e-9)
    assert np.all((per_bin == floor) | (per_bin == floor + 1))
    csv = pd.read_csv(listed["csv"])
    assert csv["customer_id"].tolist() == table["customer_id"].tolist()
    # the same week again: the same list, nothing new logged
    again = week_list(load_spec(project), listed["week"])
    assert again.logged == 0
    assert again.table["customer_id"].tolist() == table["customer_id"].tolist()
    assert again.table["group"].tolist() == table["group"].tolist()


def test_cooldown_keeps_last_weeks_customers_off_this_weeks_list(
        chain: tuple[Path, dict[str, Any], list[str]]) -> None:
    project, _, _ = chain
    loaded = load_spec(project)
    first = week_list(loaded, "2025-05-05")
    second = week_list(loaded, "2025-05-12")
    later = week_list(loaded, "2025-06-16")  # 6 weeks on: the cooldown (35d) is over
    a, b = set(first.table["customer_id"]), set(second.table["customer_id"])
    assert a and b and not a & b
    assert second.in_cooldown >= len(a) - 5  # (a few of them may have cancelled)
    log = AssignmentLog(loaded.workspace / "lists" / "assignments.sqlite")
    assert log.listed_between("2025-05-05", "2025-05-13") == {str(c) for c in a | b}
    assert later.in_cooldown == 0  # 2025-05-12 is exactly 35 days before: over


def test_list_cli_prints_json_and_refuses_a_week_off_the_schedule(
        chain: tuple[Path, dict[str, Any], list[str]]) -> None:
    project, _, _ = chain
    runner = CliRunner()
    ok = runner.invoke(app, ["list", "--spec", str(project), "--week", "2025-04-07",
                             "--json"])
    assert ok.exit_code == 0, ok.output
    first = json.loads(ok.output)
    assert first["rows"] <= LIMIT and first["logged"] == first["rows"]
    again = runner.invoke(app, ["list", "--spec", str(project), "--week", "2025-04-07"])
    assert again.exit_code == 0, again.output
    assert "held out as control" in again.output
    assert "already logged: unchanged" in again.output  # idempotent: nothing new logged
    # a week already handed out with another draw (here: written by hand) is refused
    AssignmentLog(load_spec(project).workspace / "lists" / "assignments.sqlite").record(
        [Assignment("no-such-customer", "2025-03-24", "treated", 1, 0.5)])
    changed = runner.invoke(app, ["list", "--spec", str(project), "--week", "2025-03-24"])
    assert changed.exit_code == 2 and "already has a list" in changed.output
    bad = runner.invoke(app, ["list", "--spec", str(project), "--week", "2025-06-04"])
    assert bad.exit_code == 2
    assert "not a decision time of the schedule" in bad.output
    late = runner.invoke(app, ["list", "--spec", str(project), "--week", "2025-09-01"])
    assert late.exit_code == 2
    assert "the sources end" in late.output


class _TwoLogistic:
    """A tiny two-model uplift learner (a real fitted object implementing UpliftModel):
    logistic regressions of the label on the treated and on the control listings."""

    learner = "two_model"

    def __init__(self, features: list[str]) -> None:
        self.features = features

    def fit(self, frame: pd.DataFrame, treated: np.ndarray, y: np.ndarray) -> _TwoLogistic:
        from sklearn.linear_model import LogisticRegression

        x = frame[self.features].fillna(0).to_numpy(dtype=float)
        self.models = [LogisticRegression(max_iter=500).fit(x[treated == g], y[treated == g])
                       for g in (0, 1)]
        return self

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        x = frame[self.features].fillna(0).to_numpy(dtype=float)
        p0, p1 = (m.predict_proba(x)[:, 1] for m in self.models)
        return np.asarray(p0 - p1)


def test_with_an_uplift_model_the_list_ranks_by_expected_value_of_a_call(
        chain: tuple[Path, dict[str, Any], list[str]]) -> None:
    project, _, _ = chain
    loaded = load_spec(project)
    frame = pd.read_parquet(loaded.workspace / "build" / "frame.parquet")
    history = pd.read_parquet(project / "data" / "outreach.parquet",
                              columns=["customer_id", "week", "group"])
    history["week"] = pd.to_datetime(history["week"]).astype("datetime64[us]")
    frame["decision_time"] = frame["decision_time"].astype("datetime64[us]")
    joined = frame.merge(history, left_on=["customer_id", "decision_time"],
                         right_on=["customer_id", "week"])
    features = ["sessions_14d", "sessions_prior_28d", "tickets_28d", "failed_payments_28d"]
    model = _TwoLogistic(features).fit(joined, (joined["group"] == "treated").to_numpy(int),
                                       joined["cancels_30d"].to_numpy(int))
    by_risk = week_list(loaded, "2025-02-24", uplift=model, rank="risk")
    assert by_risk.ranked_by == "risk" and by_risk.uplift is None
    result = week_list(loaded, "2025-03-03", uplift=model)
    table = result.table
    assert result.ranked_by == "expected_value" and result.uplift == "two_model"
    assert len(table) <= LIMIT
    assert (table["expected_value"] > 0).all()
    assert np.all(np.diff(table["expected_value"].to_numpy()) <= 1e-9)
    # EV = uplift * value of the customer (12 * monthly_price) - cost of a call (15)
    week = week_frame(loaded, datetime(2025, 3, 3))
    price = week.set_index("customer_id").loc[table["customer_id"], "monthly_price"].to_numpy()
    assert np.allclose(table["expected_value"], table["uplift"] * 12 * price - 15)
