"""Report section from ``valuechain train``: the evaluation of the latest run.

Reads ``<workspace>/runs/<run_id>/metrics.json`` of the latest run
(:func:`valuechain.train.runs.latest_run`) through :meth:`valuechain.train.TrainResult.load`
(validated), and renders its plain parts strictly (:class:`~valuechain.report.record.Record`:
a missing or renamed key fails the section instead of showing an en dash; a ``null`` metric is
shown as undefined). It opens with the run and the frame it was trained on, flagged when that
is not the current frame, and shows:

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

from valuechain.errors import DataError
from valuechain.evaluate import RANDOM_TIME_GAP
from valuechain.evaluate.metrics import GREATER_IS_BETTER
from valuechain.report.fmt import fmt_duration, fmt_int, fmt_num, fmt_pct
from valuechain.report.provenance import origin_note, provenance
from valuechain.report.record import Record
from valuechain.report.section import (
    Section,
    code_spans,
    fragment,
    register_section,
    unavailable,
)
from valuechain.report.svg import COLORS, PALETTE, Line, axis_ticks, period_chart, xy_chart
from valuechain.spec.loader import LoadedSpec
from valuechain.train import TrainResult
from valuechain.train.runs import latest_run

__all__ = ["METRIC_LABELS", "evaluation_section", "read_run"]

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
    "expected_cost": "Cost per decision, decline at 0.5",
    "card_precision_at_k": "Card precision at k",
}
_BASELINES = frozenset({"prior", "rules"})
_SPLITS = ("train", "validation", "test")
_VERDICT_BADGE = {"beats": "pass", "ties": "na", "loses": "fail"}
_PERIOD_METRICS = ("average_precision", "roc_auc", "precision_at_capacity")
_SUFFIXES = ("_low", "_high")


# --- reading the run ---------------------------------------------------------------------------

def read_run(workspace: Path, root: Path | None = None) -> tuple[Path, Record] | None:
    """The latest run's directory and its metrics, or ``None`` before the first run.

    The latest run is :func:`valuechain.train.runs.latest_run`'s (the rule ``decide`` uses);
    its ``metrics.json`` is read and validated by :meth:`valuechain.train.TrainResult.load`
    (a damaged or incomplete file is a ``DataError`` naming it), then rendered through a
    :class:`~valuechain.report.record.Record` so the parts the typed result keeps as plain
    mappings (curves, periods, reliability, backtest) are read strictly too.
    """
    run_dir = latest_run(workspace / "runs", root=root)
    if run_dir is None:
        return None
    result = TrainResult.load(run_dir, root=root)
    return run_dir, Record(result.to_metrics(), f"runs/{run_dir.name}/metrics.json", TRAIN)


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


def _with_interval(values: Record, name: str, signed: bool = False) -> str:
    """``value [low, high]``, or the value alone when the run recorded no interval for it."""
    value = _fmt(values.number(name), signed)
    if f"{name}_low" not in values and f"{name}_high" not in values:
        return value
    low, high = values.number(f"{name}_low"), values.number(f"{name}_high")
    if low is None or high is None:
        return value
    point = values.number(name)
    outside = point is not None and not low <= point <= high
    return f"{value}{OUTSIDE if outside else ''} [{_fmt(low, signed)}, {_fmt(high, signed)}]"


#: Marks a point estimate outside its own bootstrap interval (see the table caption).
OUTSIDE = " †"


def _choice(candidates: Record, listed: Sequence[str], best: str, headline: str,
            baselines: set[str]) -> dict[str, Any] | None:
    """Why ``best``: its headline metric on validation, and the cost per decision of each
    model (decline at 0.5, validation and test), the cheapest named."""
    models = [n for n in listed if n not in baselines]
    rows = []
    for name in models:
        val, test = candidates.sub(name).sub("validation"), candidates.sub(name).sub("test")
        rows.append({"name": name, "headline": val.get(headline),
                     "cost_val": val.get("expected_cost"), "cost_test": test.get("expected_cost")})
    costed = [r for r in rows if isinstance(r["cost_val"], int | float)]
    cheapest = min(costed, key=lambda r: r["cost_val"])["name"] if costed else None
    return {"rows": rows, "cheapest": cheapest, "best": best,
            "headline": METRIC_LABELS.get(headline, headline)} if rows else None


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


def _floats(record: Record, key: str) -> list[float | None]:
    """A required list of numbers (``null`` kept as ``None``)."""
    values = record.sequence(key)
    out: list[float | None] = []
    for i, value in enumerate(values):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
            raise DataError(f"{record.file}: key `{record.at}.{key}[{i}]` should be a number, "
                            f"not {value!r:.40}. Run `{record.command}` to write it again.")
        out.append(_number(value))
    return out


# --- candidates --------------------------------------------------------------------------------

def _candidate_names(metrics: Record) -> list[str]:
    """Candidates in the run's order, then any only named by curves, periods or backtest."""
    names: list[str] = []

    def add(keys: Iterable[Any]) -> None:
        for key in keys:
            if isinstance(key, str) and key not in names:
                names.append(key)

    add(metrics.sub("candidates").data)
    for key in ("curves", "per_period", "reliability"):
        add(metrics.sub(key).data)
    backtest = metrics.optional("backtest")
    if backtest is not None:
        for fold in backtest.subs("folds"):
            add(fold.sub("candidates").data)
    return names


def _baselines(metrics: Record, names: Sequence[str]) -> set[str]:
    out = {v.text("baseline") for v in metrics.subs("verdicts")}
    for name, info in metrics.sub("candidates").items():
        describe = info.sub("describe")
        if describe.get("baseline") is True or describe.get("kind") == "baseline":
            out.add(name)
    return {name for name in names if name in out or name in _BASELINES}


def _better(metric: str) -> bool:
    return GREATER_IS_BETTER.get(metric, True)


def _best(metrics: Record, names: Sequence[str]) -> str:
    """The candidate the run chose (on validation)."""
    best = metrics.text("best_candidate")
    if best not in names:
        raise DataError(f"{metrics.file}: `best_candidate` is '{best}', which is not one of "
                        f"its candidates ({', '.join(names)}). Run `{TRAIN}` to write it again.")
    return best


def _metric_names(candidates: Record) -> list[str]:
    """Known metrics recorded by any candidate (in display order), then unknown ones."""
    seen: list[str] = []
    for _, info in candidates.items():
        for split in ("validation", "test"):
            for key, value in info.sub(split).data.items():
                suffix = next((s for s in _SUFFIXES if key.endswith(s)), "")
                base = key.removesuffix(suffix) if suffix else key
                numeric = value is None or (isinstance(value, int | float)
                                            and not isinstance(value, bool))
                if (suffix or numeric) and base not in seen:  # NaN: recorded, undefined
                    seen.append(base)
    known = [m for m in METRIC_LABELS if m in seen]
    return known + sorted(m for m in seen if m not in METRIC_LABELS)


def _candidate_tables(candidates: Record, names: Sequence[str],
                      headline: str) -> list[dict[str, Any]]:
    metric_names = _metric_names(candidates)
    tables = []
    for split in ("validation", "test"):
        values = {n: candidates.sub(n).sub(split) for n in names}
        rows = []
        for metric in metric_names:
            recorded = {n: values[n].number(metric) if metric in values[n] else None
                        for n in names}  # a metric some candidates do not define
            known = [v for v in recorded.values() if v is not None]
            top = (max if _better(metric) else min)(known) if len(known) > 1 else None
            rows.append({
                "metric": metric, "label": METRIC_LABELS.get(metric, metric.replace("_", " ")),
                "arrow": "↑" if _better(metric) else "↓", "headline": metric == headline,
                "cells": [{"text": _with_interval(values[n], metric) if metric in values[n]
                           else "n/a", "key": f"{split}-{n}-{metric}",
                           "value": recorded[n],
                           "best": top is not None and recorded[n] == top}
                          for n in names],
            })
        tables.append({"split": split, "rows": rows})
    return tables


def _describe(info: Record) -> list[tuple[str, str]]:
    """Scalar facts of a candidate's ``describe`` (and of its ``params``)."""
    describe = info.sub("describe")
    flat: list[tuple[str, Any]] = [(k, v) for k, v in describe.data.items() if k != "candidate"]
    params = describe.get("params")
    if isinstance(params, dict):
        flat += [(f"params.{k}", v) for k, v in params.items()]
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


#: Curves with at most this many points are drawn with a marker on each: their points are
#: the only operating points there are (a baseline's few distinct scores), not a sample.
MARKED_POINTS = 12


def _xy(record: Record, x: str, y: str) -> tuple[list[float], list[float | None]]:
    """A curve's points; a null ``x`` is a damaged curve (a null ``y`` breaks the line)."""
    xs, ys = _floats(record, x), _floats(record, y)
    if len(xs) != len(ys) or any(v is None for v in xs):
        raise DataError(f"{record.file}: `{record.at}` holds {len(xs)} `{x}` and {len(ys)} "
                        f"`{y}` values (or a null `{x}`); run `{record.command}` again.")
    return [float(v) for v in xs if v is not None], ys


def _curve_charts(metrics: Record, names: Sequence[str], colors: dict[str, str],
                  baselines: set[str]) -> list[Markup]:
    """ROC and PR curves exactly as the run recorded them: points joined in order, no
    interpolation added; few-point curves marked point by point (a single PR point, the
    curve of a constant score, is a dot)."""
    curves = metrics.sub("curves")
    roc: list[Line] = []
    pr: list[Line] = []
    for name in names:
        if name not in curves:
            continue
        curve = curves.sub(name)
        for chart, part, x, y in ((roc, "roc", "fpr", "tpr"), (pr, "pr", "recall", "precision")):
            xs, ys = _xy(curve.sub(part), x, y)
            if xs:
                chart.append(_line(name, colors, baselines, xs, ys,
                                   markers=len(xs) <= MARKED_POINTS))
    charts = []
    if roc:
        charts.append(xy_chart(roc, "ROC curves: true positive rate against false positive rate",
                               "false positive rate", "true positive rate", diagonal="chance"))
    if pr:
        charts.append(xy_chart(pr, "Precision-recall curves", "recall", "precision"))
    return charts


def _bins(tables: Record, key: str) -> list[dict[str, float]]:
    """The non-empty bins of a reliability table (empty bins have null means)."""
    out = []
    for b in tables.subs(key):
        count = b.number("count")
        score, rate = b.number("mean_score"), b.number("positive_rate")
        if count and score is not None and rate is not None:
            out.append({"bin": b.number("bin") or 0.0, "count": count,
                        "mean_score": score, "positive_rate": rate})
    return out


def _reliability_chart(metrics: Record, best: str, names: Sequence[str],
                       baselines: set[str]) -> tuple[str | None, Markup | None]:
    reliability = metrics.sub("reliability")
    order = [best] + [n for n in names if n not in baselines and n != best]
    for name in order:
        if name not in reliability:
            continue
        tables = reliability.sub(name)
        before, after = _bins(tables, "before"), _bins(tables, "after")
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


def _period_charts(metrics: Record, names: Sequence[str], colors: dict[str, str],
                   baselines: set[str], headline: str) -> list[Markup]:
    per_period = metrics.sub("per_period")
    rows: dict[str, dict[date, Record]] = {}
    for name in names:
        if name not in per_period:
            continue
        for entry in per_period.subs(name):
            day = _day(entry.text("period"))
            if day is None:
                raise DataError(f"{entry.file}: `{entry.at}.period` is "
                                f"'{entry['period']}', not a date; run `{TRAIN}` again.")
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
            ys = [by_day[day].number(metric) if day in by_day and metric in by_day[day]
                  else None for day in periods]
            if not any(y is not None for y in ys):
                continue
            tips = []
            for day, y in zip(periods, ys, strict=True):
                point = by_day.get(day)
                counts = ("" if point is None else f" ({fmt_int(point.integer('rows'))} rows, "
                          f"{fmt_int(point.integer('positives'))} positives)")
                tips.append(f"{name}, period of {day.isoformat()}: {label} {_fmt(y)}{counts}")
            lines.append(_line(name, colors, baselines, [], ys, tips=tips))
        if lines:
            charts.append(period_chart(periods, lines, f"{label} per period", label))
    return charts


# --- tables ------------------------------------------------------------------------------------

def _splits(splits: Record) -> tuple[list[dict[str, Any]], str]:
    """The train, validation and test periods (an empty period records only its counts)."""
    rows = []
    for name in _SPLITS:
        info = splits.sub(name)
        n, positives = info.integer("rows"), info.integer("positives")
        rows.append({"name": name, "start": _when(info.get("start")),
                     "end": _when(info.get("end")), "rows": n, "positives": positives,
                     "rate": fmt_pct(positives / n if n else None, 2)})
    return rows, fmt_duration(splits.text("embargo"))


def _verdicts(metrics: Record) -> list[dict[str, Any]]:
    out = []
    for v in metrics.subs("verdicts"):
        diff = v.sub("difference")
        word = v.text("verdict")
        metric = v.text("metric")
        interval = Record({"d": diff["value"], "d_low": diff["low"], "d_high": diff["high"]},
                          v.file, v.command, f"{v.at}.difference")
        out.append({
            "candidate": v.text("candidate"), "baseline": v.text("baseline"),
            "metric": metric, "label": METRIC_LABELS.get(metric, metric),
            "split": str(v.get("split") or ""),
            "difference": _with_interval(interval, "d", signed=True),
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


def _calibration(candidates: Record, names: Sequence[str]) -> list[dict[str, Any]]:
    out = []
    for name in names:
        if name not in candidates:
            continue
        cal = candidates.sub(name).sub("calibration")
        before, after = cal.number("ece_before"), cal.number("ece_after")
        improved = None if before is None or after is None else after <= before
        out.append({"name": name, "method": cal.text("method"),
                    "before": _fmt(before), "after": _fmt(after), "improved": improved})
    return out


def _backtest(backtest: Record | None, names: Sequence[str]) -> dict[str, Any] | None:
    if backtest is None:
        return None
    folds = backtest.subs("folds")
    summary = backtest.sub("summary")
    if not folds:
        return None
    present = [n for n in names
               if n in summary or any(n in f.sub("candidates") for f in folds)]
    rows = []
    for fold in folds:
        scores = fold.sub("candidates")
        cells = []
        for n in present:
            own = scores.optional(n)
            cells.append(("n/a", "n/a") if own is None else
                         (_fmt(own.number("roc_auc")), _fmt(own.number("average_precision"))))
        rows.append({
            "fold": fold.integer("fold"),
            "train": f"{_when(fold.text('train_start'))} – {_when(fold.text('train_end'))}",
            "test": f"{_when(fold.text('test_start'))} – {_when(fold.text('test_end'))}",
            "cells": cells,
        })

    def mean_std(name: str, metric: str) -> str:
        if name not in summary:
            return "n/a"
        info = summary.sub(name)
        mean, std = info.number(f"{metric}_mean"), info.number(f"{metric}_std")
        return _fmt(mean) + ("" if std is None else f" ± {_fmt(std)}")

    totals = [(mean_std(n, "roc_auc"), mean_std(n, "average_precision")) for n in present]
    return {"names": present, "rows": rows,
            "summary": totals if any(n in summary for n in present) else None}


# --- the section -------------------------------------------------------------------------------

_EVALUATION = """
{{ origin }}
<p class="lead">Run <code data-key="train-run-id">{{ run_id }}</code>, trained {{ created_at }},
seed {{ seed }}. Headline metric: <strong>{{ headline_label }}</strong>; best model
<strong data-key="train-best">{{ best }}</strong> (chosen on validation): on test, ROC AUC
<strong data-key="train-best-test-auc" data-value="{{ '' if best_auc is none else best_auc }}">{{ fmt(best_auc) }}</strong>,
average precision
<strong data-key="train-best-test-ap" data-value="{{ '' if best_ap is none else best_ap }}">{{ fmt(best_ap) }}</strong>.
{% if runs > 1 %}<span class="muted">{{ runs }} runs in the workspace;
<code>valuechain runs</code> lists them.</span>{% endif %}</p>
{% if summary %}<p class="verdict">
{% for s in summary %}<strong>{{ s.name }}</strong>
  {{ badge(s.beats == s.total, 'beats every baseline',
           'beats ' ~ s.beats ~ ' of ' ~ s.total ~ ' comparisons') }}
  {%- if s.loses %} <span class="badge fail">loses {{ s.loses }}</span>{% endif %}
  {{- ';' if not loop.last else '.' }}
{% endfor %}</p>{% endif %}

{% if choice %}
<h3>Why {{ choice.best }}</h3>
<p data-key="train-choice">The run picks the model with the best <strong>{{ choice.headline }}</strong>
on the validation period: a ranking measure, independent of the costs. In money, each model's cost
per decision when every score of 0.5 or more is declined (no review, no capacity;
<code>value.costs</code>):
{% for r in choice.rows %}<strong>{{ r.name }}</strong> {{ fmt(r.headline) }} {{ choice.headline }},
{{ fmt(r.cost_val) }} validation / {{ fmt(r.cost_test) }} test{{ "; " if not loop.last else "." }}
{% endfor %}
{% if choice.cheapest and choice.cheapest != choice.best %}By that cost
<strong>{{ choice.cheapest }}</strong> is cheaper; the decision stage prices only
{{ choice.best }}'s calibrated scores under the real three-band policy with review and capacity
(the <a href="#decide">Decision policy</a> section), where the ranking quality AP measures is what
fills the review queue with frauds. To choose by the spec's costs instead, compare the models with
<code>valuechain decide</code> on each.{% else %}{{ choice.best }} is also the cheapest by that cost.{% endif %}</p>
{% endif %}

<h3>Random split vs split by time: how optimistic a random split is for {{ gap.candidate }}</h3>
<div class="tiles">
  <div class="tile"><div class="value">{{ gap.time }}</div>
    <div class="label">ROC AUC, split by time ({{ gap.candidate }})</div></div>
  <div class="tile"><div class="value">{{ gap.random }}</div>
    <div class="label">ROC AUC, random split</div></div>
  <div class="tile{{ ' accent' if gap.warn }}"><div class="value">{{ gap.gap }}</div>
    <div class="label">gap (random − time)</div></div>
</div>
{% if gap.explanation %}<p class="note{{ ' warn' if gap.warn }}">{{ gap.explanation }}</p>
{% endif %}
<p class="muted small">The time split is the honest number: it trains on the past and scores a
later period, as production will. A random split lets the model see the same days, entities
and campaigns on both sides, so it usually scores higher. This measures the <em>chosen
candidate</em> on the run's periods; the Leakage audit's comparison is a different
measurement (a quick model on every labelled row, split 70/30), used to detect leaks, so its
numbers differ.</p>

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
<p class="muted small">Embargo of <strong>{{ embargo }}</strong> between
consecutive periods: rows whose outcome window overlaps the next period are left out, so no
label from the evaluated period leaks into training.</p>

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
    {% for c in row.cells %}<td class="num" data-key="{{ c.key }}" data-value="{{ '' if c.value is none else c.value }}">
      {%- if c.best %}<strong>{{ c.text }}</strong>{% else %}{{ c.text }}{% endif %}</td>
    {%- endfor %}</tr>
  {% endfor %}
  </tbody>
</table></div>
{% endfor %}
{% if tables %}<p class="muted small">Value [low, high]: the point estimate and its
block-bootstrap interval (resampling whole days). The best value of each metric is in bold;
↑ higher is better, ↓ lower is better. <em>Cost per decision, decline at 0.5</em> prices a
simple decline-above-0.5 rule (for <code>rules</code>: decline every flagged payment) with the
spec's costs; the Decision policy section prices today's rule as it works today (flagged
payments go to review, within capacity), so its cost there differs. † the point estimate lies
outside its bootstrap interval: this happens for ECE, whose binned absolute gaps are biased
upward under resampling (a resample's noise only adds to |gap|), so the percentile interval
describes resampled ECE and can sit above a small point estimate. Read the point as the
period's ECE and the interval as its spread.</p>{% endif %}

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


def _gap(info: Record) -> dict[str, Any]:
    time, random = info.number("auc_time_split"), info.number("auc_random_split")
    gap = info.number("gap")
    # the threshold the run judged the gap by (runs before it recorded one: today's)
    recorded = info.number("threshold") if "threshold" in info else None
    threshold = RANDOM_TIME_GAP if recorded is None else recorded
    return {"candidate": info.text("candidate"), "time": _fmt(time),
            "random": _fmt(random), "gap": _fmt(gap, signed=True),
            "warn": gap is not None and gap >= threshold,
            "explanation": code_spans(info.text("explanation"))}


@register_section(order=70, id="evaluation", title=TITLE)
def evaluation_section(loaded: LoadedSpec, workspace: Path) -> Section:
    """The latest run's periods, candidates, verdicts, curves, calibration and backtest."""
    found = read_run(workspace, loaded.root)
    if found is None:
        return unavailable("evaluation", TITLE, TRAIN,
                           "No model has been trained and evaluated yet.")
    _, metrics = found
    headline = metrics.text("headline_metric")
    names = _candidate_names(metrics)
    baselines = _baselines(metrics, names)
    candidates = metrics.sub("candidates")
    listed = [n for n in names if n in candidates]
    best = _best(metrics, listed)
    colors = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}
    verdicts = _verdicts(metrics)
    splits, embargo = _splits(metrics.sub("splits"))
    reliability_of, reliability = _reliability_chart(metrics, best, names, baselines)
    best_test = candidates.sub(best).sub("test")
    html = fragment(
        _EVALUATION,
        origin=origin_note(workspace, loaded.hash, "train"), fmt=_fmt,
        run_id=metrics.text("run_id"), created_at=_when(metrics.text("created_at")),
        seed=metrics.integer("seed"),
        headline_label=METRIC_LABELS.get(headline, headline), best=best,
        best_auc=best_test.number("roc_auc"), best_ap=best_test.number("average_precision"),
        runs=_count_runs(workspace),
        summary=_verdict_summary(verdicts, names, baselines),
        gap=_gap(metrics.sub("random_vs_time")), splits=splits, embargo=embargo,
        names=listed, baselines=baselines,
        tables=_candidate_tables(candidates, listed, headline),
        choice=_choice(candidates, listed, best, headline, baselines),
        verdicts=verdicts, has_split=any(v["split"] for v in verdicts),
        curves=_curve_charts(metrics, names, colors, baselines),
        calibration=_calibration(candidates, names), reliability=reliability,
        reliability_of=reliability_of,
        periods=_period_charts(metrics, names, colors, baselines, headline),
        backtest=_backtest(metrics.optional("backtest"), names),
        details=[(n, facts) for n in listed if (facts := _describe(candidates.sub(n)))],
    )
    best_lost = any(v["candidate"] == best and v["verdict"] != "beats"
                    and v["metric"] in (headline, "") for v in verdicts)
    stale = _mismatched(workspace, loaded.hash)
    return Section("evaluation", TITLE, html, "warn" if stale or best_lost else "ok")


def _mismatched(workspace: Path, spec_hash: str) -> bool:
    try:
        return bool(provenance(workspace, spec_hash).of("train"))
    except DataError:  # shown by the Provenance section and the origin line
        return False
