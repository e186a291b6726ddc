"""The model card of a training run: ``runs/<run_id>/model_card.md``.

One Markdown page for the roles around the model (the decision's owner, data science,
operations): intended use (from the spec's decision), the data window, every candidate's test
metrics with 95 % day-block intervals, calibration, the verdicts against today's rule, known
limitations (the audit's findings, immature rows left out, the random-vs-time check) and the
owners. ``valuechain train`` writes it; :func:`model_card` returns the text, so the HTML
report can embed the same content.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from valuechain.spec.loader import LoadedSpec
from valuechain.train.result import TrainResult

__all__ = ["CARD_FILE", "model_card"]

#: The card's file name inside a run folder.
CARD_FILE = "model_card.md"

_METRICS = (("roc_auc", "ROC AUC", ".3f"), ("average_precision", "average precision", ".3f"),
            ("precision_at_capacity", "precision at capacity", ".3f"),
            ("recall_at_capacity", "recall at capacity", ".3f"),
            ("expected_cost", "expected cost per decision", ",.3f"),
            ("ece", "ECE (calibration error)", ".4f"))
_ROLES = (("product", "Product"), ("data_science", "Data science"),
          ("data_engineering", "Data engineering"), ("ml_engineering", "ML engineering"),
          ("operations", "Operations"))


def _num(value: Any, fmt: str) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return "–"
    return format(value, fmt)


def _interval(metrics: Mapping[str, Any], key: str, fmt: str) -> str:
    if metrics.get(key) is None:
        return "–"
    return (f"{_num(metrics[key], fmt)} [{_num(metrics.get(key + '_low'), fmt)}, "
            f"{_num(metrics.get(key + '_high'), fmt)}]")


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def model_card(run: TrainResult, loaded: LoadedSpec | None = None, *,
               manifest: Mapping[str, Any] | None = None,
               audit: Mapping[str, Any] | None = None) -> str:
    """The run's model card as Markdown.

    Parameters
    ----------
    run : TrainResult
        The run (``TrainResult.load(run_dir)`` or what ``train`` returned).
    loaded : LoadedSpec, optional
        The project's spec: intended use, KPI and owners come from it (left out without it).
    manifest : mapping, optional
        The frame's build manifest; default the run's ``frame_manifest.json``.
    audit : mapping, optional
        The leakage audit (``audit.json``); default the workspace's ``audit.json`` if any.

    Returns
    -------
    str
        Markdown, starting with ``# Model card``.

    Examples
    --------
    >>> from valuechain.train.result import TrainResult  # doctest: +SKIP
    >>> print(model_card(TrainResult.load("examples/fraud/.valuechain/runs/<id>")))
    ... # doctest: +SKIP
    # Model card: run <id> ...
    """
    run_dir = Path(run.run_dir) if run.run_dir else None
    if manifest is None and run_dir is not None:
        manifest = _read_json(run_dir / "frame_manifest.json")
    if audit is None and loaded is not None:
        audit = _read_json(loaded.workspace / "audit.json")
    spec = loaded.spec if loaded is not None else None
    best = run.best_candidate
    lines = [f"# Model card: run {run.run_id}", ""]
    project = spec.project.name if spec is not None else (
        (manifest or {}).get("spec", {}).get("project", "") if manifest else "")
    lines += [f"Project **{project or '?'}** · trained {run.created_at} · seed {run.seed} · "
              f"spec {run.spec_hash} · chosen model **{best}** (on validation, by "
              f"{run.headline_metric.replace('_', ' ')})", ""]

    lines += ["## Intended use", ""]
    if spec is not None:
        d = spec.decision
        lines += [f"- Decision: {d.statement}", f"- When: {d.moment}",
                  f"- Actions: {', '.join(d.actions)}", f"- Accountable: {d.owner}"]
        if d.kpi:
            lines.append(f"- KPI it should move: {d.kpi}")
        if d.latency_budget_ms:
            lines.append(f"- Latency budget: {d.latency_budget_ms:g} ms per decision")
        lines.append(f"- Scores are calibrated probabilities of `{spec.label.name}` within "
                     f"{spec.label.horizon.days} days; the policy (`valuechain decide`) "
                     "turns them into actions under the spec's costs and capacity.")
        lines.append("- Not for: decisions other than the one above, or populations outside "
                     "the data window below, without retraining and re-evaluating.")
    else:
        lines.append("- (spec not given: see the project's valuechain.yaml `decision`)")
    lines.append("")

    lines += ["## Data", ""]
    splits = run.splits
    for role in ("train", "validation", "test"):
        part = splits.get(role, {})
        if part.get("rows"):
            rate = part["positives"] / part["rows"]
            lines.append(f"- {role}: {str(part.get('start'))[:10]} .. "
                         f"{str(part.get('end'))[:10]}, {part['rows']:,} decisions, "
                         f"{part['positives']:,} positive ({rate:.2%})")
    if splits.get("embargo"):
        lines.append(f"- embargo between periods: {splits['embargo']}")
    rows = (manifest or {}).get("rows") or {}
    if manifest:
        lines.append(f"- frame built as of {manifest.get('as_of')}: {rows.get('total', 0):,} "
                     f"decisions, {rows.get('mature', 0):,} with a mature label")
    features = run.features
    lines.append(f"- features: {len(features.get('numeric', []))} numeric, "
                 f"{len(features.get('categorical', []))} categorical")
    lines.append("")

    lines += ["## Metrics on test (95 % day-block bootstrap intervals)", "",
              "| candidate | " + " | ".join(label for _, label, _ in _METRICS) + " |",
              "|---|" + "---:|" * len(_METRICS)]
    for name, entry in run.candidates.items():
        label = f"**{name}** (chosen)" if name == best else name
        lines.append(f"| {label} | " + " | ".join(
            _interval(entry.test, key, fmt) for key, _, fmt in _METRICS) + " |")
    lines.append("")
    if run.verdicts:
        lines += [f"Against the baselines ({run.headline_metric.replace('_', ' ')}, paired "
                  "difference on test):", ""]
        for v in run.verdicts:
            diff = v.difference
            lines.append(f"- {v.candidate} **{v.verdict}** {v.baseline}: "
                         f"{_num(diff.value, '+.4f')} [{_num(diff.low, '+.4f')}, "
                         f"{_num(diff.high, '+.4f')}]")
        lines.append("")

    lines += ["## Calibration", ""]
    for name, entry in run.candidates.items():
        cal = entry.calibration
        lines.append(f"- {name}: {cal.method}; ECE on test {_num(cal.ece_before, '.4f')} "
                     f"before, {_interval(entry.test, 'ece', '.4f')} after"
                     + (f" ({cal.reason})" if cal.reason else ""))
    lines.append("")

    lines += ["## Known limitations", ""]
    limits: list[str] = []
    if rows.get("immature"):
        limits.append(f"{rows['immature']:,} recent decisions had no mature label at "
                      "extraction and were left out: the newest behaviour is not in training.")
    for finding in (audit or {}).get("findings", []):
        if finding.get("severity") in ("critical", "warning"):
            state = " (accepted)" if finding.get("accepted") else ""
            limits.append(f"audit {finding['severity']}{state} `{finding.get('id')}`: "
                          f"{_cell(str(finding.get('explanation', '')))}")
    rt = run.random_vs_time
    limits.append(f"random split AUC {_num(rt.auc_random_split, '.3f')} vs time split "
                  f"{_num(rt.auc_time_split, '.3f')} ({rt.candidate}): {rt.explanation}")
    test = splits.get("test", {})
    if test.get("positives") is not None and test["positives"] < 500:
        limits.append(f"test holds {test['positives']} positives: intervals are wide; "
                      "differences inside them are not evidence.")
    if audit is None:
        limits.append("no leakage audit found: run `valuechain audit`.")
    lines += [f"- {item}" for item in limits] + [""]

    lines += ["## Owners", ""]
    if spec is not None:
        lines.append(f"- Decision: {spec.decision.owner}")
        for key, label in _ROLES:
            who = getattr(spec.owners, key)
            if who:
                lines.append(f"- {label}: {who}")
    else:
        lines.append("- (spec not given)")
    return "\n".join(lines) + "\n"
