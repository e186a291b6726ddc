"""``valuechain demo churn``: the whole churn-outreach chain on a generated world.

Generate the world (:func:`valuechain.demo.churn.generate_churn`, 10,000 customers by
default so the chain runs in minutes), write the example spec with the capacity scaled to
the world (``max(10, round(20 * customers / 1000))`` calls a week, as the world's outreach
history), then check, build, audit, train, ``decide --kind top_n`` (the weekly list priced
with the cooldown and outreach baselines), uplift (``valuechain.uplift``, when installed and
the spec can declare the randomized history; skipped with a note otherwise), the list of the
last Monday of the data with its control group, and the report. Each step prints its
figures; the result is one JSON-ready dict.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from valuechain.errors import ArtifactError

__all__ = ["demo_spec_text", "last_week", "run_churn_demo"]

#: The candidates the demo trains (the logistic regression adds minutes, not insight here).
DEMO_CANDIDATES = ("prior", "rules", "lightgbm")

_TREATMENT = """
# The randomized history of past lists (valuechain uplift learns the effect of a call on it).
treatment:
  source: outreach
  key: customer_id
  time: week
  column: group
  treated: treated
  control: control
"""


def _example_spec() -> Path:
    path = Path(__file__).resolve().parents[3] / "examples" / "churn" / "valuechain.yaml"
    if not path.is_file():
        raise ArtifactError(f"{path}: the example churn spec is missing; `valuechain demo "
                            "churn` runs from a source checkout of valuechain (examples/churn).")
    return path


def demo_spec_text(customers: int) -> str:
    """The example spec with the weekly capacity scaled to ``customers`` (and the
    ``treatment`` block when this valuechain's spec knows it)."""
    from valuechain.demo.churn import outreach_capacity
    from valuechain.spec.models import Spec

    text = _example_spec().read_text(encoding="utf-8")
    limit = outreach_capacity(customers)
    text, count = re.subn(r"(\n\s+\w+: \{limit: )\d+(, per: 7d)", rf"\g<1>{limit}\g<2>", text)
    if count != 1:
        raise ArtifactError(f"{_example_spec()}: expected one weekly `limit` under "
                            "`value.capacity`; the example spec changed shape.")
    if "treatment" in Spec.model_fields and "\ntreatment:" not in text:
        text = text.replace("\nvalue:\n", _TREATMENT + "\nvalue:\n", 1)
    return text


def last_week(as_of: datetime, start: datetime, every: timedelta) -> datetime:
    """The last decision time of the schedule at or before ``as_of``.

    >>> last_week(datetime(2025, 7, 2), datetime(2024, 2, 26), timedelta(days=7))
    datetime.datetime(2025, 6, 30, 0, 0)
    """
    steps = int((as_of - start) // every)
    return start + steps * every


def run_churn_demo(project: Path, *, customers: int = 10_000, seed: int = 7,
                   echo: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run the chain in ``project`` (created); ``echo`` receives each step's lines."""
    from valuechain import api
    from valuechain.demo.churn import generate_churn
    from valuechain.lists import week_list
    from valuechain.spec import load_spec
    from valuechain.spec.models import SchedulePoints

    def say(line: str) -> None:
        if echo is not None:
            echo(line)

    project = Path(project)
    project.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {}
    if not (project / "data" / "usage_events.parquet").exists():
        world = generate_churn(project / "data", customers=customers, seed=seed)
        out["generate"] = world.to_json()
        say(f"generate: {customers:,} customers, {world.capacity:,} listed a week in the "
            f"history, {world.cancel_30d_rate:.2%} cancel within 30 days of a Monday "
            f"({world.seconds:.1f}s)")
    (project / "valuechain.yaml").write_text(demo_spec_text(customers), encoding="utf-8")
    loaded = load_spec(project)
    checked = api.check(loaded)
    out["check"] = checked.to_json()
    say(f"check: {'passed' if checked.passed else 'FAILED'} "
        f"({sum(c.passed for c in checked.checklist)}/{len(checked.checklist)} checklist items)")
    built = api.build(loaded)
    out["build"] = built.to_json()
    r = built.rows
    say(f"build: {r.mature:,} mature customer-Mondays ({r.immature:,} immature excluded), "
        f"{r.positive:,} cancel within 30 days ({r.positive / max(r.mature, 1):.2%}), "
        f"{built.seconds:.1f}s")
    audited = api.audit(loaded)
    out["audit"] = audited.to_json()
    counts = out["audit"]["counts"]
    say(f"audit: {audited.critical} critical, {counts['warning']} warning(s), "
        f"{counts['info']} info")
    run = api.train(loaded, seed=seed, candidates=list(DEMO_CANDIDATES))
    out["train"] = {"run_id": run.run_id, "best": run.best_candidate}
    test = run.candidates[run.best_candidate].test
    say(f"train: run {run.run_id}, best {run.best_candidate}: test AUC "
        f"{test.get('roc_auc', float('nan')):.3f}, AP {test.get('average_precision', 0):.3f}")
    decided = api.decide(loaded, kind="top_n", seed=seed)
    out["decide"] = decided.to_json()
    for line in decide_lines(decided, loaded.spec.value.currency if loaded.spec.value else ""):
        say(line)
    out["uplift"] = _uplift(loaded, project, seed, say)
    dp = loaded.spec.decision_points
    assert isinstance(dp, SchedulePoints)
    as_of = datetime.fromisoformat(str(built.manifest["as_of"])).replace(tzinfo=None)
    monday = last_week(as_of, dp.schedule.start.replace(tzinfo=None), dp.schedule.every)
    listed = week_list(loaded, monday.date().isoformat())
    out["list"] = listed.to_json()
    for line in listed.lines():
        say("list: " + line.strip())
    reported = api.report(loaded)
    out["report"] = reported.to_json()
    say(f"report: {reported.path}" + ("" if reported.ok else " (with problems: run "
                                      "`valuechain report`)"))
    return out


def decide_lines(decided: Any, currency: str) -> list[str]:
    """The decide step's figures (the policy, its load per week, savings with intervals)."""
    policy = decided.policy
    cap = decided.test.capacity
    names = decided.outreach or {}
    action = names.get("action", "review")
    lines = [f"decide: top-{policy['n']} list a week"
             + (f" (risk >= {policy['min_score']:.3f})" if policy.get("min_score") else "")
             + f", {cap.mean_used:.0f} to {action} a week on test on average (max "
             f"{cap.max_used:.0f} of {cap.limit}), cooldown {names.get('cooldown', '-')}"]
    against = {"no_outreach": "calling nobody", "random_list": "a random list of the same size",
               "rules": "today's rule"}
    for name, s in (decided.test.savings or {}).items():
        lines.append(f"  saves {currency} {s.value:,.0f} [{s.low:,.0f}, {s.high:,.0f}] vs "
                     f"{against.get(name, name)} (interval resampling customers)")
    return lines


def _uplift(loaded: Any, project: Path, seed: int, say: Callable[[str], None]
            ) -> dict[str, Any]:
    try:  # the uplift stage, when this installation has it
        run_uplift = importlib.import_module("valuechain.uplift.run").run_uplift
    except (ImportError, AttributeError):
        say("uplift: skipped (valuechain.uplift is not part of this installation); the list "
            "ranks by risk")
        return {"skipped": "valuechain.uplift not installed"}
    if getattr(loaded.spec, "treatment", None) is None:
        say("uplift: skipped (the spec has no `treatment` block)")
        return {"skipped": "no treatment block"}
    run = run_uplift(loaded, truth=project / "data" / "truth", n_boot=50, seed=seed)
    summary: dict[str, Any] = dict(getattr(run, "summary", {}))
    verdict = summary.get("verdict")
    say(f"uplift: chosen learner {summary.get('chosen_learner', '?')}"
        + (f"; {verdict}" if isinstance(verdict, str) else "")
        + f" (run {summary.get('run_id', '?')}); the list ranks by the expected value of a call")
    return summary
