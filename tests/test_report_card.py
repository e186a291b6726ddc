"""The "Model card" report section renders the run's ``model_card.md``, escaped."""

from __future__ import annotations

from pathlib import Path

from tests.test_report_train import EVIL, _metrics, _spec, _write
from valuechain.report import Section
from valuechain.report.sections_card import card_section
from valuechain.spec import LoadedSpec
from valuechain.train.card import CARD_FILE


def _card(loaded: LoadedSpec) -> Section:
    section = card_section(loaded, loaded.workspace)
    assert section is not None
    return section


def test_the_stored_card_is_rendered_with_tables_and_escaped(tmp_path: Path) -> None:
    loaded = _spec(tmp_path / "p")
    run = _write(loaded.workspace, _metrics(loaded.hash))
    (run / CARD_FILE).write_text(
        "# Model card: run r1\n\n## Intended use\n\n- Decision: " + EVIL + "\n\n"
        "| candidate | test AUC |\n|---|---|\n| lightgbm | 0.871 |\n", encoding="utf-8")
    section = _card(loaded)
    html = str(section.html)
    assert section.status == "ok" and section.id == "model-card"
    assert "<h2>Intended use</h2>" in html
    assert '<table class="data">' in html and "<td>0.871</td>" in html
    assert EVIL not in html and "&lt;script&gt;" in html
    assert "Model card: run r1" not in html  # the section title already says it


def test_runs_without_a_stored_card_get_one_composed(tmp_path: Path) -> None:
    loaded: LoadedSpec = _spec(tmp_path / "p")
    _write(loaded.workspace, _metrics(loaded.hash))
    html = str(_card(loaded).html)
    assert "Intended use" in html and "<table" in html


def test_no_run_says_which_command_adds_it(tmp_path: Path) -> None:
    loaded = _spec(tmp_path / "p")
    section = _card(loaded)
    assert section.status == "missing" and "valuechain train" in str(section.html)
