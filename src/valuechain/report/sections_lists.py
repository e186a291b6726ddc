"""The decide card of a weekly outreach list (``decide --kind top_n`` with ``outreach``).

Rendered by :func:`valuechain.report.sections_decide.decide_section` in place of the
approve / review / decline card when ``decide.json`` holds an ``outreach`` block: the list
in words (per week), its load against the capacity, the money it saves against contacting
nobody, a random list of the same size and today's rule (intervals resampling customers,
and weeks beside), the value chain, and the composition of the lists handed out (``valuechain
list``: risk deciles of the listed among every active customer, treated vs control).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from valuechain.decide.result import DecideResult
from valuechain.lists.history import AssignmentLog
from valuechain.policy import describe
from valuechain.report.section import Section, fragment
from valuechain.spec.durations import format_duration
from valuechain.spec.loader import LoadedSpec

__all__ = ["list_composition", "outreach_card"]

_NAMES = {"no_outreach": "contacting nobody", "random_list": "a random list of the same size",
          "rules": "today's rule (flagged customers, capacity-capped)"}

_CARD = """
<p data-key="outreach-policy"><strong>{{ words }}</strong> A listed customer is not listed
again for {{ cooldown }}; {{ control }} of each list is held out at random as a control
(<code>valuechain list</code>). Chosen on validation from run <code>{{ run_id }}</code>
({{ candidate }}).</p>
<table class="data"><thead><tr><th>test period</th><th class="num">{{ action }} per {{ unit }}
(mean)</th><th class="num">max / limit</th><th class="num">cancels among the listed</th>
<th class="num">cost</th></tr></thead><tbody>
{% for r in rows %}<tr><td>{{ r.name }}</td><td class="num">{{ r.mean }}</td>
<td class="num">{{ r.max }}</td><td class="num">{{ r.caught }}</td>
<td class="num">{{ r.cost }}</td></tr>{% endfor %}
</tbody></table>
<table class="data"><thead><tr><th>the list saves, against</th><th class="num">{{ currency }}
</th><th class="num">95 % interval (customers)</th><th class="num">95 % interval (weeks)</th>
<th class="num">per {{ unit }}</th></tr></thead><tbody>
{% for s in savings %}<tr><td>{{ s.name }}</td><td class="num">{{ s.value }}</td>
<td class="num">{{ s.customers }}</td><td class="num">{{ s.weeks }}</td>
<td class="num">{{ s.per }}</td></tr>{% endfor %}
</tbody></table>
<p class="muted">Intervals resample whole customers (the same customers recur every week, so
rows are not independent), and, beside, whole weeks. Savings price risk with the spec's
assumed save rate (<code>value.review.catch_rate</code>); the randomized control of the lists
measures what the calls actually achieve.</p>
<table class="data"><thead><tr><th>link</th><th>owner</th><th>what</th></tr></thead><tbody>
{% for c in chain %}<tr><td>{{ c.link }}</td><td>{{ c.owner }}</td><td>{{ c.what }}</td></tr>
{% endfor %}</tbody></table>
{% if lists %}
<h3>Lists handed out</h3>
<p data-key="list-weeks">{{ lists.weeks }} week(s) listed: {{ lists.treated }} to {{ action }},
{{ lists.control }} held out as control (last week {{ lists.last }}).</p>
{% if lists.deciles %}<table class="data"><thead><tr><th>risk decile among the active
(week {{ lists.last }})</th>{% for d in lists.deciles %}<th class="num">{{ d.decile }}</th>
{% endfor %}</tr></thead><tbody>
<tr><td>treated</td>{% for d in lists.deciles %}<td class="num">{{ d.treated }}</td>
{% endfor %}</tr>
<tr><td>control</td>{% for d in lists.deciles %}<td class="num">{{ d.control }}</td>
{% endfor %}</tr></tbody></table>{% endif %}
{% endif %}
"""


def _money(value: Any) -> str:
    return "-" if value is None else f"{float(value):,.0f}"


def list_composition(workspace: Path) -> dict[str, Any] | None:
    """Weeks listed and control vs treated counts (assignments), and the last list's risk
    deciles among every active customer (its file); ``None`` before any list."""
    log = AssignmentLog(workspace / "lists" / "assignments.sqlite")
    weeks = log.weeks()
    if not weeks:
        return None
    rows = [a for week in weeks for a in log.week(week)]
    last = weeks[-1]
    out: dict[str, Any] = {"weeks": len(weeks), "last": last,
                           "treated": sum(a.group == "treated" for a in rows),
                           "control": sum(a.group == "control" for a in rows), "deciles": []}
    path = workspace / "lists" / f"{last}.parquet"
    if path.is_file():
        table = pd.read_parquet(path, columns=["population_decile", "group"])
        counts = table.groupby(["population_decile", "group"]).size()
        for decile in range(1, 11):
            out["deciles"].append({"decile": decile,
                                   "treated": int(counts.get((decile, "treated"), 0)),
                                   "control": int(counts.get((decile, "control"), 0))})
    return out


def outreach_card(loaded: LoadedSpec, workspace: Path, result: DecideResult, section_id: str,
                  title: str) -> Section:
    """The decide card for a weekly list (see the module docstring)."""
    body = result.to_json()
    outreach = body["outreach"]
    value = loaded.spec.value
    cap = next(iter(value.capacity.values()), None) if value and value.capacity else None
    per = format_duration(cap.per) if cap is not None else "7d"
    unit = {"1d": "day", "7d": "week", "1w": "week", "1h": "hour"}.get(per, per)
    action = outreach["action"]
    words = describe(body["policy"], per=per).removeprefix("Policy: ")
    rows = []
    for name, summary in [("the list", body["test"]), *body["baselines"].items()]:
        acts = summary["actions_per_period"].get(action, {})
        capacity = summary["capacity"]
        rows.append({"name": _NAMES.get(name, name), "mean": f"{acts.get('mean', 0):.1f}",
                     "max": f"{capacity['max_used']:.0f} / {capacity['limit']}",
                     "caught": f"{summary['caught_positives']:,.0f} of "
                               f"{summary['positives']:,.0f}",
                     "cost": _money(summary["expected_cost"])})
    savings = []
    for name, s in (body["test"].get("savings") or {}).items():
        savings.append({"name": _NAMES.get(name, name), "value": _money(s["value"]),
                        "customers": f"[{_money(s.get('low'))}, {_money(s.get('high'))}]",
                        "weeks": f"[{_money(s.get('low_weeks'))}, "
                                 f"{_money(s.get('high_weeks'))}]",
                        "per": _money(s.get("per_period"))})
    share = loaded.spec.outreach.control_share if loaded.spec.outreach else 0.0
    html = fragment(_CARD, words=words, cooldown=outreach["cooldown"], control=f"{share:.0%}",
                    run_id=body["run_id"], candidate=body["candidate"], action=action,
                    unit=unit, rows=rows, savings=savings,
                    currency=value.currency if value else "money", chain=body["value_chain"],
                    lists=list_composition(workspace))
    return Section(section_id, title, html, "ok")
