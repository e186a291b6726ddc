"""The "Evaluation" report section, rendered from a hand-written ``runs/<id>/metrics.json``."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from valuechain.errors import DataError
from valuechain.report import Section, render_report
from valuechain.report.sections_train import MARKED_POINTS, evaluation_section
from valuechain.report.svg import Line, axis_ticks, period_chart, xy_chart
from valuechain.spec import LoadedSpec, load_spec

EVIL = "<script>alert('x')</script>"
METRICS = ("roc_auc", "average_precision", "brier", "log_loss", "ece", "precision_at_capacity",
           "recall_at_capacity", "expected_cost", "card_precision_at_k")


def _spec(root: Path) -> LoadedSpec:
    root.mkdir(parents=True, exist_ok=True)
    spec: dict[str, Any] = {
        "project": {"name": "tiny-train"},
        "decision": {"statement": "s", "owner": "o", "moment": "m", "actions": ["a", "b"]},
        "decision_points": {"source": "orders"},
        "sources": {"orders": {"path": "orders.parquet", "keys": ["order_id"],
                               "event_time": "ts"}},
        "label": {"column": "y", "horizon": "7d"},
        "features": [{"name": "amount", "expr": "amount"}],
    }
    (root / "valuechain.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return load_spec(root)


def _scores(base: float) -> dict[str, float]:
    out: dict[str, float] = {}
    for i, metric in enumerate(METRICS):
        value = base + i / 1000
        out |= {metric: value, f"{metric}_low": value - 0.02, f"{metric}_high": value + 0.02}
    return out


def _bins(shift: float) -> list[dict[str, float]]:
    return [{"bin": i, "count": 100 * (5 - i), "mean_score": i / 10 + 0.05,
             "positive_rate": min(1.0, i / 10 + 0.05 + shift)} for i in range(5)]


def _metrics(spec_hash: str, run_id: str = "r1") -> dict[str, Any]:
    names = {"prior": 0.5, "rules": 0.61, "logistic": 0.7, "lightgbm": 0.81, f"odd {EVIL}": 0.2}
    periods = ["2025-03-03", "2025-03-10", "2025-03-17", "2025-03-24"]
    return {
        "run_id": run_id, "created_at": "2025-05-01T12:30:00+00:00", "spec_hash": spec_hash,
        "seed": 7, "headline_metric": "average_precision", "best_candidate": "lightgbm",
        "frame": {"path": "build/frame.parquet", "fingerprint": "c" * 32, "cache_key": "k1",
                  "rows": {"mature": 201234}},
        "features": {"numeric": ["amount"], "categorical": []},
        "splits": {
            "train": {"start": "2025-01-01T00:00:00", "end": "2025-02-01T00:00:00",
                      "rows": 120000, "positives": 960},
            "validation": {"start": "2025-02-08", "end": "2025-03-01", "rows": 40000,
                           "positives": 300},
            "test": {"start": "2025-03-03", "end": "2025-03-31", "rows": 41234,
                     "positives": 321},
            "embargo": "60d",
            "periods": [{"name": "train", "start": "2025-01-01", "end": "2025-02-01"}],
        },
        "candidates": {
            name: {"validation": _scores(base), "test": _scores(base - 0.01),
                   "calibration": {"method": "isotonic", "ece_before": 0.0412,
                                   "ece_after": 0.0061},
                   "describe": {"candidate": name, "n_train": 120000,
                                "expression": "amount > 500" if name == "rules" else "",
                                "params": {"learning_rate": 0.05}}}
            for name, base in names.items()
        },
        "verdicts": [
            {"candidate": "lightgbm", "baseline": "prior", "metric": "average_precision",
             "difference": {"value": 0.31, "low": 0.27, "high": 0.35}, "verdict": "beats",
             "intervals_overlap": False},
            {"candidate": "lightgbm", "baseline": "rules", "metric": "average_precision",
             "difference": {"value": 0.2, "low": 0.15, "high": 0.24}, "verdict": "beats",
             "intervals_overlap": False},
            {"candidate": "logistic", "baseline": "rules", "metric": "average_precision",
             "difference": {"value": 0.01, "low": -0.02, "high": 0.03}, "verdict": "ties",
             "intervals_overlap": True},
            {"candidate": f"odd {EVIL}", "baseline": "prior", "metric": "average_precision",
             "difference": {"value": -0.3, "low": -0.35, "high": -0.25}, "verdict": "loses",
             "intervals_overlap": False},
        ],
        "random_vs_time": {"candidate": "lightgbm", "auc_time_split": 0.8123,
                           "auc_random_split": 0.9345, "gap": 0.1222,
                           "explanation": f"Cards repeat across days; trust `time` {EVIL}"},
        "per_period": {
            name: [{"period": p, "rows": 10000, "positives": 80, "roc_auc": base + j / 100,
                    "average_precision": base - 0.1 + j / 100,
                    "precision_at_capacity": base / 2}
                   for j, p in enumerate(periods)]
            for name, base in names.items() if name != f"odd {EVIL}"
        },
        "reliability": {"lightgbm": {"before": _bins(0.1), "after": _bins(0.0)}},
        "curves": {
            name: {"roc": {"fpr": [i / 100 for i in range(101)],
                           "tpr": [min(1.0, (i / 100) ** (1 - base / 2)) for i in range(101)]},
                   "pr": {"recall": [i / 100 for i in range(101)],
                          "precision": [max(0.01, base - i / 200) for i in range(101)]}}
            for name, base in names.items()
        },
        "backtest": {
            "folds": [{"fold": k, "train_start": "2025-01-01", "train_end": f"2025-0{k + 1}-01",
                       "test_start": f"2025-0{k + 1}-08", "test_end": f"2025-0{k + 2}-01",
                       "candidates": {"prior": {"roc_auc": 0.5, "average_precision": 0.008},
                                      "lightgbm": {"roc_auc": 0.9 + k / 100,
                                                   "average_precision": 0.6 + k / 100}}}
                      for k in (1, 2, 3)],
            "summary": {"prior": {"roc_auc_mean": 0.5, "roc_auc_std": 0.0,
                                  "average_precision_mean": 0.008,
                                  "average_precision_std": 0.001},
                        "lightgbm": {"roc_auc_mean": 0.92, "roc_auc_std": 0.0082,
                                     "average_precision_mean": 0.62,
                                     "average_precision_std": 0.0082}},
        },
    }


def _write(workspace: Path, payload: dict[str, Any], run_id: str = "r1",
           latest: bool = True) -> Path:
    run = workspace / "runs" / run_id
    run.mkdir(parents=True, exist_ok=True)
    (run / "metrics.json").write_text(json.dumps(payload))
    if latest:
        (workspace / "runs" / "latest").write_text(run_id + "\n")
    return run


def _render(loaded: LoadedSpec) -> Section:
    section = evaluation_section(loaded, loaded.workspace)
    assert section is not None
    return section


@pytest.fixture()
def trained(tmp_path: Path) -> LoadedSpec:
    loaded = _spec(tmp_path / "p")
    _write(loaded.workspace, _metrics(loaded.hash))
    return loaded


def test_section_shows_candidates_metrics_and_intervals(trained: LoadedSpec) -> None:
    section = _render(trained)
    html = str(section.html)
    assert section.id == "evaluation" and section.title == "Evaluation"
    assert section.status == "ok"
    for name in ("prior", "rules", "logistic", "lightgbm"):
        assert f">{name}" in html
    assert "Candidates on the validation period" in html
    assert "Candidates on the test period" in html
    assert "0.810 [0.790, 0.830]" in html  # lightgbm ROC AUC on validation
    assert "0.800 [0.780, 0.820]" in html  # ... and on test
    for label in ("ROC AUC", "Average precision", "Brier score", "Log loss", "ECE",
                  "Precision at capacity", "Recall at capacity", "Cost per decision, decline at 0.5",
                  "Card precision at k"):
        assert label in html
    assert 'best model\n<strong data-key="train-best">lightgbm</strong>' in html
    assert 'data-key="train-best-test-auc" data-value="0.8">0.800<' in html
    assert 'data-key="train-best-test-ap" data-value="0.801">0.801<' in html
    assert 'data-key="train-run-id">r1<' in html and "seed 7" in html and "2025-05-01 12:30:00" in html


def test_periods_and_embargo(trained: LoadedSpec) -> None:
    html = str(_render(trained).html)
    assert "41,234" in html and "321" in html and "0.78%" in html  # test rows, positives, rate
    assert "2025-01-01" in html and "2025-01-01T" not in html
    assert "Embargo of <strong>60d</strong>" in html


def test_verdict_badges_and_differences(trained: LoadedSpec) -> None:
    html = str(_render(trained).html)
    assert html.count('class="badge pass">beats<') == 2
    assert html.count('class="badge na">ties<') == 1
    assert html.count('class="badge fail">loses<') == 1
    assert "+0.310 [+0.270, +0.350]" in html and "-0.300 [-0.350, -0.250]" in html
    assert 'class="badge pass">beats every baseline<' in html  # lightgbm's summary


def test_random_vs_time_gap_is_shown_with_its_explanation(trained: LoadedSpec) -> None:
    html = str(_render(trained).html)
    assert "0.812" in html and "0.934" in html and "+0.122" in html
    assert "Cards repeat across days; trust <code>time</code>" in html
    assert 'tile accent"><div class="value">+0.122' in html
    assert html.index("Random split vs split by time") < html.index("Candidates on the")


def test_curves_reliability_periods_and_backtest_are_charted(trained: LoadedSpec) -> None:
    html = str(_render(trained).html)
    svgs = re.findall(r"<svg.*?</svg>", html, flags=re.S)
    assert len(svgs) == 2 + 1 + 3  # ROC, PR, reliability, three metrics per period
    roc = next(s for s in svgs if "ROC curves" in s)
    assert roc.count("<polyline") == 5 and 'class="diagonal"' in roc and ">chance<" in roc
    assert "lightgbm" in roc and 'stroke-dasharray="6 4"' in roc  # baselines dashed
    reliability = next(s for s in svgs if "Reliability of lightgbm" in s)
    assert reliability.count("<circle") == 10 + 2  # 5 bins before and after, 2 in the legend
    assert "perfectly calibrated" in reliability
    over_time = next(s for s in svgs if "Average precision per period" in s)
    assert over_time.count("<polyline") == 4 and "10 Mar 25" in over_time
    assert "isotonic" in html and "0.041" in html and "0.0061" in html
    assert 'class="badge pass">improved<' in html
    assert "Rolling-origin backtest" in html and "0.920 ± 0.0082" in html
    assert "<script" not in html and "javascript" not in html.lower()


def test_user_text_is_escaped(trained: LoadedSpec) -> None:
    html = str(_render(trained).html)
    assert "<script" not in html
    assert "&lt;script&gt;" in html
    assert "amount &gt; 500" in html  # the rules expression among the candidate facts


def test_no_run_says_which_command_adds_it(tmp_path: Path) -> None:
    loaded = _spec(tmp_path / "p")
    section = _render(loaded)
    assert section.status == "missing"
    assert "<code>valuechain train</code>" in str(section.html)
    (loaded.workspace / "runs").mkdir(parents=True)
    assert _render(loaded).status == "missing"


def test_the_run_named_by_latest_is_shown(tmp_path: Path) -> None:
    loaded = _spec(tmp_path / "p")
    old = _write(loaded.workspace, _metrics(loaded.hash, "old"), "old", latest=False)
    _write(loaded.workspace, _metrics(loaded.hash, "new"), "new", latest=False)
    os.utime(old / "metrics.json", (1_000_000, 1_000_000))
    (loaded.workspace / "runs" / "latest").write_text("old\n")
    html = str(_render(loaded).html)
    assert 'data-key="train-run-id">old<' in html  # the pointer wins over the newer file
    assert "runs/old/metrics.json" in html  # and the origin line names the file


def test_renamed_or_missing_keys_fail_instead_of_rendering_dashes(tmp_path: Path) -> None:
    loaded = _spec(tmp_path / "p")
    payload = _metrics(loaded.hash)
    test = payload["candidates"]["lightgbm"]["test"]
    test["auc"] = test.pop("roc_auc")
    _write(loaded.workspace, payload)
    with pytest.raises(DataError, match=r"runs/r1/metrics.json: key "
                                        r"`candidates.lightgbm.test.roc_auc` is missing"):
        _render(loaded)  # the typed result keeps metrics as a mapping: the report checks them
    for key in ("best_candidate", "random_vs_time", "splits", "curves", "seed"):
        payload = _metrics(loaded.hash)
        del payload[key]
        _write(loaded.workspace, payload)
        with pytest.raises(DataError, match=rf"metrics.json: the training run is damaged \(not a "
                                            rf"complete training run: missing: {key}\)"
                                            r".*valuechain train"):
            _render(loaded)
    payload = _metrics(loaded.hash)
    del payload["splits"]["test"]["positives"]
    _write(loaded.workspace, payload)
    with pytest.raises(DataError, match=r"`splits.test.positives` is missing"):
        _render(loaded)
    payload = _metrics(loaded.hash)
    payload["best_candidate"] = "gone"
    _write(loaded.workspace, payload)
    with pytest.raises(DataError, match="'gone', which is not one of its candidates"):
        _render(loaded)
    result = render_report(loaded)
    assert [s.id for s in result.failed] == ["evaluation"] and not result.ok


def test_undefined_metrics_and_absent_backtest_render_as_recorded(tmp_path: Path) -> None:
    loaded = _spec(tmp_path / "p")
    payload = _metrics(loaded.hash)
    prior = payload["candidates"]["prior"]["test"]
    prior |= {"roc_auc": None, "roc_auc_low": None, "roc_auc_high": None}  # NaN: null in JSON
    payload["backtest"] = None
    _write(loaded.workspace, payload)
    html = str(_render(loaded).html)
    assert 'data-key="test-prior-roc_auc" data-value="">–</td>' in html
    assert "Rolling-origin backtest" not in html


def test_stale_run_and_a_baseline_not_beaten_warn(tmp_path: Path) -> None:
    loaded = _spec(tmp_path / "p")
    payload = _metrics("0123456789abcdef")
    payload["verdicts"][1]["verdict"] = "ties"
    _write(loaded.workspace, payload)
    section = _render(loaded)
    assert section.status == "warn"
    html = str(section.html)
    assert 'data-key="mismatch-train"' in html and "0123456789abcdef" in html
    assert "<code>valuechain train</code>" in html
    assert "beats 1 of 2 comparisons" in html


def test_chart_helpers() -> None:
    assert axis_ticks(0.0, 1.0) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    dense = xy_chart([Line("m", [i / 10_000 for i in range(10_001)],
                           [(i / 10_000) ** 0.3 for i in range(10_001)])], "t", "x", "y")
    points = re.search(r'points="([^"]+)"', str(dense))
    assert points is not None and len(points.group(1).split()) < 1500  # thinned to the pixels
    gap = str(xy_chart([Line("m", [0, 0.5, 1], [0.1, None, 0.9])], "t", "x", "y"))
    assert gap.count("<polyline") == 0  # a None breaks the line; single points draw nothing
    from datetime import date
    one = str(period_chart([date(2025, 1, 6)], [Line("m", [], [0.8])], "t", "AUC"))
    assert "<circle" in one and "06 Jan 25" in one


def test_full_report_includes_the_section(trained: LoadedSpec) -> None:
    page = render_report(trained).path.read_text()
    assert 'id="evaluation"' in page and "Evaluation" in page
    assert "lightgbm" in page and "<svg" in page and "<script" not in page
    assert "This section could not be rendered" not in page


def test_curves_are_drawn_as_recorded_a_constant_score_is_the_diagonal(tmp_path: Path) -> None:
    """The report draws exactly the points the run recorded: the ``prior`` baseline's tied
    scores give a two-point ROC (the chance diagonal) and a single PR point, drawn as a dot;
    a model's dense curve is a thinned line without markers."""
    loaded = _spec(tmp_path / "p")
    payload = _metrics(loaded.hash)
    payload["curves"]["prior"] = {"roc": {"fpr": [0.0, 1.0], "tpr": [0.0, 1.0]},
                                  "pr": {"recall": [1.0], "precision": [0.0078]}}
    payload["curves"]["rules"] = {"roc": {"fpr": [0.0, 0.02, 1.0], "tpr": [0.0, 0.41, 1.0]},
                                  "pr": {"recall": [0.41, 1.0], "precision": [0.14, 0.0078]}}
    _write(loaded.workspace, payload)
    html = str(_render(loaded).html)
    svgs = re.findall(r"<svg.*?</svg>", html, flags=re.S)
    roc = next(s for s in svgs if "ROC curves" in s)
    pr = next(s for s in svgs if "Precision-recall curves" in s)

    def polyline(svg: str, name: str) -> list[tuple[float, float]]:
        match = re.search(rf'<polyline points="([^"]+)"[^>]*><title>{name}</title>', svg)
        assert match, name
        return [tuple(map(float, p.split(","))) for p in match.group(1).split()]  # type: ignore

    diagonal = re.search(r'class="diagonal" x1="([\d.]+)" y1="([\d.]+)" x2="([\d.]+)" '
                         r'y2="([\d.]+)"', roc)
    assert diagonal is not None
    x1, y1, x2, y2 = map(float, diagonal.groups())
    assert polyline(roc, "prior") == [(x1, y1), (x2, y2)]  # exactly the diagonal, no staircase
    assert len(polyline(roc, "rules")) == 3 and len(polyline(pr, "rules")) == 2
    assert len(polyline(roc, "lightgbm")) > MARKED_POINTS
    prior_pr = re.findall(r'<circle [^>]*stroke="([^"]+)"[^>]*><title>prior</title>', pr)
    assert len(prior_pr) == 1  # the one operating point of a constant score, as a dot
    assert not re.search(r'<polyline [^>]*><title>prior</title>', pr)
    assert not re.search(r'<circle [^>]*><title>lightgbm</title>', roc)  # dense: line only
    payload["curves"]["prior"]["roc"]["fpr"] = [0.0, None]
    _write(loaded.workspace, payload)
    with pytest.raises(DataError, match=r"curves\.prior\.roc"):
        _render(loaded)


def test_tied_scores_from_training_draw_as_few_points(tmp_path: Path) -> None:
    """Curves as train/scoring.py records them: a constant score (``prior``) is the diagonal
    and one PR point; a two-valued rule is a three-point ROC, as scikit-learn draws them."""
    import numpy as np
    from sklearn.metrics import roc_curve

    from valuechain.train.scoring import curves

    rng = np.random.default_rng(0)
    labels = (rng.random(2000) < 0.05).astype(float)
    rule = np.where(rng.random(2000) < 0.3 + 0.4 * labels, 1.0, 0.0)
    loaded = _spec(tmp_path / "p")
    payload = _metrics(loaded.hash)
    payload["curves"]["prior"] = curves(np.full(2000, 0.05), labels)
    payload["curves"]["rules"] = curves(rule, labels)
    _write(loaded.workspace, payload)
    roc = next(s for s in re.findall(r"<svg.*?</svg>", str(_render(loaded).html), flags=re.S)
               if "ROC curves" in s)
    prior = re.search(r'<polyline points="([^"]+)"[^>]*><title>prior</title>', roc)
    rules = re.search(r'<polyline points="([^"]+)"[^>]*><title>rules</title>', roc)
    assert prior is not None and len(prior.group(1).split()) == 2
    fpr, _, _ = roc_curve(labels, rule, drop_intermediate=False)
    assert rules is not None and len(rules.group(1).split()) == len(fpr) == 3


def test_gap_is_judged_by_the_threshold_the_run_recorded(tmp_path: Path) -> None:
    loaded = _spec(tmp_path / "p")
    payload = _metrics(loaded.hash)
    payload["random_vs_time"]["threshold"] = 0.2  # the run's rule: a gap of 0.122 is fine
    _write(loaded.workspace, payload)
    html = str(_render(loaded).html)
    assert "+0.122" in html and 'tile accent"><div class="value">+0.122' not in html
