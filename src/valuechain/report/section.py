"""Report sections: the :class:`Section` record, the registry and helpers for writing one.

A section function takes the loaded spec and the workspace directory and returns a
:class:`Section` (or ``None`` when the section does not apply to this project at all). It
reads the stage outputs it needs from the workspace; when they do not exist yet it returns
:func:`unavailable`, which tells the reader which command adds the section. It never raises
for a missing file.

Sections are registered with :func:`register_section` and shown in ``order`` (built-ins use
10-50; later stages take audit 60, train 70, decide 80, package 85, monitor 90, forecast 95):

>>> from pathlib import Path
>>> @register_section(order=999)
... def hello(loaded: object, workspace: Path) -> Section:
...     return Section("hello", "Hello", fragment("<p>{{ who }}</p>", who="<you>"))
>>> hello(None, Path(".")).html
Markup('<p>&lt;you&gt;</p>')
>>> unregister_section(hello)

HTML is built with :func:`fragment` (a Jinja template string rendered with autoescape) or
``markupsafe.Markup``/``escape``, so user text from the spec is always escaped.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal

from jinja2 import Environment, PackageLoader, StrictUndefined, Template
from markupsafe import Markup, escape

from valuechain.artifacts import fix_command, open_artifact, writer_of
from valuechain.report import fmt
from valuechain.spec.loader import LoadedSpec

__all__ = [
    "Section",
    "SectionFn",
    "Status",
    "badge",
    "code_spans",
    "environment",
    "fragment",
    "read_json",
    "register_section",
    "registered_sections",
    "section_identity",
    "unavailable",
    "unregister_section",
]

Status = Literal["ok", "warn", "fail", "missing", "error"]


@dataclass(frozen=True)
class Section:
    """One card of the report.

    Parameters
    ----------
    id
        Anchor id, unique in the report (lowercase, ``-`` separated).
    title
        Heading, also shown in the table of contents.
    html
        The body, already escaped (build it with :func:`fragment` or ``Markup``).
    status
        Shown as a dot in the table of contents: ``ok``, ``warn``, ``fail`` (what the stage
        found fails, e.g. a critical leak), ``missing`` (the stage output does not exist yet)
        or ``error`` (the section could not be rendered: set by the report, never returned
        by a section; :attr:`ReportResult.failed <valuechain.report.ReportResult.failed>`
        lists them).
    """

    id: str
    title: str
    html: Markup
    status: Status = "ok"


SectionFn = Callable[[LoadedSpec, Path], Section | None]


@dataclass(frozen=True)
class _Entry:
    order: float
    fn: SectionFn
    id: str | None = None
    title: str | None = None


_REGISTRY: list[_Entry] = []


def register_section(order: float, *, id: str | None = None,
                     title: str | None = None) -> Callable[[SectionFn], SectionFn]:
    """Decorator adding a section function to the report at position ``order``.

    ``id`` and ``title`` name the card when the function raises (default: from the
    function's name, ``decide_section`` -> ``decide`` / ``Decide``). Registering the same
    function twice keeps one entry (the latest order).
    """

    def decorate(fn: SectionFn) -> SectionFn:
        unregister_section(fn)
        _REGISTRY.append(_Entry(order, fn, id, title))
        return fn

    return decorate


def section_identity(fn: SectionFn) -> tuple[str | None, str | None]:
    """The ``(id, title)`` ``fn`` was registered with (``None`` when not given)."""
    entry = next((e for e in _REGISTRY if e.fn is fn), None)
    return (entry.id, entry.title) if entry is not None else (None, None)


def unregister_section(fn: SectionFn) -> None:
    """Remove ``fn`` from the registry (no error if it is not registered)."""
    _REGISTRY[:] = [entry for entry in _REGISTRY if entry.fn is not fn]


def registered_sections() -> list[SectionFn]:
    """The registered section functions in report order (ties keep registration order)."""
    return [entry.fn for entry in sorted(_REGISTRY, key=lambda entry: entry.order)]


def badge(passed: bool | None, yes: str = "pass", no: str = "fail", unknown: str = "n/a") -> Markup:
    """A coloured pass / fail / unknown pill (also the Jinja global ``badge``).

    >>> badge(False)
    Markup('<span class="badge fail">fail</span>')
    """
    kind, text = ("na", unknown) if passed is None else (("pass", yes) if passed else ("fail", no))
    return Markup('<span class="badge {}">{}</span>').format(kind, text)


def code_spans(text: str) -> Markup:
    """Escape ``text`` and show its `backticked` parts as code (also the Jinja global).

    >>> code_spans("set `lag: 7d` on <x>")
    Markup('set <code>lag: 7d</code> on &lt;x&gt;')
    >>> code_spans("an `unpaired backtick")
    Markup('an `unpaired backtick')
    """
    parts = text.split("`")
    if len(parts) % 2 == 0:  # an unpaired backtick: show the text as it is
        return escape(text)
    return Markup("").join(
        Markup("<code>{}</code>").format(part) if i % 2 else escape(part)
        for i, part in enumerate(parts))


@lru_cache(maxsize=1)
def environment() -> Environment:
    """The Jinja environment of reports: autoescape on, strict undefined, ``fmt`` filters."""
    env = Environment(
        loader=PackageLoader("valuechain.report", "templates"),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(
        thousands=fmt.fmt_int, num=fmt.fmt_num, pct=fmt.fmt_pct, duration=fmt.fmt_duration,
        seconds=fmt.fmt_seconds,
    )
    env.globals["badge"] = badge
    env.globals["code_spans"] = code_spans
    return env


@lru_cache(maxsize=256)
def _compiled(source: str) -> Template:
    return environment().from_string(source)


def fragment(source: str, **context: Any) -> Markup:
    """Render a Jinja template string with autoescape; the result is safe to embed."""
    return Markup(_compiled(source).render(**context))


_UNAVAILABLE = """<div class="hint"><strong>Not available yet.</strong> {{ reason }}
Run <code>{{ command }}</code> to add this section.</div>"""


def unavailable(id: str, title: str, command: str, reason: str = "") -> Section:
    """A section whose stage output does not exist yet, naming the command that adds it."""
    return Section(id, title, fragment(_UNAVAILABLE, command=command, reason=reason), "missing")


def read_json(path: Path, rebuild: str | None = None) -> Any | None:
    """The JSON document at ``path``, or ``None`` if the file does not exist.

    Read with :func:`valuechain.artifacts.open_artifact`: a file that is not valid JSON (or
    a directory, or unreadable) is an :class:`~valuechain.errors.ArtifactError` (a
    ``DataError``) naming it and ``rebuild``, the command that writes it again (by default
    the command of the stage that writes a file of that name, see
    :func:`valuechain.artifacts.writer_of`).
    """
    command = rebuild or fix_command(None, writer_of(path) or Path(path).stem)
    return open_artifact(path, "json", rebuild=command, optional=True)
