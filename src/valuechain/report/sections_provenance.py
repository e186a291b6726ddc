"""Report section "Provenance": which output every stage section shows, and what it was made from.

One row per stage output in the workspace (build manifest, audit, latest run, decision
policy) with the identities it recorded (see :mod:`valuechain.report.provenance`), and a
warning per mismatch naming both identities and the command that fixes it.
"""

from __future__ import annotations

from pathlib import Path

from valuechain.report.provenance import UNKNOWN, provenance, short
from valuechain.report.section import Section, fragment, register_section, unavailable
from valuechain.spec.loader import LoadedSpec

__all__ = ["provenance_section"]

TITLE = "Provenance"

_PROVENANCE = """
<p>Each section below shows one stage's output. This table says which file that is and what it
was made from, so numbers from different frames or runs are never read side by side unnoticed.
{% if not mismatches %}{{ badge(true, 'all outputs match') }} every output was made from the
one before it{% if unknown %} (as far as recorded: <em>unknown</em> identities were written by
an older valuechain and are not compared){% endif %}.{% endif %}</p>
{% for m in mismatches %}<div class="mismatch" data-key="mismatch-{{ m.stage }}">
<strong>{{ m.stage|capitalize }}: made from another {{ m.subject }}.</strong>
{{ code_spans(m.message()) }}</div>
{% endfor %}
<div class="scroll"><table class="data provenance">
  <thead><tr><th>Stage</th><th>Output</th><th>Recorded</th><th>Check</th></tr></thead>
  <tbody>
  {% for o, facts, bad in rows %}
    <tr data-key="provenance-{{ o.stage }}"><th>{{ o.stage }}</th><td><code>{{ o.output }}</code></td>
      <td class="small">{% for label, value, shown in facts %}<div><span class="muted">{{ label }}
        </span> <code title="{{ value or 'unknown' }}">{{ shown }}</code></div>{% endfor %}</td>
      <td>{{ badge(not bad, 'matches', 'made from another ' ~ bad) }}</td></tr>
  {% endfor %}
  </tbody>
</table></div>
"""


@register_section(order=25, id="provenance", title=TITLE)
def provenance_section(loaded: LoadedSpec, workspace: Path) -> Section:
    """Every stage output's identity and what it was made from; mismatches flagged."""
    found = provenance(workspace, loaded.hash)
    if not found.origins:
        return unavailable("provenance", TITLE, "valuechain build",
                           "No stage has written an output yet.")
    rows = []
    unknown = False
    for origin in found.origins:
        facts = []
        for label, value in origin.facts:
            unknown = unknown or value is None
            shown = short(value) if label in ("frame fingerprint", "cache key", "spec hash") \
                else (value or UNKNOWN)
            facts.append((label, value, shown))
        bad = next((m.subject for m in found.of(origin.stage)), "")
        rows.append((origin, facts, bad))
    html = fragment(_PROVENANCE, rows=rows, mismatches=found.mismatches, unknown=unknown)
    return Section("provenance", TITLE, html, "warn" if found.mismatches else "ok")
