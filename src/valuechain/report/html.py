"""``valuechain report``: one self-contained HTML file from whatever stage outputs exist.

:func:`render_report` runs every registered section (see :mod:`valuechain.report.section`),
in order, and writes the page atomically. Section modules are found by name: every module
``valuechain.report.sections_*`` is imported before rendering, so a stage adds its section by
creating ``sections_<stage>.py`` with a function decorated by ``@register_section(order=...)``
and touches no other file.

A section that raises does not sink the report: its card shows the error and a ``fail`` dot,
and the other sections render as usual.
"""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from valuechain import __version__
from valuechain.io import write_text
from valuechain.report.section import (
    Section,
    SectionFn,
    environment,
    fragment,
    registered_sections,
)
from valuechain.spec.loader import LoadedSpec

__all__ = ["load_section_modules", "render_report", "report_sections"]

SECTION_PREFIX = "sections_"


def load_section_modules() -> list[str]:
    """Import every ``valuechain.report.sections_*`` module (registering its sections)."""
    package = importlib.import_module("valuechain.report")
    names = sorted(
        f"{package.__name__}.{info.name}"
        for info in pkgutil.iter_modules(package.__path__)
        if info.name.startswith(SECTION_PREFIX)
    )
    for name in names:
        importlib.import_module(name)
    return names


def report_sections() -> list[SectionFn]:
    """The section functions a report runs, in order."""
    load_section_modules()
    return registered_sections()


_ERROR = """<div class="hint error"><strong>This section could not be rendered.</strong>
<code>{{ kind }}: {{ message }}</code><br>Check the stage output it reads (or rerun that stage);
the rest of the report is unaffected.</div>"""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def _run(fn: SectionFn, loaded: LoadedSpec, workspace: Path) -> Section | None:
    try:
        return fn(loaded, workspace)
    except Exception as err:  # one broken stage output must not hide every other section
        name = getattr(fn, "__name__", "section").removesuffix("_section")
        title = name.replace("_", " ").capitalize()
        html = fragment(_ERROR, kind=type(err).__name__, message=str(err) or repr(err))
        return Section(_slug(name), title, html, "fail")


def _unique(sections: list[Section]) -> list[Section]:
    seen: set[str] = set()
    out = []
    for section in sections:
        anchor, n = section.id, 1
        while anchor in seen:
            n += 1
            anchor = f"{section.id}-{n}"
        seen.add(anchor)
        out.append(section if anchor == section.id else Section(
            anchor, section.title, section.html, section.status))
    return out


def render_report(
    loaded: LoadedSpec,
    out: Path | None = None,
    *,
    sections: Sequence[SectionFn] | None = None,
) -> Path:
    """Write the report of ``loaded`` and return its path.

    Parameters
    ----------
    loaded
        The loaded spec; stage outputs are read from ``loaded.workspace``.
    out
        The HTML file to write; default ``<workspace>/report.html``.
    sections
        Section functions to run instead of the registered ones (tests, custom reports).

    Returns
    -------
    Path
        The file written (atomically: a reader never sees half a report).

    Examples
    --------
    >>> from valuechain.spec import load_spec  # doctest: +SKIP
    >>> render_report(load_spec("examples/fraud")).name  # doctest: +SKIP
    'report.html'
    """
    workspace = loaded.workspace
    fns = report_sections() if sections is None else list(sections)
    rendered = _unique([s for fn in fns if (s := _run(fn, loaded, workspace)) is not None])
    project = loaded.spec.project
    page = environment().get_template("report.html").render(
        project=project,
        generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        spec_path=str(loaded.path),
        spec_hash=loaded.hash,
        workspace=str(workspace),
        version=__version__,
        sections=rendered,
        missing=sum(s.status == "missing" for s in rendered),
    )
    path = out if out is not None else workspace / "report.html"
    write_text(path, page)
    return path
