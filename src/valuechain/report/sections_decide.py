"""Report section from ``valuechain decide``: the decision policy and what it is worth.

Reads ``<workspace>/decide.json`` through :meth:`valuechain.decide.DecideResult.load`
(validated) and renders its plain parts strictly (:class:`~valuechain.report.record.Record`:
a missing or renamed key fails the section, naming the file and the key). It opens with the
run and policy it comes from, flagged when the latest run is another one, and shows:

- the chosen policy (kind, bands or threshold or top-N, the capacity it was fitted for);
- the value chain: model output -> decision rule -> changed behaviour -> KPI, each link with
  its owner from the spec, a missing owner highlighted;
- the test period: the policy beside every baseline (cost, cost per 1,000 decisions, most
  capacity-limited actions per period against the limit, periods over the limit);
- the savings against each baseline with their day-block bootstrap intervals, a green badge
  when the whole interval lies above zero;
- capacity use per period as bars with the limit drawn across, on validation and test;
- the trade-off curves: validation cost against the capacity limit, and precision / recall
  against the score threshold on test, with the policy's thresholds marked;
- the sensitivity table: the optimum and the savings with each cost halved and doubled.

Charts are inline SVG; nothing is fetched and nothing runs in the browser.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape

from valuechain.decide import DecideResult
from valuechain.errors import DataError
from valuechain.report.fmt import fmt_int, fmt_num, fmt_pct, plain_text
from valuechain.report.provenance import origin_note, provenance
from valuechain.report.record import Record
from valuechain.report.section import Section, fragment, register_section, unavailable
from valuechain.report.sections_summary import policy_in_words
from valuechain.report.svg import COLORS, TITLE_BAND, Line, axis_ticks, nice_ticks, xy_chart
from valuechain.spec.durations import format_duration
from valuechain.spec.loader import LoadedSpec

__all__ = ["BASELINE_LABELS", "capacity_chart", "decide_section", "limited_action"]

DECIDE = "valuechain decide"
TITLE = "Decision policy and value"
SECTION_ID = "decide"

#: Baseline policies in the order they are shown, with their labels.
BASELINE_LABELS: dict[str, str] = {
    "approve_all": "approve all",
    "rules": "today's rule",
    "threshold_0.5": "threshold 0.5",
    "accuracy_optimal": "accuracy-optimal threshold",
}
_COST_LABELS = {"false_negative": "false negative", "false_positive": "false positive",
                "review": "review"}
#: Where the owner of each value-chain link is set in the spec.
_OWNER_FIELDS = {"model output": "owners.data_science", "decision rule": "decision.owner",
                 "changed behaviour": "owners.operations", "KPI": "owners.product"}
_NO_OWNER = ("", "(no owner)", "none", "null")


# --- reading decide.json -----------------------------------------------------------------------

def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _money(value: Any, signed: bool = False) -> str:
    """Money: whole units with separators, cents below 10.

    >>> _money(8243.64), _money(-151.38, signed=True), _money(3.5), _money(None)
    ('8,244', '-151', '3.50', '–')
    """
    number = _number(value)
    if number is None:
        return "–"
    sign = "+" if signed else ""
    if abs(number) < 10 and number != 0:
        return f"{number:{sign},.2f}"
    return f"{number:{sign},.0f}"


def _score(value: Any) -> str:
    """A score threshold: four significant digits, infinities as ∞.

    >>> _score(0.023516666), _score(float("inf")), _score(None)
    ('0.02352', '∞', '–')
    """
    if isinstance(value, float) and math.isinf(value):
        return "∞" if value > 0 else "-∞"
    return fmt_num(_number(value), 4) if _number(value) is not None else "–"


def _per(loaded: LoadedSpec, policy: dict[str, Any]) -> str:
    if isinstance(policy.get("per"), str):
        return str(policy["per"])
    value = loaded.spec.value
    if value is not None and value.capacity:
        return format_duration(next(iter(value.capacity.values())).per)
    return "period"


def _counted_action(loaded: LoadedSpec, limited: str) -> str:
    """The action whose load decide.json counts: the first ``value.capacity`` entry."""
    value = loaded.spec.value
    if value is not None and value.capacity:
        return next(iter(value.capacity))
    return limited


def _currency(loaded: LoadedSpec) -> str:
    value = loaded.spec.value
    return value.currency if value is not None else ""


# --- the policy --------------------------------------------------------------------------------

def limited_action(policy: dict[str, Any]) -> str:
    """The action a policy's capacity limits (the review band of three bands).

    >>> limited_action({"kind": "three_band", "actions": ["allow", "check", "block"]})
    'check'
    >>> limited_action({"kind": "threshold", "at_or_above": "decline"})
    'decline'
    """
    kind = policy.get("kind")
    if kind == "three_band":
        actions = _list(policy.get("actions"))
        return str(actions[1]) if len(actions) == 3 else "review"
    if kind == "threshold":
        return str(policy.get("at_or_above") or "decline")
    if kind == "top_n":
        return str(policy.get("action") or "review")
    return "review"


def _edges(policy: dict[str, Any]) -> tuple[str, str]:
    """``review_at`` and ``decline_at`` as text.

    decide.json stores infinite thresholds as ``null`` (strict JSON); as ``review_at <=
    decline_at``, a null beside a number is ``-∞`` below it or ``∞`` above it.

    >>> _edges({"review_at": None, "decline_at": 0.9}), _edges({"review_at": 0.1})
    (('-∞', '0.9'), ('0.1', '∞'))
    """
    low, high = _number(policy.get("review_at")), _number(policy.get("decline_at"))
    if low is None and high is None:
        return _score(policy.get("review_at")), _score(policy.get("decline_at"))
    return ("-∞" if low is None else _score(low)), ("∞" if high is None else _score(high))


def _bands(policy: dict[str, Any], per: str) -> list[tuple[str, str]]:
    """(action, which scores) for each action of the policy, low scores first."""
    kind = policy.get("kind")
    if kind == "three_band":
        names = [str(a) for a in _list(policy.get("actions"))]
        if len(names) != 3:
            names = ["approve", "review", "decline"]
        low, high = _edges(policy)
        return [(names[0], f"score below {low}"),
                (names[1], f"score from {low} to below {high}"),
                (names[2], f"score from {high}")]
    if kind == "threshold":
        t = _score(policy.get("threshold"))
        return [(str(policy.get("below") or "approve"), f"score below {t}"),
                (str(policy.get("at_or_above") or "decline"), f"score from {t}")]
    if kind == "top_n":
        n = policy.get("n")
        floor = policy.get("min_score")
        top = f"the {fmt_int(n)} highest scores of each {per}"
        if _number(floor) is not None:
            top += f" that are at least {_score(floor)}"
        return [(str(policy.get("action") or "review"), top),
                (str(policy.get("other") or "approve"), "every other case")]
    return []


def _thresholds(policy: dict[str, Any]) -> str:
    """The numbers that define a policy, as one short text (for the sensitivity table)."""
    kind = policy.get("kind")
    if kind == "three_band":
        low, high = _edges(policy)
        return f"review from {low}, decline from {high}"
    if kind == "threshold":
        return f"threshold {_score(policy.get('threshold'))}"
    if kind == "top_n":
        text = f"n = {fmt_int(policy.get('n'))}"
        if _number(policy.get("min_score")) is not None:
            text += f", min score {_score(policy.get('min_score'))}"
        return text
    return "–"


def _fitted_for(policy: dict[str, Any], per: str, action: str) -> list[tuple[str, str]]:
    meta = _dict(policy.get("metadata"))
    facts: list[tuple[str, str]] = []
    capacity = _number(meta.get("capacity"))
    if capacity is not None:
        facts.append(("capacity", f"{fmt_int(capacity)} {action} per {per}"))
    if meta.get("overflow"):
        facts.append(("overflow", f"beyond the limit: {meta['overflow']}"))
    pct = _number(meta.get("percentile"))
    if pct is not None:
        facts.append(("percentile", "every period within the limit" if pct >= 1 else
                      f"{fmt_pct(pct, 0)} of periods within the limit"))
    rows = _number(meta.get("fitted_rows"))
    if rows is not None:
        facts.append(("fitted on", f"{fmt_int(rows)} validation decisions"))
    return facts


# --- tables ------------------------------------------------------------------------------------

def _per_1000(value: Any) -> str:
    number = _number(value)
    return "–" if number is None else f"{number:,.1f}"


_COUNTED = ("approve", "review", "decline")


def _summary_row(name: str, label: str, summary: Record, limit: Any) -> dict[str, Any]:
    cap = summary.sub("capacity")
    acts = summary.sub("actions_per_period")
    used = cap.number("max_used")
    limit_n = cap.number("limit")
    if limit_n is None:
        limit_n = _number(limit)
    over = cap.integer("periods_over_limit")
    positives, caught = summary.number("positives"), summary.number("caught_positives")
    return {
        "name": name, "label": label,
        "cost": _money(summary.number("expected_cost")),
        "cost_value": summary.number("expected_cost"),
        "per_1000": _per_1000(summary.number("cost_per_1000")),
        "means": [_per_1000(acts.sub(a).number("mean")) if a in acts else "0.0"
                  for a in _COUNTED],
        "used": fmt_int(used), "limit": fmt_int(limit_n),
        "used_over": used is not None and limit_n is not None and used > limit_n,
        "over": fmt_int(over), "over_bad": bool(over),
        "caught": "–" if positives is None or caught is None
        else f"{fmt_int(caught)} of {fmt_int(positives)}",
    }


def _test_rows(body: Record) -> list[dict[str, Any]]:
    test = body.sub("test")
    limit = test.sub("capacity")["limit"]
    rows = [_summary_row("policy", "policy (chosen)", test, limit)]
    baselines = body.sub("baselines")
    for name in _ordered(baselines.data):
        rows.append(_summary_row(name, BASELINE_LABELS.get(name, name), baselines.sub(name),
                                 limit))
    return rows


def _ordered(named: Mapping[str, Any]) -> list[str]:
    known = [n for n in BASELINE_LABELS if n in named]
    return known + [n for n in named if n not in known]


def _verdict(low: float | None, high: float | None) -> tuple[bool | None, str]:
    """Badge state and text of a savings interval."""
    if low is None or high is None:
        return None, "no interval"
    if low > 0:
        return True, "saves (interval above 0)"
    if high < 0:
        return False, "costs more (interval below 0)"
    return None, "unclear (interval includes 0)"


def _savings(body: Record) -> list[dict[str, Any]]:
    savings = body.sub("test").sub("savings")
    rows = []
    for name in _ordered(savings.data):
        s = savings.sub(name)
        value, low, high = s.number("value"), s.number("low"), s.number("high")
        state, text = _verdict(low, high)
        rows.append({"name": name, "label": BASELINE_LABELS.get(name, name),
                     "value": _money(value, signed=True), "raw": value,
                     "interval": "–" if low is None or high is None
                     else f"[{_money(low, signed=True)}, {_money(high, signed=True)}]",
                     "per_day": _money(s.number("per_day"), signed=True),
                     "state": state, "text": text, "clear": state is True})
    return rows


def _sensitivity(body: Record) -> tuple[list[dict[str, Any]], list[str]]:
    entries = body.subs("sensitivity")
    against = [n for n in ("approve_all", "rules")
               if any(f"savings_vs_{n}" in e for e in entries)]
    if not entries:
        return [], against
    test = body.sub("test")
    savings = test.sub("savings")
    rows = [{"cost": "as in the spec", "factor": "×1", "policy": _thresholds(body["policy"]),
             "moved": False, "test_cost": _money(test.number("expected_cost")),
             "savings": [_money(savings.sub(n).number("value"), signed=True)
                         for n in against], "base": True}]
    base_text = rows[0]["policy"]
    for e in entries:
        factor = e.number("factor")
        policy_text = _thresholds(dict(e.sub("policy").data))
        cost = e.text("cost")
        rows.append({
            "cost": _COST_LABELS.get(cost, cost),
            "factor": "–" if factor is None else f"×{fmt_num(factor, 3)}",
            "policy": policy_text, "moved": policy_text != base_text,
            "test_cost": _money(e.number("test_cost")),
            "savings": [_money(e.number(f"savings_vs_{n}"), signed=True)
                        if f"savings_vs_{n}" in e else "n/a" for n in against],
            "base": False,
        })
    return rows, [BASELINE_LABELS.get(n, n) for n in against]


def _value_chain(body: Record, rule_words: str | None = None) -> list[dict[str, Any]]:
    """The value-chain links; the decision rule in words (``rule_words``) when given."""
    out = []
    for link in body.subs("value_chain"):
        name = link.text("link")
        owner = link.text("owner").strip()
        missing = owner.lower() in _NO_OWNER
        what = link.text("what")
        if name == "decision rule" and rule_words:
            what = rule_words
        out.append({"link": name, "owner": owner, "missing": missing,
                    "field": _OWNER_FIELDS.get(name, "owners"), "what": plain_text(what)})
    return out


# --- charts ------------------------------------------------------------------------------------

_FONT = 'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif"'


def capacity_chart(used: Sequence[float], limit: float | None, title: str, action: str = "review",
                   per: str = "1d", start: date | None = None) -> Markup:
    """Bars of the capacity-limited actions in each period, with the limit as a dashed line.

    Bars over the limit are red, bars exactly at it amber (the overflow may have spilled cases
    there), the rest blue. With ``start`` (the first period's date) and daily periods, the
    axis shows dates (``07-15``) instead of period numbers.

    >>> svg = str(capacity_chart([3, 5, 4], 5, "reviews"))
    >>> svg.startswith("<svg") and svg.count("<rect") == 3 + 1
    True
    """
    width, height = 760, 230
    left, right, top, bottom = 56, 20, 30, 38
    plot_w, plot_h = width - left - right, height - top - bottom
    values = [max(float(u), 0.0) for u in used if _number(u) is not None]
    ticks = nice_ticks(max(max(values, default=0.0), limit or 0.0))
    y_top = ticks[-1]

    def y(v: float) -> float:
        return top + plot_h * (1 - min(v, y_top) / y_top)

    body: list[str] = []
    for tick in ticks:
        body.append(
            f'<line x1="{left}" x2="{width - right}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
            f'stroke="{COLORS["grid"]}"/><text x="{left - 6}" y="{y(tick) + 4:.1f}" '
            f'text-anchor="end" font-size="11" fill="{COLORS["muted"]}">{fmt_num(tick, 3)}</text>')
    n = max(len(values), 1)
    slot = plot_w / n
    every = max(1, math.ceil(n / 15))
    for i, value in enumerate(values):
        x = left + i * slot
        if limit is not None and value > limit:
            color, state = COLORS["positive"], "over the limit"
        elif limit is not None and value == limit and limit > 0:
            color, state = COLORS["warn"], "at the limit"
        else:
            color, state = COLORS["primary"], "within the limit"
        name = _period_label(i, start, per)
        tip = f"{name}: {fmt_int(value)} {action}" + (
            f" of {fmt_int(limit)} ({state})" if limit is not None else "")
        body.append(
            f'<rect x="{x + slot * 0.12:.1f}" y="{y(value):.1f}" width="{slot * 0.76:.1f}" '
            f'height="{top + plot_h - y(value):.1f}" fill="{color}">'
            f"<title>{escape(tip)}</title></rect>")
        if i % every == 0:
            body.append(f'<text x="{x + slot / 2:.1f}" y="{top + plot_h + 15}" font-size="11" '
                        f'text-anchor="middle" fill="{COLORS["muted"]}">'
                        f'{escape(name.removeprefix("period "))}</text>')
    base = top + plot_h
    body.append(f'<line x1="{left}" x2="{width - right}" y1="{base}" y2="{base}" '
                f'stroke="{COLORS["muted"]}"/>'
                f'<text x="{left + plot_w / 2:.1f}" y="{height - 4}" text-anchor="middle" '
                f'font-size="12" fill="{COLORS["ink"]}">{escape(_axis_title(start, per))}</text>')
    legend = (f'<rect x="{left}" y="6" width="12" height="12" fill="{COLORS["primary"]}"/>'
              f'<text x="{left + 18}" y="16" font-size="12" fill="{COLORS["ink"]}">'
              f"{escape(action)} per {escape(per)}</text>")
    if limit is not None:
        body.append(
            f'<line class="limit" x1="{left}" x2="{width - right}" y1="{y(limit):.1f}" '
            f'y2="{y(limit):.1f}" stroke="{COLORS["positive"]}" stroke-width="2" '
            f'stroke-dasharray="6 4"><title>limit: {fmt_int(limit)} per '
            f"{escape(per)}</title></line>")
        legend += (f'<line x1="{left + 200}" x2="{left + 224}" y1="12" y2="12" '
                   f'stroke="{COLORS["positive"]}" stroke-width="2" stroke-dasharray="6 4"/>'
                   f'<text x="{left + 230}" y="16" font-size="12" fill="{COLORS["ink"]}">'
                   f"limit {fmt_int(limit)}</text>")
    body.append(legend)
    head = (f'<svg class="chart chart-capacity" role="img" viewBox="0 0 {width} '
            f'{height + TITLE_BAND}" width="100%" preserveAspectRatio="xMinYMin meet" {_FONT}>'
            f"<title>{escape(title)}</title>"
            f'<text class="chart-title" x="4" y="15" font-size="13" font-weight="600" '
            f'fill="{COLORS["ink"]}">{escape(title)}</text>'
            f'<g transform="translate(0 {TITLE_BAND})">')
    return Markup(head + "".join(body) + "</g></svg>")


def _period_label(i: int, start: date | None, per: str) -> str:
    """The ``i``-th period's label: its date (MM-DD) for daily periods from ``start``.

    >>> _period_label(2, date(2025, 7, 15), "1d"), _period_label(2, None, "1d")
    ('07-17', 'period 3')
    """
    if start is not None and per == "1d":
        return f"{start + timedelta(days=i):%m-%d}"
    return f"period {i + 1}"


def _axis_title(start: date | None, per: str) -> str:
    if start is not None and per == "1d":
        return f"day ({start.year}, UTC)"
    return f"period ({per})"


def _starts(workspace: Path, run_id: str) -> dict[str, date]:
    """First decision date of the validation and test periods (the run's metrics.json)."""
    from valuechain.report.section import read_json
    raw = read_json(workspace / "runs" / run_id / "metrics.json")
    splits = raw.get("splits") if isinstance(raw, dict) else None
    out = {}
    for role in ("validation", "test"):
        part = splits.get(role) if isinstance(splits, dict) else None
        if isinstance(part, dict) and isinstance(part.get("start"), str):
            out[role] = datetime.fromisoformat(part["start"]).date()
    return out


def _capacity_charts(body: Record, action: str, per: str,
                     starts: Mapping[str, date] | None = None) -> list[dict[str, Any]]:
    out = []
    for role in ("validation", "test"):
        cap = body.sub(role).sub("capacity")
        used = [float(u) for u in _floats(cap, "used_per_period")]
        if not used:
            continue
        limit = cap.number("limit")
        at_limit = sum(1 for u in used if limit is not None and u == limit and limit > 0)
        over = sum(1 for u in used if limit is not None and u > limit)
        unit = {"1d": "day", "7d": "week", "1h": "hour"}.get(per, per)
        title = f"{action.capitalize()} cases per {unit}, {role} period, against the limit"
        out.append({
            "role": role, "title": title,
            "asked_over": cap.get("requested_over_limit"),
            "asked_max": fmt_int(cap.get("requested_max")),
            "chart": capacity_chart(used, limit, title, action, per,
                                    (starts or {}).get(role)),
            "max": fmt_int(max(used)), "mean": fmt_num(sum(used) / len(used), 3),
            "p50": fmt_num(cap.number("p50_used"), 3),
            "p90": fmt_num(cap.number("p90_used"), 3),
            "limit": fmt_int(limit), "periods": len(used), "at_limit": at_limit, "over": over,
            "share": fmt_pct(max(used) / limit, 0) if limit else "–",
        })
    return out


def _floats(record: Record, key: str) -> list[float]:
    """A required list of numbers (no nulls)."""
    values = record.sequence(key)
    for i, value in enumerate(values):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise DataError(f"{record.file}: key `{record.at}.{key}[{i}]` should be a number, "
                            f"not {value!r:.40}. Run `{record.command}` to write it again.")
    return [float(v) for v in values]


def _frontier_chart(body: Record, action: str, per: str, currency: str,
                    counted: str) -> tuple[Markup | None, str]:
    """The validation cost against the limit, and a caption computed from what happened
    (whether the limit binds on validation, and on how many test periods the bands asked for
    more than it)."""
    pairs = [(c, v, p.number("reviews_mean")) for p in body.subs("frontier")
             if (c := p.number("capacity")) is not None and (v := p.number("cost")) is not None]
    if len(pairs) < 2:
        return None, ""
    pairs.sort()
    limit = body.sub("policy").sub("metadata").number("capacity")
    if limit is None and action == counted:
        limit = body.sub("test").sub("capacity").number("limit")
    xs = [c for c, _, _ in pairs]
    ys = [v for _, v, _ in pairs]
    tips = [f"limit {fmt_int(c)} {action} per {per}: expected cost {currency} {_money(v)}"
            + (f", {fmt_num(m, 3)} {action} per {per} on average" if m is not None else "")
            for c, v, m in pairs]
    lo_y, hi_y = min(ys), max(ys)
    y_ticks = axis_ticks(lo_y, hi_y, 4)
    x_hi = max(xs)
    lines = [Line("cost at each limit", xs, ys, COLORS["primary"], markers=True, tips=tips)]
    chosen = [c for c in xs if limit is None or c <= limit]
    note = ""
    if chosen:
        at = max(chosen)
        value = ys[xs.index(at)]
        lines.append(Line("chosen policy", [at], [value], COLORS["positive"], joined=False,
                          tips=[f"chosen: limit {fmt_int(limit)}, needs {fmt_int(at)}, expected "
                                f"cost {currency} {_money(value)}"]))
    if limit is not None and limit <= x_hi:
        lines.append(Line(f"limit {fmt_int(limit)}", [limit, limit], [y_ticks[0], y_ticks[-1]],
                          COLORS["warn"], dashed=True))
    elif limit is not None:
        note = (f"On validation the limit ({fmt_int(limit)} per {per}) is above the "
                f"{fmt_int(x_hi)} {action} per {per} the unconstrained optimum needs: there "
                "capacity does not bind, and more of it would save nothing.")
    test_cap = body.sub("test").sub("capacity")
    asked_over = test_cap.get("requested_over_limit")
    if limit is not None and isinstance(asked_over, int):
        used = _floats(test_cap, "used_per_period")
        at = sum(1 for u in used if u >= limit)
        note += (f" On test the bands asked for more than the limit on {fmt_int(asked_over)} "
                 f"of {len(used)} periods (at most {fmt_int(test_cap.get('requested_max'))}) "
                 f"and the queue was full on {at}: "
                 + ("capacity binds there; the extra cases took the overflow action (the "
                    "Summary counts them)." if asked_over else "capacity did not bind."))
    chart = xy_chart(lines, f"Expected validation cost against the {action} limit",
                     f"limit: most {action} per {per}", f"expected cost ({currency})".strip(),
                     (0.0, x_hi), (y_ticks[0], y_ticks[-1]), y_ticks=y_ticks,
                     plot_width=420, plot_height=240)
    return chart, note


def _log_axis(values: Sequence[float]) -> bool:
    positive = [v for v in values if v > 0]
    return bool(positive) and len(positive) == len(values) and max(positive) / min(positive) > 50


def _threshold_chart(body: Record) -> Markup | None:
    rows = [(t, p.number("precision"), p.number("recall"), p.number("flagged"))
            for p in body.subs("threshold_curve") if (t := p.number("threshold")) is not None]
    if len(rows) < 2:
        return None
    rows.sort(key=lambda r: r[0])
    thresholds = [r[0] for r in rows]
    log = _log_axis(thresholds)

    def x(v: float) -> float:
        return math.log10(v) if log else v

    xs = [x(t) for t in thresholds]
    if log:
        lo, hi = math.floor(min(xs)), math.ceil(max(xs))
        hi = max(hi, lo + 1)
        x_ticks = [(float(k), fmt_num(10.0 ** k, 3)) for k in range(lo, hi + 1)]
        x_range = (float(lo), float(hi))
    else:
        ticks = axis_ticks(min(xs), max(xs), 5)
        x_ticks = [(t, fmt_num(t, 3)) for t in ticks]
        x_range = (ticks[0], ticks[-1])
    lines = [Line("precision", xs, [r[1] for r in rows], COLORS["primary"]),
             Line("recall", xs, [r[2] for r in rows], COLORS["positive"])]
    policy: dict[str, Any] = body["policy"]
    marks = {"three_band": (("review_at", "review from"), ("decline_at", "decline from")),
             "threshold": (("threshold", "threshold"),),
             "top_n": (("min_score", "min score"),)}.get(str(policy.get("kind")), ())
    colors = (COLORS["warn"], COLORS["ink"])
    for i, (key, text) in enumerate(marks):
        value = _number(policy.get(key))
        if value is None or (log and value <= 0):
            continue
        at = x(value)
        if x_range[0] <= at <= x_range[1]:
            lines.append(Line(f"{text} {_score(value)}", [at, at], [0.0, 1.0],
                              colors[i % len(colors)], dashed=True))
    return xy_chart(lines, "Precision and recall against the score threshold (test)",
                    "threshold (log scale)" if log else "threshold", "share", x_range,
                    (0.0, 1.0), x_ticks=x_ticks, plot_width=420, plot_height=240)


# --- the section -------------------------------------------------------------------------------

_DECIDE = """
{{ origin }}
<p class="lead">A <strong data-key="decide-kind" data-value="{{ kind }}">{{ kind_label }}</strong>
policy on the calibrated scores of <strong data-key="decide-candidate">{{ candidate }}</strong>
(run <code data-key="decide-run-id">{{ run_id }}</code>), chosen on the validation period
to minimise expected cost within the capacity, and priced on the test period against the
policies the business could run instead.</p>
{% if problems %}<p class="note warn">{% for p in problems %}{{ p }}{{ ' ' if not loop.last }}
{% endfor %}</p>{% endif %}

{% if tiles %}
<div class="tiles">
{% for t in tiles %}<div class="tile{{ ' accent' if t.bad }}"><div class="value"
  {%- if t.key %} data-key="{{ t.key }}" data-value="{{ '' if t.raw is none else t.raw }}"{% endif %}>
  {{- t.value }}</div>
  <div class="label">{{ t.label }}</div></div>
{% endfor %}
</div>
{% endif %}

{% if bands %}
<h3>The policy</h3>
<div class="scroll"><table class="data policy">
  <thead><tr><th>Action</th><th>When</th></tr></thead>
  <tbody>
  {% for action, when in bands %}<tr><th>{{ action }}</th><td>{{ when }}</td></tr>
  {% endfor %}
  </tbody>
</table></div>
{% if numbers %}<p class="small">Policy: {% for key, value, shown in numbers %}<span class="nowrap">
<span class="muted">{{ key }}</span> <code data-key="decide-policy-{{ key }}" data-value="{{ value }}">
{{- shown }}</code></span>{{ ', ' if not loop.last }}{% endfor %}</p>{% endif %}
{% if facts %}<p class="muted small">Fitted for: {% for key, value in facts %}<span class="nowrap">
{{- key }} <strong>{{ value }}</strong></span>{{ '; ' if not loop.last else '.' }}
{% endfor %} Saved as <code>runs/{{ run_id }}/policy.yaml</code>; scores are calibrated
probabilities, so a threshold reads as a probability of a positive.</p>{% endif %}
{% endif %}

{% if chain %}
<h3>The value chain</h3>
<div class="scroll"><table class="data value-chain">
  <thead><tr><th>Link</th><th>Owner</th><th>What</th></tr></thead>
  <tbody>
  {% for c in chain %}
    <tr><th class="nowrap">{{ c.link }}</th>
      <td>{% if c.missing %}<span class="badge fail">no owner</span>
        <span class="muted small">set <code>{{ c.field }}</code></span>
        {%- else %}{{ c.owner }}{% endif %}</td>
      <td>{{ c.what }}</td></tr>
  {% endfor %}
  </tbody>
</table></div>
<p class="muted small">Model output → decision rule → changed behaviour → KPI: each link needs
someone who answers for it, or the value stops at that link.</p>
{% endif %}

{% if test_rows %}
<h3>Test period: the policy against the baselines</h3>
<div class="scroll"><table class="data decide-test">
  <thead><tr><th>Policy</th><th class="num">Cost ({{ currency }})</th>
    <th class="num">Per 1,000 decisions</th>
    <th class="num">Approve / review / decline per {{ per }} (mean)</th>
    <th class="num">{{ action }} per {{ per }}: max / limit</th>
    <th class="num">Periods over limit</th><th class="num">Positives not approved</th></tr></thead>
  <tbody>
  {% for r in test_rows %}
    <tr{% if r.name == 'policy' %} class="chosen"{% endif %}><th>
      {%- if r.name == 'policy' %}<strong>{{ r.label }}</strong>{% else %}{{ r.label }}{% endif %}</th>
      <td class="num">{{ r.cost }}</td><td class="num">{{ r.per_1000 }}</td>
      <td class="num">{{ r.means|join(' / ') }}</td>
      <td class="num">{% if r.used_over %}<span class="badge fail">{{ r.used }} / {{ r.limit }}</span>
        {%- else %}{{ r.used }} / {{ r.limit }}{% endif %}</td>
      <td class="num">{% if r.over_bad %}<span class="badge fail">{{ r.over }}</span>
        {%- else %}{{ r.over }}{% endif %}</td>
      <td class="num">{{ r.caught }}</td></tr>
  {% endfor %}
  </tbody>
</table></div>
<p class="muted small">Realised cost on the test period's labels, with the capacity applied
(cases beyond the limit spill as the spec's <code>overflow</code> says). <em>Today's rule</em>
reviews what <code>value.baseline_policy</code> flags, first come first served within the
capacity, as it works today: this is the one cost of today's rule used for money in this
report (the Evaluation section's <em>cost per decision, decline at 0.5</em> prices the rule as a
model whose flags are declined, a different policy); <em>threshold 0.5</em> and the <em>accuracy-optimal threshold</em> (chosen on
validation) decline at or above their threshold.</p>
{% endif %}

{% if savings %}
<h3>Savings on test</h3>
<div class="scroll"><table class="data savings">
  <thead><tr><th>Against</th><th class="num">Saved ({{ currency }})</th>
    <th class="num">95% interval</th><th class="num">Per day</th><th></th></tr></thead>
  <tbody>
  {% for s in savings %}
    <tr><th>{{ s.label }}</th><td class="num" data-key="decide-savings-{{ s.name }}"
      data-value="{{ '' if s.raw is none else s.raw }}"><strong>{{ s.value }}</strong></td>
      <td class="num">{{ s.interval }}</td><td class="num">{{ s.per_day }}</td>
      <td>{{ badge(s.state, s.text, s.text, s.text) }}</td></tr>
  {% endfor %}
  </tbody>
</table></div>
<p class="muted small">Saved = baseline cost − policy cost over the test period. The interval
resamples whole days (a day-block bootstrap, 500 draws): green when all of it lies above zero,
so the saving is not luck of the period.</p>
{% endif %}

{% if capacity %}
<h3>Capacity use per {{ per }}</h3>
{% for c in capacity %}
<div style="max-width:900px">{{ c.chart }}</div>
<p class="muted small">{{ c.role|capitalize }}: at most <strong>{{ c.max }}</strong>
{{ action }} per {{ per }} ({{ c.share }} of the limit of {{ c.limit }}), {{ c.mean }} on
average, median {{ c.p50 }}, 90th percentile {{ c.p90 }}, over {{ c.periods }} periods
{%- if c.over %}; <strong>{{ c.over }} over the limit</strong>{% endif %}
{%- if c.at_limit %}; full on {{ c.at_limit }} of them{% endif %}
{%- if c.asked_over is not none %}; the bands asked for more than the limit on {{ c.asked_over }}
(at most {{ c.asked_max }}){% if c.asked_over %}, the rest took the overflow action{% endif %}{% endif %}.</p>
{% endfor %}
{% endif %}

{% if frontier or threshold_chart %}
<h3>Trade-offs</h3>
<div style="display:grid;grid-template-columns:repeat(auto-fit,minmax(340px,1fr));gap:16px">
{% if frontier %}<div>{{ frontier }}</div>{% endif %}
{% if threshold_chart %}<div>{{ threshold_chart }}</div>{% endif %}
</div>
{% if frontier %}<p class="muted small">Left: the best expected cost on the validation period
(under the calibrated scores) for each limit on {{ limited }} per {{ per }}; where the curve
flattens, more capacity buys little.{% if frontier_note %} {{ frontier_note }}{% endif %}</p>
{% endif %}
{% if threshold_chart %}<p class="muted small">Right: on the test period, the share of flagged
cases that are positive (precision) and of positives flagged (recall) when every score at or
above the threshold is acted on; dashed lines mark the policy's thresholds.</p>{% endif %}
{% endif %}

{% if sensitivity %}
<h3>Sensitivity to the costs</h3>
<div class="scroll"><table class="data sensitivity">
  <thead><tr><th>Cost</th><th>Factor</th><th>Optimal policy</th>
    <th class="num">Test cost ({{ currency }})</th>
    {% for name in sensitivity_against %}<th class="num">Saved vs {{ name }}</th>{% endfor %}
  </tr></thead>
  <tbody>
  {% for s in sensitivity %}
    <tr><th>{% if s.base %}<em>{{ s.cost }}</em>{% else %}{{ s.cost }}{% endif %}</th>
      <td>{{ s.factor }}</td>
      <td>{% if s.moved %}<strong>{{ s.policy }}</strong>{% else %}{{ s.policy }}{% endif %}</td>
      <td class="num">{{ s.test_cost }}</td>
      {% for v in s.savings %}<td class="num">{{ v }}</td>{% endfor %}</tr>
  {% endfor %}
  </tbody>
</table></div>
<p class="muted small">Each cost is halved and doubled in turn, the policy re-optimised on
validation and priced on test with the moved costs (so costs are comparable within a row, not
across rows). Policies that differ from the one chosen are in bold; savings that keep their
sign under every change make the choice robust to a mis-stated cost.</p>
{% endif %}
"""

_KIND_LABELS = {"three_band": "three-band (approve / review / decline)",
                "threshold": "single-threshold", "top_n": "top-N per period"}


def _tiles(body: Record, currency: str, action: str, per: str) -> list[dict[str, Any]]:
    test = body.sub("test")
    savings = test.sub("savings")
    tiles = [{"value": f"{currency} {_per_1000(test.number('cost_per_1000'))}".strip(),
              "bad": False, "label": "cost per 1,000 decisions on test",
              "key": "decide-cost-per-1000", "raw": test.number("cost_per_1000")}]
    for name in ("rules", "approve_all"):
        if name not in savings:
            continue
        s = savings.sub(name)
        value, low, high = s.number("value"), s.number("low"), s.number("high")
        state, _ = _verdict(low, high)
        tiles.append({"value": f"{currency} {_money(value)}".strip(),
                      "bad": state is not True, "key": None, "raw": value,
                      "label": f"saved vs {BASELINE_LABELS[name]} "
                               f"[{_money(low)}, {_money(high)}]"})
    cap = test.sub("capacity")
    used, limit = cap.number("max_used"), cap.number("limit")
    tiles.append({"value": f"{fmt_int(used)} / {fmt_int(limit)}",
                  "bad": used is not None and limit is not None and used > limit,
                  "key": "decide-max-used", "raw": used,
                  "label": f"most {action} per {per} on test / limit"})
    return tiles


def _problems(body: Record, chain: list[dict[str, Any]],
              savings: list[dict[str, Any]]) -> list[str]:
    out = []
    for role in ("validation", "test"):
        over = body.sub(role).sub("capacity").integer("periods_over_limit")
        if over:
            out.append(f"The policy exceeds the capacity in {fmt_int(over)} {role} periods.")
    unclear = [s["label"] for s in savings if not s["clear"]]
    if unclear:
        out.append("The saving against " + ", ".join(unclear) + " is not clear of zero: the "
                   "policy may not beat " + ("it" if len(unclear) == 1 else "them") +
                   " outside this test period.")
    missing = [c["link"] for c in chain if c["missing"]]
    if missing:
        out.append("No owner for: " + ", ".join(missing) + ".")
    return out


_POLICY_KEYS = {"three_band": ("review_at", "decline_at", "actions"),
                "threshold": ("threshold", "below", "at_or_above"),
                "top_n": ("n", "per", "min_score", "action", "other")}


def _policy(body: Record) -> dict[str, Any]:
    """The policy block, with every field of its kind present (thresholds may be null: ∞)."""
    policy = body.sub("policy")
    kind = policy.text("kind")
    if kind not in _POLICY_KEYS:
        raise DataError(f"{body.file}: `policy.kind` is '{kind}', not one of "
                        f"{', '.join(_POLICY_KEYS)}. Run `{DECIDE}` to write it again.")
    for key in _POLICY_KEYS[kind]:
        policy[key]
    policy.sub("metadata")
    return dict(policy.data)


@register_section(order=80, id=SECTION_ID, title=TITLE)
def decide_section(loaded: LoadedSpec, workspace: Path) -> Section:
    """The chosen policy, the value chain, test costs and savings, capacity and trade-offs."""
    if not (workspace / "decide.json").is_file():
        return unavailable(SECTION_ID, TITLE, DECIDE,
                           "No decision policy has been chosen yet (it needs a training run, "
                           "`value.costs` and `value.capacity`).")
    result = DecideResult.load(workspace, root=loaded.root)  # validated: a DataError if damaged
    if result.outreach is not None:  # a weekly list: its own card (per week, no declines)
        from valuechain.report.sections_lists import outreach_card

        return outreach_card(loaded, workspace, result, SECTION_ID, TITLE)
    body = Record(result.to_json(), "decide.json", DECIDE)
    policy = _policy(body)
    kind = body.text("kind")
    per = _per(loaded, policy)
    limited = limited_action(policy)
    action = _counted_action(loaded, limited)
    currency = _currency(loaded)
    cap = loaded.spec.value.capacity if loaded.spec.value else {}
    overflow = next(iter(cap.values())).overflow if cap else None
    limit = body.sub("test").sub("capacity").number("limit")
    unit = {"1d": "day", "7d": "week", "1h": "hour"}.get(per, per)
    chain = _value_chain(body, policy_in_words(
        policy, limit=int(limit) if limit is not None else None, per=unit, overflow=overflow))
    savings = _savings(body)
    sensitivity, against = _sensitivity(body)
    frontier, frontier_note = _frontier_chart(body, limited, per, currency, action)
    problems = _problems(body, chain, savings)
    html = fragment(
        _DECIDE,
        origin=origin_note(workspace, loaded.hash, "decide"),
        kind=kind, kind_label=_KIND_LABELS.get(kind, kind), candidate=body.text("candidate"),
        run_id=body.text("run_id"), problems=problems,
        tiles=_tiles(body, currency, action, per), bands=_bands(policy, per),
        numbers=[(key, policy[key], _score(policy[key])) for key in _POLICY_KEYS[kind]
                 if _number(policy[key]) is not None],
        facts=_fitted_for(policy, per, limited), chain=chain, test_rows=_test_rows(body),
        currency=currency or "money", per=per, action=action, limited=limited,
        savings=savings,
        capacity=_capacity_charts(body, action, per, _starts(workspace, result.run_id)),
        frontier=frontier,
        frontier_note=frontier_note, threshold_chart=_threshold_chart(body),
        sensitivity=sensitivity, sensitivity_against=against,
    )
    stale = _mismatched(workspace, loaded.hash)
    return Section(SECTION_ID, TITLE, html, "warn" if problems or stale else "ok")


def _mismatched(workspace: Path, spec_hash: str) -> bool:
    try:
        return bool(provenance(workspace, spec_hash).of("decide"))
    except DataError:  # shown by the Provenance section and the origin line
        return False
