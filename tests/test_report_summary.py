"""The report's first screen (``report/sections_summary.py``): every number equals the
``--json`` output of the stage it comes from.

The end-to-end test generates a 150k-transaction world, runs ``check``, ``build``, ``train``
and ``decide`` through the CLI with ``--json`` (~30-60 s on one core: marked slow), renders the
report and reads the summary's ``data-key`` elements. The KPI and the spills are not printed by
any stage: the test recomputes them by hand from the run's stored test predictions (plain
pandas, the policy's thresholds, the limit per day) and compares.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from valuechain.cli import app
from valuechain.policy import apply_with_capacity, policy_from_dict
from valuechain.report import render_report
from valuechain.report.sections_summary import DAYS_PER_MONTH, DAYS_PER_YEAR, policy_in_words
from valuechain.spec import load_spec

from .conftest import ROOT
from .test_report_chain import Keyed

ROWS = 150_000


def test_policy_in_words() -> None:
    band = {"kind": "three_band", "review_at": 0.18, "decline_at": 0.62,
            "actions": ["approve", "review", "decline"]}
    assert policy_in_words(band, limit=150, overflow="approve") == (
        "decline at a score of 0.62 or above, send 0.18–0.62 to review (at most 150 a day; "
        "beyond that approve), approve the rest")
    assert policy_in_words({"kind": "top_n", "n": 150, "per": "1d", "min_score": 0.0,
                            "action": "review", "other": "approve"}) == (
        "review the 150 highest scores each 1d, approve the rest")
    text = policy_in_words({"kind": "threshold", "threshold": 0.5, "below": "approve",
                            "at_or_above": "decline"})
    assert "[" not in text and "(" not in text  # no Python reprs


def _cli(*args: str) -> Any:
    result = CliRunner().invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.output)


def _value(page: Keyed, key: str) -> float:
    value, _ = page.one(key)
    assert value is not None, key
    return float(value)


def _loss_per_1000(amount: np.ndarray, y: np.ndarray, approved: np.ndarray) -> float:
    return float(1000 * (amount * y)[approved].sum() / amount[approved].sum())


@pytest.mark.slow
def test_first_screen_equals_the_stages_json(tmp_path: Path) -> None:
    project = tmp_path / "fraud"
    project.mkdir()
    spec = yaml.safe_load((ROOT / "examples" / "fraud" / "valuechain.yaml").read_text())
    spec["split"]["min_positives"] = 10
    (project / "valuechain.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    _cli("generate", "fraud", "--out", str(project / "data"), "--rows", str(ROWS), "--seed", "5")
    where = ("--spec", str(project))
    check = _cli("check", *where)
    _cli("build", *where)
    train = _cli("train", *where)
    decide = _cli("decide", *where)

    loaded = load_spec(project)
    result = render_report(loaded)
    assert result.ok, result.failed
    ids = [s.id for s in result.sections]
    assert ids[0] == "summary"  # the first screen comes before every detail section
    html = result.path.read_text(encoding="utf-8")
    page = Keyed()
    page.feed(html)
    at = html.find(str(project))
    assert at < 0, html[max(at - 300, 0):at + 100]  # relative paths only

    test, rule = decide["test"], decide["baselines"]["rules"]
    saved = test["savings"]["rules"]
    assert page.one("summary-owner")[1] == spec["decision"]["owner"]
    assert page.one("summary-ready")[0] == str(check["passed"]).lower()
    assert _value(page, "summary-savings") == saved["value"]
    assert _value(page, "summary-savings-per-day") == saved["per_day"]
    assert _value(page, "summary-savings-per-month") == saved["per_day"] * DAYS_PER_MONTH
    assert _value(page, "summary-savings-per-year") == saved["per_day"] * DAYS_PER_YEAR
    assert _value(page, "summary-rule-cost") == rule["expected_cost"]
    assert _value(page, "summary-policy-cost") == test["expected_cost"]
    assert _value(page, "summary-policy-cost") - _value(page, "summary-rule-cost") == \
        pytest.approx(-saved["value"])  # one cost per baseline: the savings are its difference
    assert _value(page, "summary-caught") == test["caught_positives"]
    assert _value(page, "summary-positives") == test["positives"]
    assert _value(page, "summary-caught-rule") == rule["caught_positives"]
    cap = test["capacity"]
    assert _value(page, "summary-load-max") == cap["max_used"]
    assert _value(page, "summary-load-mean") == cap["mean_used"]
    limit = cap["limit"]
    assert _value(page, "summary-days-at-limit") == sum(u >= limit for u in cap["used_per_period"])
    words = page.one("summary-policy")[1]
    assert "[" not in words and "{" not in words

    # The KPI and the spills, by hand from the run's test predictions.
    table = pd.read_parquet(project / ".valuechain" / "runs" / train["run_id"]
                            / "predictions_test.parquet")
    best = train["best_candidate"]
    score = table[f"score_{best}"].to_numpy(float)
    day = pd.to_datetime(table["ts"]).dt.floor("D").to_numpy()
    y = table["label"].to_numpy(float)
    amount = table["cost_false_negative"].to_numpy(float)
    policy = decide["policy"]
    asked = (score >= policy["review_at"]) & (score < policy["decline_at"])
    per_day = pd.Series(asked).groupby(day).sum().to_numpy()
    assert _value(page, "summary-spilled") == np.clip(per_day - limit, 0, None).sum()
    acts = np.asarray(apply_with_capacity(policy_from_dict(policy), score,
                                          pd.factorize(day)[0], limit, "approve"))
    assert _value(page, "summary-kpi-policy") == pytest.approx(
        _loss_per_1000(amount, y, acts == "approve"))
    flagged = table["rule"].to_numpy(bool)
    rank = pd.Series(flagged.astype(int)).groupby(day).cumsum().to_numpy()
    rule_reviewed = flagged & (rank <= limit)
    assert _value(page, "summary-kpi-rule") == pytest.approx(
        _loss_per_1000(amount, y, ~rule_reviewed))
