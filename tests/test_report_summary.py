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
import shutil
import subprocess
from dataclasses import dataclass
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

from .conftest import small_fraud_project
from .test_report_chain import Keyed

ROWS = 150_000


def test_policy_in_words() -> None:
    band = {"kind": "three_band", "review_at": 0.18, "decline_at": 0.62,
            "actions": ["approve", "review", "decline"]}
    assert policy_in_words(band, limit=150, overflow="approve") == (
        "decline when the score is 0.62 or above; send 0.18–0.62 to review (at most 150 a "
        "day, the rest approved); approve the rest")
    assert policy_in_words({"kind": "top_n", "n": 150, "per": "1d", "min_score": 0.0,
                            "action": "review", "other": "approve"}) == (
        "review the 150 highest scores a day; approve the rest")
    never = {**band, "decline_at": None}  # decide.json records an infinite threshold as null
    assert policy_in_words(never, limit=150, overflow="approve") == (
        "send scores of 0.18 or above to review (at most 150 a day, the rest approved); "
        "approve the rest")
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


@dataclass(frozen=True)
class World:
    project: Path
    spec: dict[str, Any]
    check: dict[str, Any]
    train: dict[str, Any]
    decide: dict[str, Any]
    report: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    """A 150k-transaction world through check, build, train and decide, then the report."""
    project = small_fraud_project(tmp_path_factory.mktemp("summary") / "fraud",
                                  min_positives=10)
    spec = yaml.safe_load((project / "valuechain.yaml").read_text())
    _cli("generate", "fraud", "--out", str(project / "data"), "--rows", str(ROWS), "--seed", "5")
    where = ("--spec", str(project))
    check = _cli("check", *where)
    _cli("build", *where)
    train = _cli("train", *where)
    decide = _cli("decide", *where)
    result = render_report(load_spec(project))
    assert result.ok, result.failed
    assert result.sections[0].id == "summary"  # the first screen comes before the details
    return World(project, spec, check, train, decide, result.path)


@pytest.mark.slow
def test_first_screen_equals_the_stages_json(world: World) -> None:
    project, spec, check, train, decide = (world.project, world.spec, world.check, world.train,
                                           world.decide)
    html = world.report.read_text(encoding="utf-8")
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


# --- the page in a browser: 1400 px, 800 px and A4 print -----------------------------------

BROWSER = next((b for b in ("chromium", "chromium-browser", "google-chrome")
                if shutil.which(b)), None)

#: Injected into a copy of the report (the report itself runs no scripts): measures every
#: table against its card and writes the result into the page, read back with --dump-dom.
_PROBE = """<script>
window.addEventListener('load', () => {
  const out = {page: document.documentElement.scrollWidth, view: window.innerWidth, tables: []};
  for (const t of document.querySelectorAll('table')) {
    const card = (t.closest('section') || document.body).getBoundingClientRect();
    const r = t.getBoundingClientRect();
    out.tables.push({cls: t.className, right: r.right, card: card.right,
                     sw: t.scrollWidth, cw: t.clientWidth, first: (t.querySelector('tr > :first-child')
                       ? getComputedStyle(t.querySelector('tr > :first-child')).position : '')});
  }
  const pre = document.createElement('pre'); pre.id = 'probe';
  pre.textContent = JSON.stringify(out); document.body.appendChild(pre);
});
</script>"""

#: A4 (210 mm) less the 12 mm print margins, in CSS pixels at 96 dpi.
A4_CONTENT_PX = round((210 - 24) / 25.4 * 96)


def _run_browser(*args: str) -> str:
    assert BROWSER is not None
    done = subprocess.run([BROWSER, "--headless", "--no-sandbox", "--disable-gpu",
                           "--no-pdf-header-footer", *args], capture_output=True, text=True,
                          timeout=180, check=False)
    return done.stdout


def _measure(report: Path, tmp: Path, width: int, *, print_css: bool) -> dict[str, Any]:
    import html as htmllib
    import re
    page = report.read_text(encoding="utf-8")
    if print_css:  # lay the page out with its print rules at the A4 content width
        page = page.replace("@media print {", "@media all {")
    probe = tmp / f"probe-{width}-{int(print_css)}.html"
    probe.write_text(page.replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    dom = _run_browser(f"--window-size={width},1000", "--dump-dom", probe.as_uri())
    found = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert found, dom[-500:]
    measured: dict[str, Any] = json.loads(htmllib.unescape(found.group(1)))
    return measured


@pytest.mark.slow
@pytest.mark.skipif(BROWSER is None, reason="no headless Chromium on this host")
def test_tables_fit_at_1400_and_800_px_and_on_a4(world: World, tmp_path: Path) -> None:
    for width in (1400, 800):
        seen = _measure(world.report, tmp_path, width, print_css=False)
        assert seen["page"] <= seen["view"], f"the page scrolls sideways at {width} px"
        for table in seen["tables"]:
            assert table["right"] <= table["card"] + 1, (width, table)  # nothing off the card
            if width == 1400:  # wide screens: every table fits without scrolling
                assert table["sw"] <= table["cw"] + 1, (width, table)
            elif table["sw"] > table["cw"] + 1 and "data" in table["cls"]:
                assert table["first"] == "sticky", table  # scrolls, its key column stays
    seen = _measure(world.report, tmp_path, A4_CONTENT_PX, print_css=True)
    for table in seen["tables"]:  # on paper nothing scrolls: every table fits the width
        assert table["sw"] <= table["cw"] + 1 and table["right"] <= table["card"] + 1, table
    pdf = tmp_path / "report.pdf"
    _run_browser(f"--print-to-pdf={pdf}", world.report.as_uri())
    assert pdf.is_file() and pdf.read_bytes().startswith(b"%PDF")
