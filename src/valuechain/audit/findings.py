"""Audit findings are data; a separate step decides what they mean for the exit code.

>>> f = Finding(id="label_copy:y2", check="label_copy", severity="critical",
...             features=("y2",), evidence={"auc": 0.999}, explanation="copies the label",
...             fix="drop y2")
>>> result = AuditResult.of([f], accepted=())
>>> result.critical
1
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Literal

from valuechain.errors import DataError

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["SEVERITIES", "AuditResult", "Finding", "Severity"]

Severity = Literal["critical", "warning", "info"]
SEVERITIES: tuple[Severity, ...] = ("critical", "warning", "info")


@dataclass(frozen=True)
class Finding:
    """One thing the audit noticed: what, how sure, the numbers, and the fix."""

    id: str
    check: str
    severity: Severity
    features: tuple[str, ...]
    evidence: Mapping[str, Any]
    explanation: str
    fix: str
    accepted_by: str | None = None
    accepted_reason: str | None = None

    @property
    def accepted(self) -> bool:
        return self.accepted_by is not None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "id": self.id,
            "check": self.check,
            "severity": self.severity,
            "features": list(self.features),
            "evidence": dict(self.evidence),
            "explanation": self.explanation,
            "fix": self.fix,
            "accepted": self.accepted,
        }
        if self.accepted:
            out["accepted_by"] = self.accepted_by
            out["accepted_reason"] = self.accepted_reason
        return out


@dataclass(frozen=True)
class AuditResult:
    """All findings, most severe first; ``critical`` counts the unaccepted critical ones."""

    findings: tuple[Finding, ...]
    context: Mapping[str, Any] = field(default_factory=dict)
    data: Any = field(default=None, repr=False, compare=False)
    """The audited frame (an ``AuditFrame``), kept for :meth:`explain`; not serialised."""
    loaded: Any = field(default=None, repr=False, compare=False)
    """The loaded spec of a project audit, for :meth:`explain`; not serialised."""

    @classmethod
    def of(
        cls,
        findings: Iterable[Finding],
        accepted: Iterable[Any],
        context: Mapping[str, Any] | None = None,
    ) -> AuditResult:
        """Mark findings accepted in the spec (objects with ``id``, ``reason``, ``by``)."""
        by_id = {a.id: a for a in accepted}
        marked = [
            replace(f, accepted_by=by_id[f.id].by, accepted_reason=by_id[f.id].reason)
            if f.id in by_id else f
            for f in findings
        ]
        order = {s: i for i, s in enumerate(SEVERITIES)}
        marked.sort(key=lambda f: (order[f.severity], f.check, f.id))
        return cls(tuple(marked), dict(context or {}))

    @property
    def critical(self) -> int:
        return sum(1 for f in self.findings if f.severity == "critical" and not f.accepted)

    @property
    def exit_code(self) -> int:
        return 1 if self.critical else 0

    def get(self, finding_id: str) -> Finding | None:
        return next((f for f in self.findings if f.id == finding_id), None)

    def explain(self, finding_id: str, limit: int = 20) -> pd.DataFrame:
        """The rows behind the finding ``finding_id`` (a DataFrame of at most ``limit`` rows).

        Raises
        ------
        DataError
            When no finding has that id (the message lists the ids), or the result was
            built without its frame.
        """
        from valuechain.audit.run import explain

        finding = self.get(finding_id)
        if finding is None:
            raise DataError(f"`finding_id` '{finding_id}': no such finding. Expected one of "
                            f"{[f.id for f in self.findings]}.")
        if self.data is None:
            raise DataError("this audit result was made without its frame (e.g. read from "
                            "audit.json); run the audit again to explain a finding.")
        return explain(finding, self.data, self.loaded, limit=limit)

    def to_json(self) -> dict[str, Any]:
        return {
            "findings": [f.to_json() for f in self.findings],
            "critical": self.critical,
            "counts": {s: sum(1 for f in self.findings if f.severity == s) for s in SEVERITIES},
            "context": dict(self.context),
        }
