"""The "Decision policy and value" report section, rendered from a hand-written decide.json.

The fake ``decide.json`` has the shape :func:`valuechain.decide.decide_project` writes, with
numbers from the 150k-transaction fraud demo (``valuechain generate fraud --rows 150000
--seed 5``, ``train``, ``decide``), trimmed where lists are long.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from valuechain.errors import DataError
from valuechain.report import Section, render_report
from valuechain.report.sections_decide import capacity_chart, decide_section, limited_action
from valuechain.spec import LoadedSpec, load_spec

EVIL = "<script>alert('x')</script>"


def _spec(root: Path, capacity: dict[str, Any] | None = None) -> LoadedSpec:
    root.mkdir(parents=True, exist_ok=True)
    spec: dict[str, Any] = {
        "project": {"name": "tiny-decide"},
        "decision": {"statement": "s", "owner": "Payments risk team", "moment": "m",
                     "actions": ["approve", "review", "decline"]},
        "decision_points": {"source": "orders"},
        "sources": {"orders": {"path": "orders.parquet", "keys": ["order_id"],
                               "event_time": "ts"}},
        "label": {"column": "y", "horizon": "7d"},
        "features": [{"name": "amount", "expr": "amount"}],
        "value": {"currency": "EUR",
                  "costs": {"false_negative": "amount", "false_positive": "0.1 * amount + 5",
                            "review": "3"},
                  "capacity": {"review": capacity or {"limit": 150, "per": "1d"}},
                  "review": {"catch_rate": 0.9, "friction": 0.02}},
    }
    (root / "valuechain.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return load_spec(root)


def _policy(review_at: float, decline_at: float) -> dict[str, Any]:
    return {"version": 1, "kind": "three_band", "review_at": review_at, "decline_at": decline_at,
            "actions": ["approve", "review", "decline"],
            "metadata": {"capacity": 150, "overflow": "approve", "percentile": 1.0,
                         "fitted_rows": 8268}}


def _summary(cost: float, reviews: list[int], approve: float, decline: float,
             caught: float, limit: int = 150) -> dict[str, Any]:
    mean = sum(reviews) / len(reviews)
    return {
        "expected_cost": cost, "cost_per_1000": 1000 * cost / 9023, "decisions": 9023,
        "actions_per_period": {
            "approve": {"max": approve + 120, "mean": approve, "total": round(approve * 15)},
            "review": {"max": float(max(reviews)), "mean": mean, "total": sum(reviews)},
            "decline": {"max": 2.0, "mean": decline, "total": round(decline * 15)}},
        "capacity": {"limit": limit, "max_used": float(max(reviews)), "mean_used": mean,
                     "p50_used": 20.0, "p90_used": 26.0,
                     "periods_over_limit": sum(r > limit for r in reviews),
                     "periods": len(reviews), "used_per_period": reviews},
        "caught_positives": caught, "positives": 45.0,
    }


TEST_REVIEWS = [11, 21, 17, 22, 20, 15, 13, 18, 26, 23, 26, 31, 20, 14, 17]
VALIDATION_REVIEWS = [19, 20, 31, 22, 24, 8, 22, 16, 23, 28, 13, 16, 14, 16, 17]


def _body() -> dict[str, Any]:
    test = _summary(3672.3571, TEST_REVIEWS, 581.4, 0.5333, 36.0)
    test["savings"] = {
        "approve_all": {"value": 8243.6429, "low": 3623.596, "high": 14284.483,
                        "per_day": 549.576},
        "rules": {"value": 1977.2866, "low": 641.5787, "high": 3781.2047, "per_day": 131.819},
        "threshold_0.5": {"value": 5300.6459, "low": 1990.4806, "high": 8985.5408,
                          "per_day": 353.376},
        "accuracy_optimal": {"value": 2229.3579, "low": -151.3831, "high": 5122.6006,
                             "per_day": 148.624},
    }
    none = [0] * 15
    moved = {("false_negative", 0.5): (0.046615, 0.540163, 2026.68, 3931.32, 1338.71),
             ("false_negative", 2.0): (0.014346, 0.303826, 6540.48, 17291.52, 3677.68),
             ("false_positive", 0.5): (0.021202, 0.224040, 3587.81, 8328.19, 1959.26),
             ("false_positive", 2.0): (0.023517, 0.687857, 3943.05, 7972.95, 1911.73),
             ("review", 0.5): (0.014571, 0.540163, 3470.64, 8445.36, 1741.00),
             ("review", 2.0): (0.046615, 0.379770, 3893.27, 8022.73, 2632.37)}
    frontier = [(0, 5898.68, 0.0), (3, 5513.06, 2.07), (6, 5366.77, 3.73), (9, 5198.66, 5.93),
                (12, 5148.66, 6.93), (16, 5081.92, 9.47), (19, 5012.96, 11.33),
                (22, 4953.63, 13.53), (25, 4943.27, 15.67), (28, 4909.54, 17.13),
                (31, 4885.98, 19.27)]
    curve = [(0.00372, 4512, 0.0095, 0.9556), (0.0101, 1500, 0.0273, 0.9111),
             (0.0235, 400, 0.09, 0.8), (0.0566, 77, 0.4156, 0.7111), (0.2, 30, 0.7, 0.4667),
             (0.85, 1, 1.0, 0.0222)]
    return {
        "run_id": "20261128-183008-813c31", "candidate": "logistic", "kind": "three_band",
        "objective": "expected",
        "policy": _policy(0.023516666614405927, 0.5401629949644016),
        "validation": _summary(3659.6243, VALIDATION_REVIEWS, 531.6, 0.3333, 30.0),
        "test": test,
        "baselines": {
            "approve_all": _summary(11916.0, none, 601.53, 0.0, 0.0),
            "rules": _summary(5649.6437, [20, 19, 26, 18, 21, 22, 17, 19, 20, 18, 19, 21, 18, 17,
                                          17], 582.07, 0.0, 20.0),
            "threshold_0.5": _summary(8973.003, none, 601.0, 0.5333, 7.0),
            "accuracy_optimal": _summary(5901.715, none, 599.33, 2.2, 20.0),
        },
        "sensitivity": [
            {"cost": cost, "factor": factor, "policy": _policy(r, d), "test_cost": c,
             "savings_vs_approve_all": a, "savings_vs_rules": b}
            for (cost, factor), (r, d, c, a, b) in moved.items()
        ],
        "frontier": [{"capacity": float(k), "cost": c, "reviews_max": float(k),
                      "reviews_mean": m} for k, c, m in frontier],
        "threshold_curve": [{"threshold": t, "flagged": f, "precision": p, "recall": r}
                            for t, f, p, r in curve],
        "value_chain": [
            {"link": "model output", "owner": "Fraud data science team",
             "what": "logistic: test AUC 0.950, average precision 0.536, calibrated (sigmoid)"},
            {"link": "decision rule", "owner": "Payments risk team",
             "what": "three_band (review_at=0.02352, decline_at=0.5402)"},
            {"link": "changed behaviour", "owner": "(no owner)",
             "what": f"per period: 581 approved, 20 to review (max 31 of 150) {EVIL}"},
            {"link": "KPI", "owner": "Head of Payments",
             "what": "expected cost: EUR 8,244 of losses avoided vs approving all, EUR 1,977 "
                     "saved vs today's policy over the test period"},
        ],
    }


def _write(loaded: LoadedSpec, body: dict[str, Any]) -> None:
    loaded.workspace.mkdir(parents=True, exist_ok=True)
    (loaded.workspace / "decide.json").write_text(json.dumps(body))


def _render(loaded: LoadedSpec) -> Section:
    section = decide_section(loaded, loaded.workspace)
    assert section is not None
    return section


def _svgs(html: str) -> list[str]:
    return re.findall(r"<svg.*?</svg>", html, flags=re.S)


@pytest.fixture()
def decided(tmp_path: Path) -> LoadedSpec:
    loaded = _spec(tmp_path / "p")
    _write(loaded, _body())
    return loaded


def test_section_shows_the_policy_and_headline_tiles(decided: LoadedSpec) -> None:
    section = _render(decided)
    html = str(section.html)
    assert section.id == "decide" and section.title == "Decision policy and value"
    assert "three-band (approve / review / decline)" in html
    assert 'data-key="decide-candidate">logistic<' in html
    assert 'data-key="decide-run-id">20261128-183008-813c31<' in html
    assert 'data-key="decide-policy-review_at" data-value="0.023516666614405927">0.02352<' in html
    assert 'data-key="decide-policy-decline_at" data-value="0.5401629949644016">' in html
    assert 'data-key="decide-savings-approve_all"\n      data-value="8243.6429"' in html
    assert 'data-key="decide-max-used" data-value="31.0">31 / 150<' in html
    assert "score below 0.02352" in html
    assert "score from 0.02352 to below 0.5402" in html and "score from 0.5402" in html
    assert "150 review per 1d" in html and "beyond the limit: approve" in html
    assert "every period within the limit" in html and "8,268 validation decisions" in html
    assert "runs/20261128-183008-813c31/policy.yaml" in html
    assert "EUR 407.0" in html  # cost per 1,000 decisions on test
    assert "EUR 1,977" in html and "[642, 3,781]" in html  # saved vs today's rule
    assert "31 / 150" in html


def test_value_chain_highlights_a_missing_owner_and_escapes_text(decided: LoadedSpec) -> None:
    html = str(_render(decided).html)
    chain = html[html.index("The value chain"):html.index("Test period")]
    assert chain.index("model output") < chain.index("decision rule") < chain.index(
        "changed behaviour") < chain.index("KPI")
    assert "Fraud data science team" in html and "Head of Payments" in html
    assert html.count('class="badge fail">no owner<') == 1
    assert "<code>owners.operations</code>" in html
    assert "No owner for: changed behaviour." in html
    assert "<script" not in html and "&lt;script&gt;" in html


def test_test_table_compares_the_policy_with_every_baseline(decided: LoadedSpec) -> None:
    html = str(_render(decided).html)
    table = html[html.index("Test period: the policy against the baselines"):
                 html.index("Savings on test")]
    for label in ("policy (chosen)", "approve all", "today&#39;s rule", "threshold 0.5",
                  "accuracy-optimal threshold"):
        assert label in table
    assert table.index("approve all") < table.index("today&#39;s rule") < table.index(
        "threshold 0.5") < table.index("accuracy-optimal threshold")
    for cost in ("3,672", "11,916", "5,650", "8,973", "5,902"):
        assert f">{cost}<" in table
    assert ">407.0<" in table and ">1,320.6<" in table  # per 1,000 decisions
    assert "581.4 / 19.6 / 0.5" in table  # mean approve / review / decline per day
    assert "26 / 150" in table and "0 / 150" in table
    assert "36 of 45" in table and "Cost (EUR)" in table
    assert 'class="badge fail"' not in table  # nothing over the limit


def test_savings_badges_follow_the_interval(decided: LoadedSpec) -> None:
    section = _render(decided)
    html = str(section.html)
    savings = html[html.index("Savings on test"):html.index("Capacity use per")]
    assert savings.count('class="badge pass">saves (interval above 0)<') == 3
    assert savings.count('class="badge na">unclear (interval includes 0)<') == 1
    assert "+8,244" in savings and "[+3,624, +14,284]" in savings and "+550" in savings
    assert "[-151, +5,123]" in savings
    assert section.status == "warn"
    assert "The saving against accuracy-optimal threshold is not clear of zero" in html


def test_a_policy_that_costs_more_gets_a_red_badge(tmp_path: Path) -> None:
    loaded = _spec(tmp_path / "p")
    body = _body()
    body["test"]["savings"]["rules"] = {"value": -900.0, "low": -1500.0, "high": -200.0,
                                        "per_day": -60.0}
    _write(loaded, body)
    html = str(_render(loaded).html)
    assert 'class="badge fail">costs more (interval below 0)<' in html
    assert "-900" in html and "[-1,500, -200]" in html


def test_all_clear_is_ok(tmp_path: Path) -> None:
    loaded = _spec(tmp_path / "p")
    body = _body()
    body["test"]["savings"]["accuracy_optimal"]["low"] = 12.0
    body["value_chain"][2]["owner"] = "Fraud operations (review desk)"
    _write(loaded, body)
    section = _render(loaded)
    assert section.status == "ok"
    assert 'class="note warn"' not in str(section.html)


def test_capacity_is_charted_per_period_with_the_limit(decided: LoadedSpec) -> None:
    html = str(_render(decided).html)
    charts = [s for s in _svgs(html) if "chart-capacity" in s]
    assert len(charts) == 2
    validation, test = charts
    assert "Review cases per day, validation period, against the limit" in validation
    assert "Review cases per day, test period, against the limit" in test
    assert test.count("<rect") == len(TEST_REVIEWS) + 1  # one bar per day and the legend
    assert 'class="limit"' in test and "limit 150" in test
    assert "period 12: 31 review of 150 (within the limit)" in test
    assert "at most <strong>31</strong>" in html and "(21% of the limit of 150)" in html
    assert "median 20" in html and "90th percentile 26" in html


def test_capacity_chart_colours_bars_at_and_over_the_limit() -> None:
    svg = str(capacity_chart([2, 4, 5], 4, "reviews per day"))
    assert svg.count('fill="#2563eb"') == 2  # one within, and the legend swatch
    assert svg.count('fill="#d97706"') == 1  # at the limit
    assert svg.count('fill="#dc2626"') == 1  # over the limit
    assert "period 3: 5 review of 4 (over the limit)" in svg
    assert "<title>reviews per day</title>" in svg
    flat = str(capacity_chart([0, 0], 0, "nothing"))
    assert "<svg" in flat and "nan" not in flat.lower()
    assert 'class="limit"' not in str(capacity_chart([1, 2], None, "no limit"))


def test_over_capacity_warns(tmp_path: Path) -> None:
    loaded = _spec(tmp_path / "p")
    body = _body()
    body["validation"] = _summary(3659.6, [*VALIDATION_REVIEWS[:-1], 160], 531.6, 0.33, 30.0)
    _write(loaded, body)
    section = _render(loaded)
    html = str(section.html)
    assert section.status == "warn"
    assert "The policy exceeds the capacity in 1 validation periods." in html
    assert "<strong>1 over the limit</strong>" in html


def test_trade_off_curves(decided: LoadedSpec) -> None:
    html = str(_render(decided).html)
    frontier = next(s for s in _svgs(html) if "against the review limit" in s)
    assert "cost at each limit" in frontier and "chosen policy" in frontier
    assert frontier.count("<circle") == 11 + 1 + 2  # points, the chosen one, legend marks
    assert "limit 31 review per 1d: expected cost EUR 4,886" in frontier
    # The limit (150) is beyond the curve: said in words, not drawn.
    assert "On validation the limit (150 per 1d) is above the 31 review per 1d" in html
    curve = next(s for s in _svgs(html) if "Precision and recall" in s)
    assert "threshold (log scale)" in curve and ">0.001<" in curve and ">1<" in curve
    assert "review from 0.02352" in curve and "decline from 0.5402" in curve
    assert curve.count("<polyline") == 2 + 2  # precision, recall, the two band edges
    assert "<circle" not in curve.split('class="legend"')[0]  # lines only, no markers


def test_a_binding_limit_is_drawn_on_the_frontier(tmp_path: Path) -> None:
    loaded = _spec(tmp_path / "p", {"limit": 20, "per": "1d"})
    body = _body()
    body["policy"]["metadata"]["capacity"] = 20
    _write(loaded, body)
    html = str(_render(loaded).html)
    frontier = next(s for s in _svgs(html) if "against the review limit" in s)
    assert ">limit 20<" in frontier and 'stroke-dasharray="6 4"' in frontier
    assert "chosen: limit 20, needs 19" in frontier
    assert "does not bind" not in html


def test_sensitivity_table(decided: LoadedSpec) -> None:
    html = str(_render(decided).html)
    table = html[html.index("Sensitivity to the costs"):]
    assert "Saved vs approve all" in table and "Saved vs today&#39;s rule" in table
    assert table.count("<tr>") == 1 + 1 + 6  # header, as specified, six moved costs
    assert "<em>as in the spec</em>" in table
    assert "false negative" in table and "false positive" in table and "×0.5" in table
    assert "<strong>review from 0.01435, decline from 0.3038</strong>" in table
    assert "+17,292" in table and "+3,678" in table and "6,540" in table
    # Doubling the false-positive cost keeps the review threshold: only decline moves.
    assert "<strong>review from 0.02352, decline from 0.6879</strong>" in table


def test_other_policy_kinds(tmp_path: Path) -> None:
    loaded = _spec(tmp_path / "p")
    body = _body()
    body["kind"] = "top_n"
    body["policy"] = {"version": 1, "kind": "top_n", "n": 25, "per": "1d",
                      "min_score": 0.0235, "action": "review", "other": "approve",
                      "metadata": {"capacity": 150, "overflow": "approve", "percentile": 1.0}}
    body["sensitivity"] = [{"cost": "review", "factor": 2.0, "test_cost": 10.0,
                            "policy": {"kind": "top_n", "n": 11, "min_score": 0.0466}}]
    _write(loaded, body)
    html = str(_render(loaded).html)
    assert "top-N per period" in html
    assert "the 25 highest scores of each 1d that are at least 0.0235" in html
    assert "<strong>n = 11, min score 0.0466</strong>" in html
    assert "Saved vs" not in html  # the moved entry has no savings
    body["kind"] = "threshold"
    body["policy"] = {"version": 1, "kind": "threshold", "threshold": 0.1028,
                      "below": "approve", "at_or_above": "decline",
                      "metadata": {"capacity": None, "overflow": "approve", "percentile": 1.0}}
    _write(loaded, body)
    html = str(_render(loaded).html)
    assert "single-threshold" in html and "score from 0.1028" in html
    # The frontier limits the threshold's declines; decide.json counts the spec's reviews.
    assert any("against the decline limit" in svg for svg in _svgs(html))
    assert "does not bind" not in html  # the review limit is not a limit on declines
    assert sum("Review cases per day, test period, against the limit" in svg for svg in _svgs(html)) == 1
    assert limited_action({"kind": "three_band", "actions": ["a", "b", "c"]}) == "b"


def test_no_decide_json_says_which_command_adds_it(tmp_path: Path) -> None:
    loaded = _spec(tmp_path / "p")
    section = _render(loaded)
    assert section.status == "missing" and section.id == "decide"
    assert "<code>valuechain decide</code>" in str(section.html)


def test_infinite_thresholds_recorded_as_null_render_as_infinity(tmp_path: Path) -> None:
    loaded = _spec(tmp_path / "p")
    body = _body()  # decide.json writes infinite thresholds as null: here review_at = -inf
    body["policy"] |= {"review_at": None, "decline_at": 0.9}
    _write(loaded, body)
    html = str(_render(loaded).html)
    assert "score below -∞" in html and "score from -∞ to below 0.9" in html
    assert 'data-key="decide-policy-review_at"' not in html
    body["policy"] |= {"review_at": 0.2, "decline_at": None}
    _write(loaded, body)
    assert "score from 0.2 to below ∞" in str(_render(loaded).html)


def test_missing_or_renamed_keys_fail_instead_of_rendering_dashes(tmp_path: Path) -> None:
    loaded = _spec(tmp_path / "p")
    # the typed DecideResult names what it validates; the report checks the plain parts
    cases: list[tuple[str, Any]] = [
        ("missing: test.savings.rules.value", lambda b: b["test"]["savings"]["rules"].update(
            saved=b["test"]["savings"]["rules"].pop("value"))),
        ("wrong: test.expected_cost", lambda b: b["test"].update(expected_cost="oops")),
        ("key `policy.actions` is missing", lambda b: b["policy"].pop("actions")),
        ("missing: baselines.rules.capacity.max_used",
         lambda b: b["baselines"]["rules"]["capacity"].pop("max_used")),
        ("wrong: value_chain.0", lambda b: b.update(value_chain=[None])),
        ("missing: run_id", lambda b: b.pop("run_id")),
        ("`policy.kind` is 'bands'", lambda b: b["policy"].update(kind="bands")),
        ("key `frontier[0].cost` is missing", lambda b: b["frontier"][0].pop("cost")),
    ]
    for message, damage in cases:
        body = _body()
        damage(body)
        _write(loaded, body)
        with pytest.raises(DataError, match=re.escape(message)):
            _render(loaded)
    result = render_report(loaded)
    assert [(s.id, s.title) for s in result.failed] == [("decide", "Decision policy and value")]
    assert "decide.json: key `frontier[0].cost` is missing" in (result.section("decide").error
                                                                 or "")


def test_policy_priced_on_another_run_than_the_latest_warns(decided: LoadedSpec) -> None:
    html = str(_render(decided).html)
    assert 'data-key="origin-decide"' in html and "mismatch-decide" not in html
    run = decided.workspace / "runs" / "20261201-090000-aaaaaa"
    run.mkdir(parents=True)
    (run / "metrics.json").write_text(json.dumps({"run_id": run.name}))
    (decided.workspace / "runs" / "latest").write_text(run.name + "\n")
    section = _render(decided)
    assert section.status == "warn"
    html = str(section.html)
    assert 'data-key="mismatch-decide"' in html
    assert "<code>20261128-183008-813c31</code>" in html and f"<code>{run.name}</code>" in html
    assert "<code>valuechain decide</code>" in html


def test_full_report_includes_the_section(decided: LoadedSpec) -> None:
    page = render_report(decided).path.read_text()
    assert 'id="decide"' in page and "Decision policy and value" in page
    assert "This section could not be rendered" not in page
    assert "<script" not in page
