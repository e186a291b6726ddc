"""The terminal for the people who act on it: help, usage mistakes, tables, policy in words,
the seed reused after the demo, and the model card (issue 14, item 4 and 5)."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from valuechain import cli
from valuechain.cli import app
from valuechain.policy import ThreeBand, describe

from .conftest import ROOT, small_fraud_project

INTERVAL = re.compile(r"\d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\]")


def _invoke(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(app, list(args), env={"COLUMNS": "120"})
    return result.exit_code, result.output


def test_help_shows_choices_examples_and_no_bool_placeholders() -> None:
    code, text = _invoke("decide", "--help")
    assert code == 0
    assert "three_band|threshold|top_n" in text and "expected|realised" in text
    assert "Examples:" in text
    for command in ("build", "train", "decide", "audit"):
        code, text = _invoke(command, "--help")
        assert code == 0 and "<bool>" not in text, command
    code, text = _invoke("train", "--help")
    assert "prior,rules,logistic,lightgbm" in text and "Examples:" in text
    code, text = _invoke("score", "--help")
    assert code == 0 and "all|flagged|none" in text and "<bool>" not in text


@pytest.mark.parametrize("args", [
    ("decide", "--kind", "bands"),
    ("decide", "--objective", "profit"),
    ("train", "--candidates", "forest"),
    ("train", "--seed", "seven"),
    ("decide", "--no-such-flag"),
])
def test_a_flag_mistake_is_a_usage_mistake_exit_2(args: tuple[str, ...], tmp_path: Path
                                                  ) -> None:
    shutil.copy(ROOT / "examples" / "fraud" / "valuechain.yaml", tmp_path / "valuechain.yaml")
    code, text = _invoke(*args, "--spec", str(tmp_path))
    assert code == 2, text
    assert "Usage mistake" in text and "Traceback" not in text
    assert not text.lstrip().startswith("SpecError")


def test_a_flag_mistake_with_json_stays_machine_readable(tmp_path: Path) -> None:
    shutil.copy(ROOT / "examples" / "fraud" / "valuechain.yaml", tmp_path / "valuechain.yaml")
    result = CliRunner().invoke(app, ["train", "--spec", str(tmp_path), "--candidates",
                                      "forest", "--json"])
    assert result.exit_code == 2
    out = json.loads(result.output)
    assert out["type"] == "ModelError" and "`--candidates` 'forest'" in out["error"]


def test_describe_names_every_band_and_the_capacity() -> None:
    text = describe(ThreeBand(review_at=0.18, decline_at=0.62), 150, overflow="approve")
    assert text == ("Policy: decline when the score is 0.62 or above; send 0.18–0.62 to "
                    "review (at most 150 a day, the rest approved); approve the rest.")
    # nothing reviewed: a two-band policy says so without a review band
    assert describe(ThreeBand(review_at=0.5, decline_at=0.5)) == (
        "Policy: decline when the score is 0.5 or above; approve the rest.")
    weekly = describe({"version": 1, "kind": "three_band", "review_at": 0.1,
                       "decline_at": 0.9, "metadata": {"capacity": 40,
                                                       "overflow": "decline"}}, per="7d")
    assert "(at most 40 a week, the rest declined)" in weekly


@pytest.fixture(scope="module")
def small_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """examples/fraud over a 40k-transaction world, trained once with seed 7 (as the demo)."""
    project = small_fraud_project(tmp_path_factory.mktemp("terminal"), min_positives=5,
                                  rows=40_000, seed=5)
    code, text = _invoke("train", "--spec", str(project), "--seed", "7", "--candidates",
                         "prior,rules,logistic")
    assert code == 0, text
    return project


def test_train_table_intervals_on_one_line_with_human_names(small_project: Path,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    monkeypatch.setattr(cli.console, "width", 120)
    code, text = _invoke("train", "--spec", str(small_project), "--candidates",
                         "prior,rules,logistic")
    assert code == 0, text
    assert "ROC AUC" in text and "precision" in text and "roc_auc" not in text
    rows = [line for line in text.splitlines() if "today's rule" in line and "│" in line]
    assert rows and len(INTERVAL.findall(rows[0])) == 4, text  # no wrapped interval
    assert "*" in text and "(chosen)" in text


def test_train_reuses_the_recorded_seed_and_writes_a_model_card(small_project: Path) -> None:
    code, text = _invoke("train", "--spec", str(small_project), "--candidates",
                         "prior,rules,logistic", "--json")
    assert code == 0, text
    run = json.loads(text)
    assert run["seed"] == 7  # the first run's seed, not 0: the demo's numbers reproduce
    card = (Path(run["run_dir"]) / "model_card.md").read_text()
    for heading in ("# Model card", "## Intended use", "## Data", "## Metrics on test",
                    "## Calibration", "## Known limitations", "## Owners"):
        assert heading in card
    assert "For each card payment at checkout" in card and "Head of Payments" in card
    assert INTERVAL.search(card)
    explicit = json.loads(_invoke("train", "--spec", str(small_project), "--candidates",
                                  "prior,rules", "--seed", "3", "--json")[1])
    assert explicit["seed"] == 3


def test_decide_starts_with_the_policy_in_words(small_project: Path) -> None:
    code, text = _invoke("decide", "--spec", str(small_project))
    assert code == 0, text
    first = next(line for line in text.splitlines() if line.strip())
    assert first.startswith("Policy: ") and "{" not in first
    assert "at most 150 a day, the rest approved" in text
