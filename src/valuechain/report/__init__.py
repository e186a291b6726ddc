"""HTML reports: one self-contained file (inline CSS and SVG, no scripts, works offline).

:func:`render_report` writes ``<workspace>/report.html`` from whatever stage outputs exist;
sections whose stage has not run say which command adds them.

Adding a section (how a stage plugs in)
---------------------------------------
Create ``src/valuechain/report/sections_<stage>.py``; it is discovered and imported on every
render. In it, decorate a function ``(loaded, workspace) -> Section | None``::

    from valuechain.report.provenance import origin_note
    from valuechain.report.record import Record
    from valuechain.report.section import (
        Section, fragment, read_json, register_section, unavailable)

    @register_section(order=90, id="monitor", title="Monitoring")  # audit 60, train 70,
    def monitor_section(loaded, workspace):                         # decide 80, package 85
        raw = read_json(workspace / "monitor.json")
        if raw is None:
            return unavailable("monitor", "Monitoring", "valuechain monitor")
        report = Record(raw, "monitor.json", "valuechain monitor")
        html = fragment("<p data-key='monitor-alerts'>{{ n }} alerts</p>",
                        n=len(report.sequence("alerts")))   # a missing key raises
        return Section("monitor", "Monitoring", html, "ok")

Prefer a stage's typed result (``TrainResult.load``, ``DecideResult.load``) when it has one,
and add the stage to :mod:`valuechain.report.provenance` so the card says what it was made
from (:func:`~valuechain.report.provenance.origin_note`). Return ``None`` when the section does not apply to the project at all. Build the HTML with
:func:`~valuechain.report.section.fragment` (autoescaped Jinja) and the charts in
:mod:`valuechain.report.svg`; never format user text into HTML by hand. A section that raises
shows the error in its own card and does not hide the others, but the report is then marked
as failed: :func:`render_report` returns a :class:`ReportResult` whose ``failed`` lists it.
Read required keys of stage outputs strictly (:class:`~valuechain.report.record.Record`), so
a renamed key fails the section instead of rendering an en dash.
"""

from __future__ import annotations

from valuechain.report.html import ReportResult, SectionResult, render_report, report_sections
from valuechain.report.section import (
    Section,
    SectionFn,
    fragment,
    read_json,
    register_section,
    unavailable,
    unregister_section,
)

__all__ = [
    "ReportResult",
    "Section",
    "SectionFn",
    "SectionResult",
    "fragment",
    "read_json",
    "register_section",
    "render_report",
    "report_sections",
    "unavailable",
    "unregister_section",
]
