"""Report section: the latest run's model card, the same text as ``runs/<id>/model_card.md``.

The card is produced once, by :func:`valuechain.train.card.model_card`; this section renders
that Markdown (CommonMark plus tables, raw HTML disabled, so text from the spec stays
escaped) instead of writing a second version of it.

>>> html = render_markdown("# Card\\n\\n| a | b |\\n|---|---|\\n| <x> | 2 |")
>>> "<table" in html and "&lt;x&gt;" in html
True
"""

from __future__ import annotations

from pathlib import Path

from markdown_it import MarkdownIt
from markupsafe import Markup

from valuechain.report.section import Section, fragment, register_section, unavailable
from valuechain.report.sections_train import read_run
from valuechain.spec.loader import LoadedSpec
from valuechain.train.card import CARD_FILE, model_card
from valuechain.train.result import TrainResult

__all__ = ["card_section", "render_markdown"]

TITLE = "Model card"

_MARKDOWN = MarkdownIt("commonmark", {"html": False}).enable("table")

_CARD = """\
<p class="muted small">Run <code>{{ run_id }}</code> · the text of
<code>{{ path }}</code>, written by <code>valuechain train</code>.</p>
<div class="model-card">{{ body }}</div>
"""


def render_markdown(text: str) -> Markup:
    """Markdown as safe HTML: tables get the report's ``data`` class, raw HTML is escaped."""
    html = _MARKDOWN.render(text).replace("<table>", '<div class="scroll"><table class="data">')
    return Markup(html.replace("</table>", "</table></div>"))


def _card_text(run_dir: Path, loaded: LoadedSpec) -> str:
    stored = run_dir / CARD_FILE
    try:
        return stored.read_text(encoding="utf-8")
    except OSError:  # runs trained before cards existed: compose it from the run
        return model_card(TrainResult.load(run_dir, root=loaded.root), loaded)


@register_section(order=72, id="model-card", title=TITLE)
def card_section(loaded: LoadedSpec, workspace: Path) -> Section:
    """The latest run's model card (intended use, data window, metrics, limitations, owners)."""
    found = read_run(workspace, loaded.root)
    if found is None:
        return unavailable("model-card", TITLE, "valuechain train",
                           "No model has been trained yet, so there is no model card.")
    run_dir, _ = found
    text = _card_text(run_dir, loaded)
    # the card's own "# Model card: run …" heading repeats the section title
    body = "\n".join(text.splitlines()[1:]) if text.startswith("# ") else text
    html = fragment(_CARD, run_id=run_dir.name, path=f"runs/{run_dir.name}/{CARD_FILE}",
                    body=render_markdown(body))
    return Section("model-card", TITLE, html, "ok")
