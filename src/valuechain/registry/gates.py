"""Promotion gates: what a bundle must show before it may decide in production.

Four gates, each a :class:`Gate` (``passed``, the figures behind it, and the fix), computed
from the bundle's own files so that a promotion judges exactly what ships:

``audit``
    ``audit.json`` exists, audits the frame the run was trained on, and holds no critical
    finding left unaccepted (a finding is accepted in the audit or in the bundle's spec,
    ``audit.accept``). A bundle packaged before any audit records ``not audited`` and fails.
``beats_baselines``
    The chosen candidate *beats* every baseline trained in the run (``prior``, ``rules``) on
    the test period: the run's verdicts (paired day-block difference of the headline metric
    whose interval lies above zero). A tie or a loss fails, and so does a run without
    baselines.
``policy``
    The bundle's ``policy.yaml`` was decided on this run's chosen candidate.
``owners``
    The spec names the decision's owner and every link of the value chain (``owners.*``, the
    readiness checklist's operational ownership).

A failed promotion raises :class:`PromotionError` naming every failing gate with its figures
and its fix.

>>> gate = Gate("owners", False, "no owner for operations", "set `owners.operations`")
>>> print(promotion_message("v3", (gate,)))
v3 cannot be promoted to production: 1 of 1 gates fail. - owners: no owner for operations. Fix: set `owners.operations`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from valuechain.errors import ValuechainError
from valuechain.policy import Policy
from valuechain.spec.models import Spec
from valuechain.spec.readiness import readiness

__all__ = ["GATES", "Gate", "PromotionError", "evaluate_gates", "promotion_message"]

GATES = ("audit", "beats_baselines", "policy", "owners")
BASELINES = ("prior", "rules")


class PromotionError(ValuechainError):
    """A bundle cannot move to production: a gate fails, or there is nothing to roll back to.

    The message names each failing gate with its figures and fix (CLI exit status 2).
    """


@dataclass(frozen=True)
class Gate:
    """One promotion gate: its name, whether it passes, the figures behind it, the fix."""

    name: str
    passed: bool
    detail: str
    fix: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Gate:
        return cls(str(data["name"]), bool(data["passed"]), str(data.get("detail", "")),
                   str(data.get("fix", "")))


def _num(value: Any, spec: str = "+.4f") -> str:
    return "n/a" if value is None else format(float(value), spec)


def audit_gate(audit: Mapping[str, Any] | None, spec: Spec, frame_fingerprint: str | None,
               root: str = "DIR") -> Gate:
    """No unaccepted critical finding in an audit of the run's frame."""
    rerun = (f"run `valuechain audit --spec {root}`, then `valuechain package --spec {root}`"
             + (" (DIR: the project folder)" if root == "DIR" else ""))
    if audit is None or audit.get("status") == "not audited":
        return Gate("audit", False, "not audited: the bundle holds no leakage audit", rerun)
    context = audit.get("context") if isinstance(audit.get("context"), Mapping) else {}
    audited = context.get("frame_fingerprint") if context else None
    if frame_fingerprint and audited and audited != frame_fingerprint:
        return Gate("audit", False, f"the audit is of frame {audited}, but the run was trained "
                    f"on frame {frame_fingerprint}", f"{rerun} so that the audit describes "
                    "the frame that trained the model")
    accepted = {a.id for a in spec.audit.accept}
    findings = [f for f in audit.get("findings", []) if isinstance(f, Mapping)]
    open_critical = [str(f.get("id")) for f in findings if f.get("severity") == "critical"
                     and not f.get("accepted") and f.get("id") not in accepted]
    counts = {s: sum(1 for f in findings if f.get("severity") == s)
              for s in ("critical", "warning", "info")}
    if open_critical:
        return Gate("audit", False, f"{len(open_critical)} unaccepted critical finding(s): "
                    f"{', '.join(open_critical)}",
                    "remove the leaking feature(s) and train, decide and package again; or, "
                    "when a finding is a false alarm, accept it in the spec (`audit.accept`: "
                    "id, reason, by) and package again")
    return Gate("audit", True, f"no unaccepted critical finding ({counts['critical']} "
                f"critical accepted, {counts['warning']} warning(s), {counts['info']} info)")


def baselines_gate(metrics: Mapping[str, Any], candidate: str) -> Gate:
    """The chosen candidate beats every trained baseline on test (the run's verdicts)."""
    trained = [b for b in BASELINES if b in metrics.get("candidates", {}) and b != candidate]
    metric = metrics.get("headline_metric", "average_precision")
    retrain = ("train with the baselines (`valuechain train --spec DIR` trains prior and "
               "rules by default), then decide and package again")
    if not trained:
        return Gate("beats_baselines", False, f"run {metrics.get('run_id')} trained no "
                    f"baseline ({', '.join(BASELINES)}) to compare '{candidate}' with", retrain)
    verdicts = {v.get("baseline"): v for v in metrics.get("verdicts", [])
                if isinstance(v, Mapping) and v.get("candidate") == candidate}
    parts, failing = [], []
    for baseline in trained:
        v = verdicts.get(baseline)
        if v is None:
            failing.append(baseline)
            parts.append(f"vs {baseline}: no verdict")
            continue
        d = v.get("difference", {})
        parts.append(f"vs {baseline}: {v.get('verdict')} ({metric} {_num(d.get('value'))} "
                     f"[{_num(d.get('low'))}, {_num(d.get('high'))}])")
        if v.get("verdict") != "beats":
            failing.append(baseline)
    detail = f"{candidate} on test, " + "; ".join(parts)
    if failing:
        return Gate("beats_baselines", False, detail,
                    "improve the model (features, more training data) until its test "
                    "interval lies above every baseline's; a model that does not beat today's "
                    "rule should not replace it")
    return Gate("beats_baselines", True, detail)


def policy_gate(policy: Policy | None, run_id: str, candidate: str) -> Gate:
    """The bundle's policy was decided on this run's candidate."""
    decide = "run `valuechain decide --spec DIR` on this run, then package again"
    if policy is None:
        return Gate("policy", False, "no policy.yaml in the bundle", decide)
    meta = dict(policy.metadata)
    made = (meta.get("run_id"), meta.get("candidate"))
    if made != (run_id, candidate):
        return Gate("policy", False, f"policy.yaml was decided on run {made[0]} candidate "
                    f"{made[1]}, not run {run_id} candidate {candidate}", decide)
    return Gate("policy", True, f"{policy.kind} policy decided on run {run_id} ({candidate})")


def owners_gate(spec: Spec) -> Gate:
    """The decision owner and every owner of the value chain are named."""
    item = next(i for i in readiness(spec) if i.item == "operational_ownership")
    missing = [] if spec.decision.owner.strip() else ["decision.owner"]
    if not item.passed or missing:
        roles = [r for r, who in spec.owners.model_dump().items() if not who]
        named = ", ".join([*missing, *(f"owners.{r}" for r in roles)])
        return Gate("owners", False, f"no owner named for {named}",
                    f"name them in valuechain.yaml ({named}), then package again")
    return Gate("owners", True, f"decision owner {spec.decision.owner}; {item.reason}")


def evaluate_gates(*, spec: Spec, metrics: Mapping[str, Any], audit: Mapping[str, Any] | None,
                   policy: Policy | None, candidate: str, root: str = "DIR"
                   ) -> tuple[Gate, ...]:
    """The four gates, in :data:`GATES` order (``root``: the project, for the fixes)."""
    frame = metrics.get("frame") if isinstance(metrics.get("frame"), Mapping) else {}
    return (
        audit_gate(audit, spec, (frame or {}).get("fingerprint"), root),
        baselines_gate(metrics, candidate),
        policy_gate(policy, str(metrics.get("run_id")), candidate),
        owners_gate(spec),
    )


def promotion_message(version: str, gates: Sequence[Gate]) -> str:
    """One paragraph naming every failing gate with its figures and fix."""
    failing = [g for g in gates if not g.passed]
    parts = " ".join(f"- {g.name}: {g.detail}. Fix: {g.fix}." for g in failing)
    return (f"{version} cannot be promoted to production: {len(failing)} of {len(gates)} "
            f"gates fail. {parts}")
