"""Where each stage's results come from, and whether they still belong together.

Every stage writes an output that names what it was made from:

========  ================================  =============================================
stage     output                            identity / made from
========  ================================  =============================================
build     ``build/manifest.json``           frame fingerprint, cache key, as_of; the spec
audit     ``audit.json``                    the frame it audited (fingerprint, path)
train     ``runs/<id>/metrics.json``        run id; the frame it was trained on
decide    ``decide.json``                   the run whose scores it priced; the policy
========  ================================  =============================================

:func:`provenance` reads those identities and compares each output with the one it should have
been made from: the current frame for the audit and the latest run, the latest run for the
decision policy, the current spec for the frame and the run. Every disagreement is a
:class:`Mismatch` naming both identities and the command that fixes it; the report shows them
in a banner above the contents, in the *Provenance* card and in the card of the stale stage.

Identities recorded before a stage wrote them (older workspaces) read as ``unknown``: an
unknown identity is shown as such and compared with nothing, never guessed. A frame is
compared by its fingerprint when both sides recorded one, else by the build's cache key.

>>> Mismatch("decide", "decide.json", "run", "r2", "latest run", "r3", "valuechain decide").message()
'decide.json was made from run `r2`, but the latest run is `r3`. Run `valuechain decide` to make it again from the latest run.'
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from markupsafe import Markup

from valuechain.artifacts import fix_command, open_artifact, writer_of
from valuechain.errors import DataError
from valuechain.report.section import fragment
from valuechain.train.runs import LATEST, latest_run

__all__ = ["UNKNOWN", "Mismatch", "Origin", "Provenance", "origin_note", "provenance", "short"]

UNKNOWN = "unknown"

_OUTPUTS = {"build": "build/manifest.json", "audit": "audit.json", "decide": "decide.json"}


def short(value: str | None, size: int = 12) -> str:
    """A fingerprint or key shortened for display (``unknown`` when not recorded).

    >>> short("0123456789abcdef0123"), short(None)
    ('0123456789ab', 'unknown')
    """
    if not value:
        return UNKNOWN
    return value if len(value) <= size + 2 else value[:size]


@dataclass(frozen=True)
class Origin:
    """What one stage output is and what it was made from.

    Parameters
    ----------
    stage
        ``build``, ``audit``, ``train`` or ``decide``.
    output
        The file, relative to the workspace (``runs/<id>/metrics.json`` for a run).
    facts
        ``(label, value)`` pairs identifying the output and its inputs, in display order;
        a value never recorded is ``None`` (shown as ``unknown``).
    """

    stage: str
    output: str
    facts: tuple[tuple[str, str | None], ...]

    def fact(self, label: str) -> str | None:
        """The value recorded for ``label`` (``None`` if unknown or not a fact of this stage)."""
        return next((value for key, value in self.facts if key == label), None)


@dataclass(frozen=True)
class Mismatch:
    """A stage output made from something other than what it should have been made from.

    ``output`` (``decide.json``, ``run r1``) recorded ``found`` (``found_label``) where it
    should match ``expected`` (``expected_label``); ``command`` makes the output again (for
    ``purpose``: default, what re-running the stage does); ``advice`` is added as written.
    """

    stage: str
    output: str
    found_label: str
    found: str
    expected_label: str
    expected: str
    command: str
    advice: str = ""
    purpose: str = ""

    @property
    def subject(self) -> str:
        """What differs: ``frame``, ``run`` or ``spec``."""
        for word in ("frame", "run", "spec"):
            if word in self.found_label:
                return word
        return "input"

    def message(self) -> str:
        """One paragraph: both identities and the command that fixes it."""
        tail = self.purpose or {"build": "rebuild the frame from the current spec",
                                "audit": "audit the current frame",
                                "train": "train on the current frame",
                                "decide": "make it again from the latest run"
                                }.get(self.stage, "refresh it")
        text = (f"{self.output} was made from {self.found_label} `{self.found}`, but the "
                f"{self.expected_label} is `{self.expected}`. Run `{self.command}` to {tail}.")
        return f"{text} {self.advice}" if self.advice else text

    def to_json(self) -> dict[str, str]:
        return {"stage": self.stage, "output": self.output, "found_label": self.found_label,
                "found": self.found, "expected_label": self.expected_label,
                "expected": self.expected, "command": self.command, "subject": self.subject,
                "message": self.message()}


@dataclass(frozen=True)
class Provenance:
    """The origin of every stage output present in a workspace, and the mismatches."""

    origins: tuple[Origin, ...]
    mismatches: tuple[Mismatch, ...]

    def origin(self, stage: str) -> Origin | None:
        return next((o for o in self.origins if o.stage == stage), None)

    def of(self, stage: str) -> tuple[Mismatch, ...]:
        """The mismatches of ``stage``'s output."""
        return tuple(m for m in self.mismatches if m.stage == stage)


# --- reading -----------------------------------------------------------------------------------

def _json(path: Path) -> dict[str, Any] | None:
    found: dict[str, Any] | None = open_artifact(
        path, "json", rebuild=fix_command(None, writer_of(path) or "train"), expect=dict,
        optional=True)
    return found


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def _block(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key)
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class _Frame:
    """A frame's identity as some output recorded it."""

    fingerprint: str | None
    cache_key: str | None

    def differs(self, other: _Frame, whose: str) -> tuple[str, str, str, str] | None:
        """``(found_label, this, expected_label, other)`` when both sides recorded the same
        kind of identity and they differ (``whose`` frame ``other`` is, e.g. ``current``)."""
        if self.fingerprint and other.fingerprint:
            if self.fingerprint != other.fingerprint:
                return ("frame", self.fingerprint, f"{whose} frame", other.fingerprint)
            return None
        if self.cache_key and other.cache_key and self.cache_key != other.cache_key:
            return ("a frame with cache key", self.cache_key, f"{whose} frame's cache key",
                    other.cache_key)
        return None


def _frame_of(block: dict[str, Any]) -> _Frame:
    return _Frame(_text(block.get("fingerprint") or block.get("frame_fingerprint")),
                  _text(block.get("cache_key")))


def _signature(workspace: Path) -> tuple[tuple[str, int, int], ...]:
    """Size and modification time of every file :func:`provenance` reads."""
    paths = [workspace / "build" / "manifest.json", workspace / "audit.json",
             workspace / "decide.json", workspace / "runs" / "latest"]
    run = latest_run(workspace / "runs")
    if run is not None:
        paths.append(run / "metrics.json")
    out = []
    for path in paths:
        try:
            stat = path.stat()
        except OSError:
            continue
        out.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(out)


def provenance(workspace: Path, spec_hash: str | None = None) -> Provenance:
    """Read the identities of every stage output in ``workspace`` and compare them.

    Parameters
    ----------
    workspace
        The project's workspace (``loaded.workspace``).
    spec_hash
        The current spec's hash (``loaded.hash``); the frame and the latest run are flagged
        when they were made from another version of the spec. ``None`` skips that check.

    Returns
    -------
    Provenance
        One :class:`Origin` per stage output present, and every :class:`Mismatch`.

    Raises
    ------
    DataError
        An output that is not valid JSON (named).

    Examples
    --------
    >>> import tempfile
    >>> provenance(Path(tempfile.mkdtemp())).origins
    ()
    """
    return _provenance(workspace, spec_hash, _signature(workspace))


@lru_cache(maxsize=8)
def _provenance(workspace: Path, spec_hash: str | None,
                signature: tuple[tuple[str, int, int], ...]) -> Provenance:
    """:func:`provenance`, read once per state of the files (every section asks for it)."""
    origins: list[Origin] = []
    mismatches: list[Mismatch] = []
    manifest = _json(workspace / "build" / "manifest.json")
    current: _Frame | None = None
    if manifest is not None:
        frame = _block(manifest, "frame")
        current = _Frame(_text(frame.get("fingerprint")), _text(manifest.get("cache_key")))
        built_hash = _text(_block(manifest, "spec").get("hash"))
        origins.append(Origin("build", _OUTPUTS["build"], (
            ("frame", f"build/{frame.get('path') or 'frame.parquet'}"),
            ("frame fingerprint", current.fingerprint), ("cache key", current.cache_key),
            ("as of", _text(manifest.get("as_of"))), ("spec hash", built_hash))))
        if spec_hash and built_hash and built_hash != spec_hash:
            mismatches.append(Mismatch("build", _OUTPUTS["build"], "the spec with hash", built_hash,
                                       "current spec's hash", spec_hash, "valuechain build"))

    audit = _json(workspace / "audit.json")
    if audit is not None:
        context = _block(audit, "context")
        audited = _frame_of(context)
        origins.append(Origin("audit", _OUTPUTS["audit"], (
            ("frame", _text(context.get("frame"))),
            ("frame fingerprint", audited.fingerprint), ("cache key", audited.cache_key))))
        if current is not None and context.get("mode", "project") == "project" and (
                diff := audited.differs(current, "current")):
            mismatches.append(Mismatch("audit", _OUTPUTS["audit"], *diff, "valuechain audit"))

    run_dir = latest_run(workspace / "runs")
    run_id: str | None = None
    trained: _Frame | None = None
    if run_dir is not None:
        metrics: dict[str, Any] = open_artifact(
            run_dir / "metrics.json", "json", rebuild=fix_command(None), expect=dict,
            what=f"the training run named by runs/{LATEST}")
        run_id = _text(metrics.get("run_id")) or run_dir.name
        frame = _block(metrics, "frame")
        trained = _frame_of(frame)
        run_hash = _text(metrics.get("spec_hash"))
        origins.append(Origin("train", f"runs/{run_dir.name}/metrics.json", (
            ("run", run_id), ("frame", _text(frame.get("path"))),
            ("frame fingerprint", trained.fingerprint), ("cache key", trained.cache_key),
            ("spec hash", run_hash))))
        if current is not None and (diff := trained.differs(current, "current")):
            mismatches.append(Mismatch(
                "train", f"run {run_id}", *diff, "valuechain train",
                "Or rebuild the frame the run was trained on (same spec, sources and "
                "`--as-of`) with `valuechain build --force`."))
        elif spec_hash and run_hash and run_hash != spec_hash:
            mismatches.append(Mismatch("train", f"run {run_id}", "the spec with hash", run_hash,
                                       "current spec's hash", spec_hash, "valuechain train"))

    decided = _json(workspace / "decide.json")
    if decided is not None:
        used = _text(decided.get("run_id"))
        policy = _block(decided, "policy")
        priced = _frame_of(_block(decided, "frame"))
        origins.append(Origin("decide", _OUTPUTS["decide"], (
            ("run", used), ("policy", _text(policy.get("kind"))),
            ("policy file", f"runs/{used}/policy.yaml" if used else None),
            ("frame fingerprint", priced.fingerprint))))
        if run_id is not None and used is not None and used != run_id:
            mismatches.append(Mismatch("decide", _OUTPUTS["decide"], "run", used, "latest run", run_id,
                                       "valuechain decide"))
        elif trained is not None and (diff := priced.differs(trained, "latest run's")):
            mismatches.append(Mismatch("decide", _OUTPUTS["decide"], *diff, "valuechain decide"))
        elif current is not None and (diff := priced.differs(current, "current")):
            mismatches.append(Mismatch(  # the run is stale too: decide refuses it until retrained
                "decide", _OUTPUTS["decide"], *diff, "valuechain train",
                purpose="train on the current frame, then `valuechain decide`"))
    return Provenance(tuple(origins), tuple(mismatches))


_SHORTENED = frozenset({"frame fingerprint", "cache key", "spec hash"})

_ORIGIN = """<p class="origin small" data-key="origin-{{ o.stage }}"><span class="muted">From</span>
<code>{{ o.output }}</code>
{%- for label, value, shown in facts %} · <span class="muted">{{ label }}</span>
<code data-key="origin-{{ o.stage }}-{{ label|replace(' ', '-') }}" data-value="{{ value or 'unknown' }}"
  {%- if value != shown %} title="{{ value }}"{% endif %}>{{ shown }}</code>{% endfor %}</p>
{% for m in mismatches %}<div class="mismatch" data-key="mismatch-{{ m.stage }}">
<strong>Made from another {{ m.subject }}.</strong>
{{ code_spans(m.message()) }}</div>
{% endfor %}"""


_UNREADABLE = """<p class="origin small note warn" data-key="origin-{{ stage }}">Where this
output comes from cannot be checked: {{ error }} (see the Provenance section).</p>"""


def origin_note(workspace: Path, spec_hash: str | None, stage: str) -> Markup:
    """The *From ...* line of ``stage``'s card, with a warning per mismatch of its output.

    Empty when the stage has no output in the workspace. When another stage's output is
    damaged, the line says so (the Provenance section fails with the error).
    """
    try:
        found = provenance(workspace, spec_hash)
    except DataError as err:
        return fragment(_UNREADABLE, stage=stage, error=str(err))
    origin = found.origin(stage)
    if origin is None:
        return Markup("")
    facts = [(label, value, short(value) if label in _SHORTENED else (value or UNKNOWN))
             for label, value in origin.facts]
    return fragment(_ORIGIN, o=origin, facts=facts, mismatches=found.of(stage))
