"""Report section from ``valuechain train``: the evaluation of the latest run.

Reads ``<workspace>/runs/<run_id>/metrics.json`` of the run named by ``<workspace>/runs/latest``
(a text file holding the run id; without it, the newest ``metrics.json``) and shows, from what
the run recorded (every key is optional):

- the random-split vs time-split AUC and the explanation of the gap, first;
- the time periods (start, end, rows, positives) and the embargo between them;
- every candidate on every metric, validation and test, as ``value [low, high]``;
- every candidate against every baseline: the difference, its interval and the verdict;
- ROC and precision-recall curves, one line per candidate;
- calibration: ECE before and after, and the reliability plot of the best model;
- the metrics period by period, and the rolling-origin backtest.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from markupsafe import Markup

from valuechain.audit.empirical import GAP_WARNING
from valuechain.evaluate.metrics import GREATER_IS_BETTER
from valuechain.report.fmt import fmt_duration, fmt_int, fmt_num, fmt_pct
from valuechain.report.section import (
    Section,
    code_spans,
    fragment,
    read_json,
    register_section,
    unavailable,
)
from valuechain.report.svg import COLORS, PALETTE, Line, axis_ticks, period_chart, xy_chart
from valuechain.spec.loader import LoadedSpec

__all__ = ["METRIC_LABELS", "evaluation_section", "latest_run"]

TRAIN = "valuechain train"
TITLE = "Evaluation"

#: Metrics in the order they are shown, with their labels.
METRIC_LABELS: dict[str, str] = {
    "roc_auc": "ROC AUC",
    "average_precision": "Average precision",
    "brier": "Brier score",
    "log_loss": "Log loss",
    "ece": "ECE",
    "precision_at_capacity": "Precision at capacity",
    "recall_at_capacity": "Recall at capacity",
    "expected_cost": "Expected cost",
    "card_precision_at_k": "Card precision at k",
}
_BASELINES = frozenset({"prior", "rules"})
_SPLITS = ("train", "validation", "test")
_VERDICT_BADGE = {"beats": "pass", "ties": "na", "loses": "fail"}
_PERIOD_METRICS = ("average_precision", "roc_auc", "precision_at_capacity")
_SUFFIXES = ("_low", "_high")


# --- reading the run ---------------------------------------------------------------------------

def _metrics_of(run_dir: Path) -> dict[str, Any] | None:
    payload = read_json(run_dir / "metrics.json")
    return payload if isinstance(payload, dict) else None


def latest_run(workspace: Path) -> tuple[Path, dict[str, Any]] | None:
    """The directory and ``metrics.json`` of the latest run in ``workspace``, if any.

    The run named in ``runs/latest`` wins; when that file is missing or names no readable run,
    the run whose ``metrics.json`` was written last.
    """
    runs = workspace / "runs"
    if not runs.is_dir():
        return None
    latest = runs / "latest"
    named: Path | None = None
    if latest.is_dir():  # a symlink to the run directory
        named = latest
    elif latest.is_file():
        run_id = Path(latest.read_text(encoding="utf-8").strip()).name
        if run_id and run_id not in (".", ".."):
            named = runs / run_id
    if named is not None and (metrics := _metrics_of(named)) is not None:
        return named, metrics
    files = sorted((p for p in runs.glob("*/metrics.json") if p.parent.name != "latest"),
                   key=lambda p: (p.stat().st_mtime, p.parent.name))
    for path in reversed(files):
        try:
            metrics = _metrics_of(path.parent)
        except ValueError:  # an unreadable older run must not hide a readable one
            continue
        if metrics is not None:
            return path.parent, metrics
    return None


def _count_runs(workspace: Path) -> int:
    runs = workspace / "runs"
    return sum(1 for p in runs.glob("*/metrics.json") if p.parent.name != "latest")


# --- numbers -----------------------------------------------------------------------------------

def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _fmt(value: Any, signed: bool = False) -> str:
    """A metric value: three decimals, two significant digits when tiny, grouped when large.

    >>> _fmt(0.87312), _fmt(0.00314), _fmt(12345.6), _fmt(None), _fmt(0.052, signed=True)
    ('0.873', '0.0031', '12,346', '–', '+0.052')
    """
    number = _number(value)
    if number is None:
        return "–"
    sign = "+" if signed else ""
    size = abs(number)
    if size >= 1000:
        return f"{number:{sign},.0f}"
    if size >= 10:
        return f"{number:{sign},.1f}"
    if 0 < size < 0.01:
        return f"{number:{sign}.2g}"
    return f"{number:{sign}.3f}"


def _with_interval(values: dict[str, Any], name: str, signed: bool = False) -> str:
    """``value [low, high]`` (or just the value when the run recorded no interval)."""
    value = _fmt(values.get(name), signed)
    low, high = _number(values.get(f"{name}_low")), _number(values.get(f"{name}_high"))
    if low is None or high is None:
        return value
    return f"{value} [{_fmt(low, signed)}, {_fmt(high, signed)}]"


def _when(value: Any) -> str:
    """An ISO timestamp, shortened: a date alone at midnight, no ``T`` and no ``+00:00``."""
    if value is None or value == "":
        return "–"
    text = str(value).replace("T", " ")
    for suffix in ("+00:00", "Z"):
        text = text.removesuffix(suffix)
    if len(text) > 10 and text[10:].strip(" :0.") == "":
        return text[:10]
    return text[:19] if len(text) > 19 and text[19] == "." else text


def _day(value: Any) -> date | None:
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _floats(value: Any) -> list[float | None]:
    return [_number(v) for v in _list(value)]


# --- candidates --------------------------------------------------------------------------------

def _candidate_names(metrics: dict[str, Any]) -> list[str]:
    """Candidates in the run's order, then any only named by curves, periods or backtest."""
    names: list[str] = []

    def add(keys: Iterable[Any]) -> None:
        for key in keys:
            if isinstance(key, str) and key not in names:
                names.append(key)

    add(_dict(metrics.get("candidates")))
    for key in ("curves", "per_period", "reliability"):
        add(_dict(metrics.get(key)))
    for fold in _list(_dict(metrics.get("backtest")).get("folds")):
        add(_dict(_dict(fold).get("candidates")))
    return names


def _baselines(metrics: dict[str, Any], names: Sequence[str]) -> set[str]:
    out = {str(v.get("baseline")) for v in _list(metrics.get("verdicts")) if isinstance(v, dict)}
    for name, info in _dict(metrics.get("candidates")).items():
        describe = _dict(_dict(info).get("describe"))
        if describe.get("baseline") is True or describe.get("kind") == "baseline":
            out.add(str(name))
    return {name for name in names if name in out or name in _BASELINES}


def _better(metric: str) -> bool:
    return GREATER_IS_BETTER.get(metric, True)


def _best(metrics: dict[str, Any], names: Sequence[str], baselines: set[str],
          headline: str) -> str | None:
    """The run's chosen candidate, else the best non-baseline on the validation headline."""
    for key in ("best", "selected", "best_candidate"):
        chosen = metrics.get(key)
        if isinstance(chosen, str) and chosen in names:
            return chosen
    models = [n for n in names if n not in baselines] or list(names)
    candidates = _dict(metrics.get("candidates"))
    scored = [(score, n) for n in models
              if (score := _number(_dict(_dict(candidates.get(n)).get("validation"))
                                   .get(headline))) is not None]
    if scored:
        sign = 1.0 if _better(headline) else -1.0
        return max(scored, key=lambda item: (sign * item[0], -models.index(item[1])))[1]
    return models[0] if models else None


def _metric_names(candidates: dict[str, Any]) -> list[str]:
    """Known metrics recorded by any candidate (in display order), then unknown ones."""
    seen: list[str] = []
    for info in candidates.values():
        for split in ("validation", "test"):
            for key, value in _dict(_dict(info).get(split)).items():
                suffix = next((s for s in _SUFFIXES if key.endswith(s)), "")
                base = key.removesuffix(suffix) if suffix else key
                numeric = value is None or (isinstance(value, int | float)
                                            and not isinstance(value, bool))
                if (suffix or numeric) and base not in seen:  # NaN: recorded, undefined
                    seen.append(base)
    known = [m for m in METRIC_LABELS if m in seen]
    return known + sorted(m for m in seen if m not in METRIC_LABELS)


def _candidate_tables(candidates: dict[str, Any], names: Sequence[str],
                      headline: str) -> list[dict[str, Any]]:
    metric_names = _metric_names(candidates)
    tables = []
    for split in ("validation", "test"):
        values = {n: _dict(_dict(candidates.get(n)).get(split)) for n in names}
        if not any(values.values()):
            continue
        rows = []
        for metric in metric_names:
            known = [v for n in names if (v := _number(values[n].get(metric))) is not None]
            top = (max if _better(metric) else min)(known) if len(known) > 1 else None
            rows.append({
                "metric": metric, "label": METRIC_LABELS.get(metric, metric.replace("_", " ")),
                "arrow": "↑" if _better(metric) else "↓", "headline": metric == headline,
                "cells": [{"text": _with_interval(values[n], metric),
                           "best": top is not None and _number(values[n].get(metric)) == top}
                          for n in names],
            })
        tables.append({"split": split, "rows": rows})
    return tables


def _describe(info: Any) -> list[tuple[str, str]]:
    """Scalar facts of a candidate's ``describe`` (and of its ``params``)."""
    describe = _dict(_dict(info).get("describe"))
    flat: list[tuple[str, Any]] = [(k, v) for k, v in describe.items() if k != "candidate"]
    flat += [(f"params.{k}", v) for k, v in _dict(describe.get("params")).items()]
    out = []
    for key, value in flat:
        if isinstance(value, bool):
            out.append((key, "yes" if value else "no"))
        elif isinstance(value, int | float):
            out.append((key, fmt_num(value)))
        elif isinstance(value, str) and value:
            out.append((key, value))
    return out[:14]


# --- charts ------------------------------------------------------------------------------------

def _line(name: str, colors: dict[str, str], baselines: set[str], xs: Sequence[float],
          ys: Sequence[float | None], **extra: Any) -> Line:
    return Line(name, xs, ys, colors[name], dashed=name in baselines, **extra)


def _curve_charts(metrics: dict[str, Any], names: Sequence[str], colors: dict[str, str],
                  baselines: set[str]) -> list[Markup]:
    curves = _dict(metrics.get("curves"))
    roc, pr = [], []
    for name in names:
        curve = _dict(curves.get(name))
        r, p = _dict(curve.get("roc")), _dict(curve.get("pr"))
        fpr, tpr = _floats(r.get("fpr")), _floats(r.get("tpr"))
        if fpr and tpr:
            roc.append(_line(name, colors, baselines, [x or 0.0 for x in fpr], tpr))
        recall, precision = _floats(p.get("recall")), _floats(p.get("precision"))
        if recall and precision:
            pr.append(_line(name, colors, baselines, [x or 0.0 for x in recall], precision))
    charts = []
    if roc:
        charts.append(xy_chart(roc, "ROC curves: true positive rate against false positive rate",
                               "false positive rate", "true positive rate", diagonal="chance"))
    if pr:
        charts.append(xy_chart(pr, "Precision-recall curves", "recall", "precision"))
    return charts


def _bins(raw: Any) -> list[dict[str, float]]:
    out = []
    for item in _list(raw):
        b = _dict(item)
        score, rate = _number(b.get("mean_score")), _number(b.get("positive_rate"))
        count = _number(b.get("count"))
        if score is not None and rate is not None and (count is None or count > 0):
            out.append({"bin": _number(b.get("bin")) or 0.0, "count": count or 0.0,
                        "mean_score": score, "positive_rate": rate})
    return out


def _reliability_chart(metrics: dict[str, Any], best: str | None, names: Sequence[str],
                       baselines: set[str]) -> tuple[str | None, Markup | None]:
    reliability = _dict(metrics.get("reliability"))
    order = ([best] if best else []) + [n for n in names if n not in baselines and n != best]
    for name in order:
        tables = _dict(reliability.get(name))
        before, after = _bins(tables.get("before")), _bins(tables.get("after"))
        if not (before or after):
            continue
        top_value = max((max(b["mean_score"], b["positive_rate"]) for b in before + after),
                        default=1.0)
        top = min(1.0, axis_ticks(0.0, max(top_value, 1e-6), 5)[-1])
        lines = []
        for label, bins, color, hollow in (("before calibration", before, COLORS["neutral"], True),
                                           ("after calibration", after, COLORS["primary"], False)):
            if not bins:
                continue
            tips = [f"{label}: {fmt_int(b['count'])} rows, mean score {_fmt(b['mean_score'])}, "
                    f"positive rate {_fmt(b['positive_rate'])}" for b in bins]
            lines.append(Line(label, [b["mean_score"] for b in bins],
                              [b["positive_rate"] for b in bins], color, dashed=hollow,
                              markers=True, hollow=hollow, sizes=[b["count"] for b in bins],
                              tips=tips))
        chart = xy_chart(lines, f"Reliability of {name}: observed positive rate against mean "
                         "score per bin", "mean predicted score", "observed positive rate",
                         (0.0, top), (0.0, top), diagonal="perfectly calibrated")
        return name, chart
    return None, None


def _period_charts(metrics: dict[str, Any], names: Sequence[str], colors: dict[str, str],
                   baselines: set[str], headline: str) -> list[Markup]:
    per_period = _dict(metrics.get("per_period"))
    rows: dict[str, dict[date, dict[str, Any]]] = {}
    for name in names:
        for item in _list(per_period.get(name)):
            entry = _dict(item)
            day = _day(entry.get("period"))
            if day is not None:
                rows.setdefault(name, {})[day] = entry
    periods = sorted({day for by_day in rows.values() for day in by_day})
    if not periods:
        return []
    order = [headline] if headline in _PERIOD_METRICS else []
    order += [m for m in _PERIOD_METRICS if m not in order]
    charts = []
    for metric in order:
        label = METRIC_LABELS.get(metric, metric)
        lines = []
        for name in names:
            by_day = rows.get(name, {})
            ys = [_number(by_day.get(day, {}).get(metric)) for day in periods]
            if not any(y is not None for y in ys):
                continue
            tips = []
            for day, y in zip(periods, ys, strict=True):
                entry = by_day.get(day, {})
                tips.append(f"{name}, period of {day.isoformat()}: {label} {_fmt(y)} "
                            f"({fmt_int(entry.get('rows'))} rows, "
                            f"{fmt_int(entry.get('positives'))} positives)")
            lines.append(_line(name, colors, baselines, [], ys, tips=tips))
        if lines:
            charts.append(period_chart(periods, lines, f"{label} per period", label))
    return charts


# --- tables ------------------------------------------------------------------------------------

def _splits(raw: Any) -> tuple[list[dict[str, Any]], str | None]:
    splits = _dict(raw)
    names = [s for s in _SPLITS if s in splits]
    names += [s for s, v in splits.items() if s not in _SPLITS and isinstance(v, dict)]
    rows = []
    for name in names:
        info = _dict(splits.get(name))
        n, positives = _number(info.get("rows")), _number(info.get("positives"))
        rate = positives / n if n and positives is not None else None
        rows.append({"name": name, "start": _when(info.get("start")),
                     "end": _when(info.get("end")), "rows": n, "positives": positives,
                     "rate": fmt_pct(rate, 2)})
    embargo = splits.get("embargo")
    return rows, (fmt_duration(embargo) if embargo not in (None, "") else None)


def _verdicts(raw: Any) -> list[dict[str, Any]]:
    out = []
    for item in _list(raw):
        v = _dict(item)
        if not v:
            continue
        diff = _dict(v.get("difference"))
        word = str(v.get("verdict") or "–")
        metric = str(v.get("metric") or "")
        out.append({
            "candidate": str(v.get("candidate") or "–"), "baseline": str(v.get("baseline") or "–"),
            "metric": metric, "label": METRIC_LABELS.get(metric, metric),
            "split": str(v.get("split") or ""),
            "difference": _with_interval({"d": diff.get("value"), "d_low": diff.get("low"),
                                          "d_high": diff.get("high")}, "d", signed=True),
            "verdict": word, "badge": _VERDICT_BADGE.get(word, "na"),
        })
    return out


def _verdict_summary(verdicts: Sequence[dict[str, Any]], names: Sequence[str],
                     baselines: set[str]) -> list[dict[str, Any]]:
    out = []
    for name in names:
        if name in baselines:
            continue
        own = [v for v in verdicts if v["candidate"] == name]
        if own:
            out.append({"name": name, "beats": sum(v["verdict"] == "beats" for v in own),
                        "ties": sum(v["verdict"] == "ties" for v in own),
                        "loses": sum(v["verdict"] == "loses" for v in own), "total": len(own)})
    return out


def _calibration(candidates: dict[str, Any], names: Sequence[str]) -> list[dict[str, Any]]:
    out = []
    for name in names:
        cal = _dict(_dict(candidates.get(name)).get("calibration"))
        if not cal:
            continue
        before, after = _number(cal.get("ece_before")), _number(cal.get("ece_after"))
        improved = None if before is None or after is None else after <= before
        out.append({"name": name, "method": str(cal.get("method") or "–"),
                    "before": _fmt(before), "after": _fmt(after), "improved": improved})
    return out


def _backtest(raw: Any, names: Sequence[str]) -> dict[str, Any] | None:
    backtest = _dict(raw)
    folds = [_dict(f) for f in _list(backtest.get("folds")) if isinstance(f, dict)]
    summary = _dict(backtest.get("summary"))
    if not folds and not summary:
        return None
    present = [n for n in names
               if n in summary or any(n in _dict(f.get("candidates")) for f in folds)]
    rows = []
    for i, fold in enumerate(folds, start=1):
        scores = _dict(fold.get("candidates"))
        rows.append({
            "fold": fold.get("fold", i),
            "train": f"{_when(fold.get('train_start'))} – {_when(fold.get('train_end'))}",
            "test": f"{_when(fold.get('test_start'))} – {_when(fold.get('test_end'))}",
            "cells": [(_fmt(_dict(scores.get(n)).get("roc_auc")),
                       _fmt(_dict(scores.get(n)).get("average_precision"))) for n in present],
        })

    def mean_std(info: dict[str, Any], metric: str) -> str:
        mean, std = info.get(f"{metric}_mean"), _number(info.get(f"{metric}_std"))
        return _fmt(mean) + ("" if std is None else f" ± {_fmt(std)}")

    totals = [(mean_std(_dict(summary.get(n)), "roc_auc"),
               mean_std(_dict(summary.get(n)), "average_precision")) for n in present]
    return {"names": present, "rows": rows,
            "summary": totals if any(n in summary for n in present) else None}


# --- the section -------------------------------------------------------------------------------

_EVALUATION = """
<p class="lead">Run <code>{{ run_id }}</code>
{%- if created_at != '–' %}, trained {{ created_at }}{% endif %}
{%- if seed is not none %}, seed {{ seed }}{% endif %}. Headline metric:
<strong>{{ headline_label }}</strong>{% if best %}; best model <strong>{{ best }}</strong>
{%- endif %}.
{% if runs > 1 %}<span class="muted">{{ runs }} runs in the workspace;
<code>valuechain runs</code> lists them.</span>{% endif %}</p>
{% if stale %}<p class="note warn">This run was trained on an earlier version of the spec
(hash <code>{{ spec_hash }}</code>; the spec now hashes to <code>{{ current }}</code>). Run
<code>valuechain train</code> again to evaluate the current spec.</p>{% endif %}
{% if summary %}<p class="verdict">
{% for s in summary %}<strong>{{ s.name }}</strong>
  {{ badge(s.beats == s.total, 'beats every baseline',
           'beats ' ~ s.beats ~ ' of ' ~ s.total ~ ' comparisons') }}
  {%- if s.loses %} <span class="badge fail">loses {{ s.loses }}</span>{% endif %}
  {{- ';' if not loop.last else '.' }}
{% endfor %}</p>{% endif %}

{% if gap %}
<h3>Random split vs split by time</h3>
<div class="tiles">
  <div class="tile"><div class="value">{{ gap.time }}</div>
    <div class="label">ROC AUC, split by time{% if gap.candidate %} ({{ gap.candidate }})
    {%- endif %}</div></div>
  <div class="tile"><div class="value">{{ gap.random }}</div>
    <div class="label">ROC AUC, random split</div></div>
  <div class="tile{{ ' accent' if gap.warn }}"><div class="value">{{ gap.gap }}</div>
    <div class="label">gap (random − time)</div></div>
</div>
{% if gap.explanation %}<p class="note{{ ' warn' if gap.warn }}">{{ gap.explanation }}</p>
{% endif %}
<p class="muted small">The time split is the honest number: it trains on the past and scores a
later period, as production will. A random split lets the model see the same days, entities
and campaigns on both sides, so it usually scores higher.</p>
{% endif %}

{% if splits %}
<h3>Periods</h3>
<div class="scroll"><table class="data">
  <thead><tr><th>Period</th><th>Start</th><th>End</th><th class="num">Rows</th>
    <th class="num">Positives</th><th class="num">Positive rate</th></tr></thead>
  <tbody>
  {% for s in splits %}
    <tr><th>{{ s.name }}</th><td class="nowrap">{{ s.start }}</td><td class="nowrap">{{ s.end }}</td>
      <td class="num">{{ s.rows|thousands }}</td><td class="num">{{ s.positives|thousands }}</td>
      <td class="num">{{ s.rate }}</td></tr>
  {% endfor %}
  </tbody>
</table></div>
{% endif %}
{% if embargo %}<p class="muted small">Embargo of <strong>{{ embargo }}</strong> between
consecutive periods: rows whose outcome window overlaps the next period are left out, so no
label from the evaluated period leaks into training.</p>{% endif %}

{% for t in tables %}
<h3>Candidates on the {{ t.split }} period</h3>
<div class="scroll"><table class="data candidates">
  <thead><tr><th>Metric</th>{% for name in names %}<th class="num">{{ name }}
    {%- if name in baselines %} <span class="muted">(baseline)</span>{% endif %}</th>
    {%- endfor %}</tr></thead>
  <tbody>
  {% for row in t.rows %}
    <tr><th>{{ row.label }} <span class="muted" title="{{ 'higher' if row.arrow == '↑'
      else 'lower' }} is better">{{ row.arrow }}</span>
      {%- if row.headline %} <span class="badge na">headline</span>{% endif %}</th>
    {% for c in row.cells %}<td class="num">{% if c.best %}<strong>{{ c.text }}</strong>
      {%- else %}{{ c.text }}{% endif %}</td>{% endfor %}</tr>
  {% endfor %}
  </tbody>
</table></div>
{% endfor %}
{% if tables %}<p class="muted small">Value [low, high]: the point estimate and its
block-bootstrap interval (resampling whole days). The best value of each metric is in bold;
↑ higher is better, ↓ lower is better.</p>{% endif %}

{% if verdicts %}
<h3>Candidates against baselines</h3>
<div class="scroll"><table class="data verdicts">
  <thead><tr><th>Candidate</th><th>Baseline</th><th>Metric</th>
    {%- if has_split %}<th>Period</th>{% endif %}
    <th class="num">Difference [low, high]</th><th>Verdict</th></tr></thead>
  <tbody>
  {% for v in verdicts %}
    <tr><th>{{ v.candidate }}</th><td>{{ v.baseline }}</td><td>{{ v.label }}</td>
      {%- if has_split %}<td>{{ v.split }}</td>{% endif %}
      <td class="num">{{ v.difference }}</td>
      <td><span class="badge {{ v.badge }}">{{ v.verdict }}</span></td></tr>
  {% endfor %}
  </tbody>
</table></div>
<p class="muted small">The difference is candidate minus baseline on the same bootstrap
resamples. <em>beats</em>: the whole interval is on the better side of zero; <em>loses</em>: all
of it on the worse side; <em>ties</em>: the interval contains zero.</p>
{% endif %}

{% if curves %}
<h3>ROC and precision-recall curves</h3>
<div style="display:grid;grid-template-columns:repeat(auto-fit,minmax(340px,1fr));gap:16px">
{% for chart in curves %}<div>{{ chart }}</div>{% endfor %}
</div>
<p class="muted small">Dashed lines are baselines. With rare positives the precision-recall
curve is the one to read: ROC stays flattering when negatives vastly outnumber positives.</p>
{% endif %}

{% if calibration or reliability %}
<h3>Calibration</h3>
{% if calibration %}
<div class="scroll"><table class="data calibration">
  <thead><tr><th>Candidate</th><th>Method</th><th class="num">ECE before</th>
    <th class="num">ECE after</th><th></th></tr></thead>
  <tbody>
  {% for c in calibration %}
    <tr><th>{{ c.name }}</th><td>{{ c.method }}</td><td class="num">{{ c.before }}</td>
      <td class="num">{{ c.after }}</td>
      <td>{{ badge(c.improved, 'improved', 'worse', 'n/a') }}</td></tr>
  {% endfor %}
  </tbody>
</table></div>
<p class="muted small">Expected calibration error: the average gap between predicted score
and observed positive rate, weighted by rows per score bin. Calibrators are fitted on the
validation period.</p>
{% endif %}
{% if reliability %}
<div style="max-width:560px">{{ reliability }}</div>
<p class="muted small">Reliability of <strong>{{ reliability_of }}</strong>: each point is a score
bin (area by rows); on the diagonal, a predicted probability means what it says.</p>
{% endif %}
{% endif %}

{% if periods %}
<h3>Metrics per period</h3>
{% for chart in periods %}<div style="max-width:920px">{{ chart }}</div>{% endfor %}
<p class="muted small">One line per candidate, dashed for baselines; hover a point for the
rows and positives of that period. A falling line is drift: the model ages.</p>
{% endif %}

{% if backtest %}
<h3>Rolling-origin backtest</h3>
<div class="scroll"><table class="data backtest">
  <thead><tr><th>Fold</th><th>Train</th><th>Test</th>
    {% for name in backtest.names %}<th class="num">{{ name }} AUC</th>
    <th class="num">{{ name }} AP</th>{% endfor %}</tr></thead>
  <tbody>
  {% for row in backtest.rows %}
    <tr><th>{{ row.fold }}</th><td class="nowrap">{{ row.train }}</td>
      <td class="nowrap">{{ row.test }}</td>
      {% for auc, ap in row.cells %}<td class="num">{{ auc }}</td><td class="num">{{ ap }}</td>
      {% endfor %}</tr>
  {% endfor %}
  {% if backtest.summary %}
    <tr><th colspan="3">mean ± std</th>
      {% for auc, ap in backtest.summary %}<td class="num"><strong>{{ auc }}</strong></td>
      <td class="num"><strong>{{ ap }}</strong></td>{% endfor %}</tr>
  {% endif %}
  </tbody>
</table></div>
<p class="muted small">Each fold trains on the periods before its test window and steps
forward in time; the spread across folds shows how much a single test period can mislead.</p>
{% endif %}

{% if details %}
<h3>Candidates</h3>
<div class="scroll"><table class="data">
  <thead><tr><th>Candidate</th><th>Facts</th></tr></thead>
  <tbody>
  {% for name, facts in details %}
    <tr><th>{{ name }}{% if name in baselines %} <span class="muted">(baseline)</span>
      {%- endif %}</th>
      <td class="small">{% for key, value in facts %}<span class="nowrap"><span class="muted">
      {{- key }}</span> <code>{{ value }}</code></span>{{ '; ' if not loop.last }}
      {% endfor %}</td></tr>
  {% endfor %}
  </tbody>
</table></div>
{% endif %}
"""


def _gap(raw: Any) -> dict[str, Any] | None:
    info = _dict(raw)
    if not info:
        return None
    time, random = _number(info.get("auc_time_split")), _number(info.get("auc_random_split"))
    gap = _number(info.get("gap"))
    if gap is None and time is not None and random is not None:
        gap = random - time
    return {"candidate": str(info.get("candidate") or ""), "time": _fmt(time),
            "random": _fmt(random), "gap": _fmt(gap, signed=True),
            "warn": gap is not None and gap >= GAP_WARNING,
            "explanation": code_spans(str(info.get("explanation") or ""))}


@register_section(order=70)
def evaluation_section(loaded: LoadedSpec, workspace: Path) -> Section:
    """The latest run's periods, candidates, verdicts, curves, calibration and backtest."""
    found = latest_run(workspace)
    if found is None:
        return unavailable("evaluation", TITLE, TRAIN,
                           "No model has been trained and evaluated yet.")
    run_dir, metrics = found
    headline = str(metrics.get("headline_metric") or "average_precision")
    names = _candidate_names(metrics)
    baselines = _baselines(metrics, names)
    best = _best(metrics, names, baselines, headline)
    colors = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}
    candidates = _dict(metrics.get("candidates"))
    verdicts = _verdicts(metrics.get("verdicts"))
    splits, embargo = _splits(metrics.get("splits"))
    reliability_of, reliability = _reliability_chart(metrics, best, names, baselines)
    spec_hash = str(metrics.get("spec_hash") or "")
    stale = bool(spec_hash) and spec_hash != loaded.hash
    seed = metrics.get("seed")
    html = fragment(
        _EVALUATION,
        run_id=str(metrics.get("run_id") or run_dir.name), created_at=_when(
            metrics.get("created_at")), seed=seed if isinstance(seed, int | str) else None,
        headline_label=METRIC_LABELS.get(headline, headline), best=best,
        runs=_count_runs(workspace), stale=stale, spec_hash=spec_hash, current=loaded.hash,
        summary=_verdict_summary(verdicts, names, baselines),
        gap=_gap(metrics.get("random_vs_time")), splits=splits, embargo=embargo,
        names=[n for n in names if n in candidates], baselines=baselines,
        tables=_candidate_tables(candidates, [n for n in names if n in candidates], headline),
        verdicts=verdicts, has_split=any(v["split"] for v in verdicts),
        curves=_curve_charts(metrics, names, colors, baselines),
        calibration=_calibration(candidates, names), reliability=reliability,
        reliability_of=reliability_of,
        periods=_period_charts(metrics, names, colors, baselines, headline),
        backtest=_backtest(metrics.get("backtest"), names),
        details=[(n, facts) for n in names if (facts := _describe(candidates.get(n)))],
    )
    best_lost = any(v["candidate"] == best and v["verdict"] != "beats"
                    and v["metric"] in (headline, "") for v in verdicts)
    return Section("evaluation", TITLE, html, "warn" if stale or best_lost else "ok")
