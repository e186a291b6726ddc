"""``valuechain report``: one self-contained HTML file from whatever stage outputs exist.

:func:`render_report` runs every registered section (see :mod:`valuechain.report.section`),
in order, and writes the page atomically. Section modules are found by name: every module
``valuechain.report.sections_*`` is imported before rendering, so a stage adds its section by
creating ``sections_<stage>.py`` with a function decorated by ``@register_section(order=...)``
and touches no other file.

A section that raises does not hide the others: its card shows the error, its dot is red
and marked *error*, a banner above the contents names it, and the returned
:class:`ReportResult` lists it in :attr:`~ReportResult.failed`, so ``valuechain report`` (and
any caller) can fail loudly while the reader still gets every section that did render. Stage
outputs made from something other than what they should have been made from (a run trained on
another frame, a policy priced on another run) are listed in a second banner and in
:attr:`ReportResult.mismatches` (see :mod:`valuechain.report.provenance`).
"""

from __future__ import annotations

import importlib
import pkgutil
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from valuechain import __version__
from valuechain.errors import DataError
from valuechain.io import write_text
from valuechain.report.fmt import local_path
from valuechain.report.provenance import Mismatch, provenance
from valuechain.report.section import (
    Section,
    SectionFn,
    Status,
    environment,
    fragment,
    registered_sections,
    section_identity,
)
from valuechain.spec.loader import LoadedSpec

__all__ = ["ReportResult", "SectionResult", "load_section_modules", "render_report",
           "report_sections"]

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


@dataclass(frozen=True)
class SectionResult:
    """How one section of a report came out.

    ``status`` is the section's own (``ok``, ``warn``, ``fail``, ``missing``), or ``error``
    when it raised; ``error`` is then ``"<ExceptionType>: <message>"``.
    """

    id: str
    title: str
    status: Status
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "status": self.status, "error": self.error}


@dataclass(frozen=True)
class ReportResult:
    """What :func:`render_report` wrote: the file, every section's outcome, the mismatches.

    A ``ReportResult`` stands for the file it wrote: ``str(result)`` is its path and it is
    ``os.PathLike``, so ``open(result)`` and ``Path(result)`` work.

    Examples
    --------
    >>> result = ReportResult(Path("report.html"), (
    ...     SectionResult("lineage", "Lineage", "ok"),
    ...     SectionResult("evaluation", "Evaluation", "error", "DataError: key missing")), (), 0.1)
    >>> result.ok, [s.id for s in result.failed], str(result)
    (False, ['evaluation'], 'report.html')
    """

    path: Path
    sections: tuple[SectionResult, ...]
    mismatches: tuple[Mismatch, ...]
    seconds: float

    @property
    def failed(self) -> tuple[SectionResult, ...]:
        """The sections that could not be rendered (status ``error``)."""
        return tuple(s for s in self.sections if s.status == "error")

    @property
    def ok(self) -> bool:
        """Every section rendered (a stage's own ``fail``, e.g. a critical leak, is fine)."""
        return not self.failed

    def section(self, id: str) -> SectionResult:
        """The outcome of the section with anchor ``id`` (``KeyError`` if there is none)."""
        for section in self.sections:
            if section.id == id:
                return section
        raise KeyError(id)

    def to_json(self) -> dict[str, Any]:
        return {"report": str(self.path), "ok": self.ok, "seconds": round(self.seconds, 3),
                "failed": [s.id for s in self.failed],
                "sections": [s.to_json() for s in self.sections],
                "mismatches": [m.to_json() for m in self.mismatches]}

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)


_ERROR = """<div class="hint error" data-key="section-error">
<strong>This section could not be rendered.</strong> <code>{{ kind }}: {{ message }}</code><br>The stage output it reads is
damaged or was written by another version of valuechain: run the stage again. The report is
marked as failed; the other sections are unaffected.</div>"""


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"


def _run(fn: SectionFn, loaded: LoadedSpec, workspace: Path
         ) -> tuple[Section | None, str | None]:
    try:
        return fn(loaded, workspace), None
    except Exception as err:  # one broken stage output must not hide every other section
        name = getattr(fn, "__name__", "section").removesuffix("_section")
        anchor, title = section_identity(fn)
        name, title = anchor or name, title or name.replace("_", " ").capitalize()
        message = str(err) or repr(err)
        html = fragment(_ERROR, kind=type(err).__name__, message=message)
        return Section(_slug(name), title, html, "error"), f"{type(err).__name__}: {message}"


def _unique(sections: list[tuple[Section, str | None]]) -> list[tuple[Section, str | None]]:
    seen: set[str] = set()
    out = []
    for section, error in sections:
        anchor, n = section.id, 1
        while anchor in seen:
            n += 1
            anchor = f"{section.id}-{n}"
        seen.add(anchor)
        out.append((section if anchor == section.id else Section(
            anchor, section.title, section.html, section.status), error))
    return out


def render_report(
    loaded: LoadedSpec,
    out: Path | None = None,
    *,
    sections: Sequence[SectionFn] | None = None,
) -> ReportResult:
    """Write the report of ``loaded``; say which sections rendered and what does not match.

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
    ReportResult
        The file written (atomically: a reader never sees half a report), every section's
        status, the sections that failed (raised) and the provenance mismatches. The file is
        written even when sections failed: their cards show the error.

    A damaged or incomplete stage output does not raise here: the section reading it fails
    (``result.failed``), and so does the Provenance section when it cannot read the file.

    Examples
    --------
    >>> from valuechain.spec import load_spec  # doctest: +SKIP
    >>> result = render_report(load_spec("examples/fraud"))  # doctest: +SKIP
    >>> result.path.name, result.ok  # doctest: +SKIP
    ('report.html', True)
    """
    started = time.perf_counter()
    workspace = loaded.workspace
    fns = report_sections() if sections is None else list(sections)
    outcomes = _unique([(s, error) for fn in fns
                        for s, error in [_run(fn, loaded, workspace)] if s is not None])
    rendered = [s for s, _ in outcomes]
    try:
        mismatches = provenance(workspace, loaded.hash).mismatches
    except DataError:  # the section that reads the damaged file shows the error
        mismatches = ()
    project = loaded.spec.project
    page = environment().get_template("report.html").render(
        project=project,
        generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        spec_path=local_path(loaded.path, loaded.root),
        spec_hash=loaded.hash,
        workspace=local_path(workspace, loaded.root),
        version=__version__,
        sections=rendered,
        missing=sum(s.status == "missing" for s in rendered),
        errors=[s for s in rendered if s.status == "error"],
        mismatches=mismatches,
    )
    path = out if out is not None else workspace / "report.html"
    write_text(path, page)
    return ReportResult(
        path, tuple(SectionResult(s.id, s.title, s.status, error) for s, error in outcomes),
        tuple(mismatches), time.perf_counter() - started)
