"""Report section "Forecast": churners per period, forecast vs actual, and the backtest.

Reads ``<workspace>/forecast/forecast.json`` and ``points.parquet`` (written by
``valuechain forecast``, see :mod:`valuechain.forecast.project`). Draws, with the offline
SVG charts of :mod:`valuechain.report.svg`, the actual churners per decision time, each
method's forecast for the origin's own period (step 1) with the sum of probabilities'
exact interval, and the latest origin's forecasts of the pending periods (hollow markers:
their labels are not mature, never drawn as zero); then the backtest table per method. No
card when the forecast has never run.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd
from markupsafe import Markup

from valuechain.forecast.project import read_forecast
from valuechain.report.section import Section, fragment, register_section
from valuechain.report.svg import COLORS, PALETTE, Line, period_chart
from valuechain.spec.loader import LoadedSpec

__all__ = ["forecast_section"]

TITLE = "Forecast"
COMMAND = "valuechain forecast"
#: Periods of history drawn before the first origin.
CONTEXT = 12

_BODY = """
<p data-key="forecast-summary">Churners per {{ s.period }} period (customers active at each
decision time who churn within {{ s.label_horizon }}), {{ s.origins|length }} rolling origins
{{ s.origins[0][:10] }} .. {{ s.origins[-1][:10] }}, horizon {{ s.horizon }}, data as of
{{ as_of[:10] }}, {{ (100 * s.level)|round|int }} % intervals.
{% if stale %}<br><span class="muted">Made from another version of the spec; run
<code>valuechain forecast</code> again.</span>{% endif %}</p>
{{ chart }}
<p class="muted small">Step 1 is the period starting at the origin. The sum of probabilities
(<em>individual</em>) scores the customers active at the origin with a model trained on labels
matured by then; its interval is the exact Poisson-binomial one (customers independent given
their probabilities: it leaves out the model's own error). <em>individual_raw</em> is the same
sum before calibration. Time-series methods see only counts known at the origin.</p>
<h3>Backtest</h3>
<div class="scroll"><table class="data" data-key="forecast-backtest">
<thead><tr><th>Method</th><th>Step</th><th>n</th><th>MAE</th><th>MAPE</th><th>MASE</th>
<th>Bias</th><th>Coverage</th><th>Revision</th></tr></thead><tbody>
{% for m in metrics %}<tr><td>{{ m.method }}</td><td>{{ m.step or 'all' }}</td>
<td>{{ m.n }}</td><td>{{ m.mae|num }}</td><td>{{ pct(m.mape) }}</td><td>{{ m.mase|num }}</td>
<td>{{ pct(m.bias_pct, True) }}</td><td>{{ pct(m.coverage) }}</td>
<td>{{ pct(m.revision_pct) }}</td></tr>
{% endfor %}</tbody></table></div>
<p class="muted small">MASE below 1 beats the typical one-period change of the history;
coverage should be near the interval level; revision is how much the forecast of the same
period moves between consecutive origins (in % of the mean actual).</p>
{% if purchases %}<h3>Repeat purchases per period</h3>
<p class="muted small">BG/NBD fitted on the purchases before each origin, beside the
time-series methods; origins {{ purchases.origins[0][:10] }} ..
{{ purchases.origins[-1][:10] }}.</p>
<div class="scroll"><table class="data" data-key="forecast-purchases">
<thead><tr><th>Method</th><th>n</th><th>MAE</th><th>MAPE</th><th>MASE</th><th>Bias</th>
<th>Coverage</th><th>Revision</th></tr></thead><tbody>
{% for m in purchases.metrics if m.step == 0 %}<tr><td>{{ m.method }}</td><td>{{ m.n }}</td>
<td>{{ m.mae|num }}</td><td>{{ pct(m.mape) }}</td><td>{{ m.mase|num }}</td>
<td>{{ pct(m.bias_pct, True) }}</td><td>{{ pct(m.coverage) }}</td>
<td>{{ pct(m.revision_pct) }}</td></tr>
{% endfor %}</tbody></table></div>{% endif %}
{% if individual %}<h3>Sum of individual probabilities</h3>
<div class="scroll"><table class="data" data-key="forecast-individual">
<thead><tr><th>Origin</th><th>Customers</th><th>Calibrated [interval]</th>
<th>Raw [interval]</th><th>Actual</th><th>ROC AUC</th></tr></thead><tbody>
{% for i in individual %}<tr><td>{{ i.origin[:10] }}</td><td>{{ i.customers|thousands }}</td>
<td>{{ i.expected|num }} [{{ i.low|int }}, {{ i.high|int }}]</td>
<td>{{ i.raw_expected|num }} [{{ i.raw_low|int }}, {{ i.raw_high|int }}]</td>
<td>{{ i.actual|num if i.actual is not none else 'pending' }}</td><td>{{ i.auc|num }}</td></tr>
{% endfor %}</tbody></table></div>{% endif %}
{% if notes %}<ul class="muted small">{% for n in notes %}<li>{{ n }}</li>{% endfor %}</ul>
{% endif %}
"""


def _pct(value: Any, signed: bool = False) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    return f"{100 * float(value):+.1f} %" if signed else f"{100 * float(value):.1f} %"


def _chart(data: dict[str, Any], points: pd.DataFrame) -> Markup:
    series = pd.DataFrame(data["series"])
    series["time"] = pd.to_datetime(series["time"])
    points = points.assign(origin=pd.to_datetime(points["origin"]),
                           target=pd.to_datetime(points["target"]))
    first = pd.Timestamp(data["settings"]["origins"][0])
    times = series["time"]
    start = max(0, int((times < first).sum()) - CONTEXT)
    shown = series.iloc[start:]
    periods = [t.date() for t in shown["time"]]
    index = {t: i for i, t in enumerate(shown["time"])}

    def aligned(frame: pd.DataFrame, column: str) -> list[float | None]:
        ys: list[float | None] = [None] * len(periods)
        for t, v in zip(frame["target"], frame[column], strict=True):
            i = index.get(pd.Timestamp(t))
            if i is not None and v is not None and math.isfinite(float(v)):
                ys[i] = float(v)
        return ys

    actual = [float(v) if v is not None and math.isfinite(float(v)) else None
              for v in shown["churners"]]
    lines = [Line("actual churners", [], actual, COLORS["ink"], markers=True)]
    latest = pd.Timestamp(data["settings"]["latest_origin"])
    backtest = points[(points["step"] == 1) & (points["origin"] != latest)]
    methods = [m for m in ("individual", "individual_raw", "seasonal_naive", "ets", "arima")
               if m in set(backtest["method"])]
    for i, method in enumerate(methods):
        rows = backtest[backtest["method"] == method]
        color = PALETTE[i % len(PALETTE)]
        lines.append(Line(f"{method} (step 1)", [], aligned(rows, "forecast"), color,
                          joined=False, markers=True, dashed=method == "individual_raw"))
        if method == "individual":
            lines.append(Line("individual interval", [], aligned(rows, "low"),
                              COLORS["secondary"], dashed=True))
            lines.append(Line("individual interval (upper)", [], aligned(rows, "high"),
                              COLORS["secondary"], dashed=True))
    ahead = points[points["origin"] == latest]
    now = ahead[ahead["method"] == "individual"]
    if not now.empty:
        lines.append(Line(f"individual at {latest:%d %b} (pending)", [],
                          aligned(now, "forecast"), PALETTE[0], joined=False, hollow=True))
    for method in ("ets", "seasonal_naive", "arima"):
        rows = ahead[ahead["method"] == method]
        if rows.empty:
            continue
        lines.append(Line(f"{method} from {latest:%d %b} (pending)", [],
                          aligned(rows, "forecast"), COLORS["neutral"], joined=False,
                          hollow=True))
        lines.append(Line(f"{method} interval (pending)", [], aligned(rows, "high"),
                          COLORS["neutral"], dashed=True))
        break
    return period_chart(periods, lines, "Churners per period: actual, forecast, pending",
                        "churners")


@register_section(order=95, id="forecast", title=TITLE)
def forecast_section(loaded: LoadedSpec, workspace: Path) -> Section | None:
    """The last ``valuechain forecast``: forecast vs actual with intervals, the backtest.

    ``None`` (no card) until the forecast has run.
    """
    found = read_forecast(workspace)
    if found is None:
        return None
    data, points = found
    metrics = [m for m in data.get("metrics", []) if m.get("step") in (0, 1)]
    html = fragment(_BODY, s=data["settings"], as_of=str(data.get("as_of", "")),
                    chart=_chart(data, points), metrics=metrics,
                    individual=data.get("individual", []), notes=data.get("notes", []),
                    pct=_pct, stale=data["settings"].get("spec_hash") != loaded.hash,
                    purchases=data.get("purchases"))
    return Section("forecast", TITLE, html, "ok")
