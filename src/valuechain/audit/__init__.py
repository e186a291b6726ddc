"""Leakage audit: find what the model could not know at decision time.

Findings are data (:class:`Finding`); :class:`AuditResult` decides the exit code. Static
checks read the spec and its sources; empirical checks read the frame on time-ordered splits.
"""

from valuechain.audit.findings import AuditResult, Finding
from valuechain.audit.run import audit_frame, audit_project, explain, load_flat

__all__ = ["AuditResult", "Finding", "audit_frame", "audit_project", "explain", "load_flat"]
