"""``valuechain uplift`` and ``valuechain plan-holdout``: thin over :mod:`valuechain.uplift`.

See docs/uplift.md. User mistakes exit with status 2 and one paragraph (no traceback).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from valuechain.cli import JsonOpt, SpecOpt, _emit, _load, _progress, app, console, user_errors

__all__ = ["plan_holdout_command", "uplift_command"]


def _num(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:,.{digits}f}" if abs(value) < 1e5 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _iv(block: dict[str, Any] | None, digits: int = 3) -> str:
    if not block:
        return "-"
    return (f"{_num(block.get('value'), digits)} "
            f"[{_num(block.get('low'), digits)}, {_num(block.get('high'), digits)}]")


def _print_run(summary: dict[str, Any], path: Path) -> None:
    a = summary["assignment"]
    console.print(f"randomized history: {a['assigned_rows']:,} listings joined "
                  f"({a['treated']:,} treated, {a['control']:,} control; "
                  f"{a['unmatched_source']:,} history rows without a mature decision point)",
                  highlight=False)
    learners = Table(title="Uplift learners (test: randomized rows of the test weeks; "
                           "intervals resample customers)")
    for col in ("learner", "fit s", "validation Qini", "test Qini", "test AUUC",
                "uplift @ top 30%/week"):
        learners.add_column(col, justify="left" if col == "learner" else "right")
    truth = any("test_truth" in s for s in summary["learners"].values())
    if truth:
        learners.add_column("corr. with truth", justify="right")
    for name, s in summary["learners"].items():
        mark = " (chosen)" if name == summary["chosen_learner"] else ""
        row = [name + mark, _num(s["fit_seconds"], 1), _iv(s["validation"]["qini"], 4),
               _iv(s["test"]["qini"], 4), _iv(s["test"]["auuc"], 4),
               _iv(s["test"]["uplift_at_k"])]
        if truth:
            row.append(_num(s.get("test_truth", {}).get("corr_listed")))
        learners.add_row(*row)
    console.print(learners)
    risk = summary["ranking_on_randomized_test_rows"].get("risk")
    if risk:
        console.print(f"risk score ({summary['risk_source']}) on the same rows: Qini "
                      f"{_iv(risk['qini'], 4)}, uplift @ top 30%/week "
                      f"{_iv(risk['uplift_at_k'])}", highlight=False)
    lists = Table(title=f"Lists of {summary['capacity']:,} per week over "
                        f"{summary['weeks_test']} test weeks (saves = churners a call "
                        "prevents)")
    for col in ("list", "listed", "measured", "est. saves (measured)",
                "est. money (measured)"):
        lists.add_column(col, justify="left" if col == "list" else "right")
    has_truth = any("true_saves" in o for o in summary["lists"])
    if has_truth:
        for col in ("true saves", "true money", "true saves vs risk"):
            lists.add_column(col, justify="right")
    for o in summary["lists"]:
        row = [o["name"], _num(o["listed"]),
               f"{o['measured']:,} ({o['measured_share']:.0%})",
               _iv(o["saves_measured"], 1), _iv(o["money_measured"], 0)]
        if has_truth:
            row += [_iv(o.get("true_saves"), 1), _iv(o.get("true_money"), 0),
                    _iv(o.get("true_saves_vs_risk"), 1)]
        lists.add_row(*row)
    console.print(lists)
    p = summary["pooled"]
    console.print(f"pooled over {p['weeks']} matured weeks: control churn "
                  f"{_num(p['control_rate'])} ({p['control']:,}), treated "
                  f"{_num(p['treated_rate'])} ({p['treated']:,}); effect of the action "
                  f"{_iv(p['effect'], 4)}", highlight=False)
    checks = summary.get("truth_checks")
    if checks:
        pooled = checks["pooled_vs_true_mean"]
        console.print(f"truth: mean true uplift of the listed "
                      f"{pooled['true_mean_uplift_listed']:.4f} -> "
                      f"{'inside' if pooled['agrees'] else 'OUTSIDE'} the pooled interval; "
                      f"by predicted tercile: "
                      + ", ".join(f"{g['group']}: est {_iv(g['estimate'], 3)} vs true "
                                  f"{g['true_mean']:.3f}" for g in
                                  checks["by_predicted_tercile"]), highlight=False)
    console.print(f"verdict: {summary['verdict']}", highlight=False)
    console.print(f"uplift run: {path}", highlight=False)


@app.command("uplift")
@user_errors
def uplift_command(
    spec: SpecOpt = Path("."),
    truth: Annotated[Path | None, typer.Option(
        help="The generator's true effects (truth/uplift.parquet or the truth/ folder): "
             "check every estimate against them.")] = None,
    learners: Annotated[str | None, typer.Option(
        help="Comma-separated learner_base names, e.g. two_model_logistic,"
             "class_transformation_lightgbm (default: all four).")] = None,
    n_boot: Annotated[int, typer.Option(help="Bootstrap resamples per interval.")] = 200,
    seed: Annotated[int, typer.Option(help="Seed of the learners and the resamples.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Learn the effect of the action from the randomized history; compare lists."""
    from valuechain.errors import DataError
    from valuechain.uplift.learners import BASES, LEARNERS
    from valuechain.uplift.run import DEFAULT_LEARNERS, run_uplift

    chosen = DEFAULT_LEARNERS
    if learners:
        pairs = []
        for item in (s.strip() for s in learners.split(",") if s.strip()):
            learner, _, base = item.rpartition("_")
            if learner not in LEARNERS or base not in BASES:
                raise DataError(
                    f"`learners`: {item!r} is not a learner; write learner_base with learner "
                    f"one of {', '.join(LEARNERS)} and base one of {', '.join(BASES)}, e.g. "
                    "two_model_logistic.")
            pairs.append((learner, base))
        chosen = tuple(pairs)
    if n_boot < 10:
        raise DataError(f"`n_boot` must be at least 10, got {n_boot}.")
    loaded = _load(spec)
    with _progress(not as_json, "uplift") as progress:
        run = run_uplift(loaded, truth=truth, learners=chosen, n_boot=n_boot, seed=seed,
                         progress=progress)
    if as_json:
        _emit({**run.summary, "path": str(run.path)})
    else:
        _print_run(run.summary, run.path)


@app.command("plan-holdout")
@user_errors
def plan_holdout_command(
    base: Annotated[float, typer.Option(help="Outcome rate of a listed customer without "
                                        "the action, e.g. 0.086.")],
    effect: Annotated[float, typer.Option(help="Expected drop of that rate by the action, "
                                          "e.g. 0.019.")],
    list_size: Annotated[int, typer.Option("--list", help="Customers listed per week.")],
    control_share: Annotated[float, typer.Option(help="Share of each list held out.")],
    power: Annotated[float, typer.Option(help="Power to reach.")] = 0.8,
    alpha: Annotated[float, typer.Option(help="Two-sided significance level.")] = 0.05,
    spec: Annotated[Path | None, typer.Option(
        "--spec", "-s", help="Also show the pooled estimate so far from the spec's "
        "randomized history (matured weeks).")] = None,
    as_json: JsonOpt = False,
) -> None:
    """How many weeks of a randomized holdout until the effect is measurable."""
    from valuechain.uplift.planner import plan_holdout
    from valuechain.uplift.run import pooled_estimate_for

    plan = plan_holdout(base=base, effect=effect, list_size=list_size,
                        control_share=control_share, alpha=alpha, power=power)
    pooled = pooled_estimate_for(_load(spec)) if spec is not None else None
    if as_json:
        _emit({"plan": plan.to_json(), "pooled": pooled.to_json() if pooled else None})
        return
    weeks = "never (the effect is 0)" if plan.weeks is None else f"{plan.weeks} weeks"
    console.print(
        f"With {list_size:,} listed a week and {control_share:.0%} held out "
        f"({plan.control_per_week:g} control, {plan.treated_per_week:g} treated), a drop of "
        f"the rate from {base:.2%} to {base - effect:.2%} is detected with power "
        f"{power:.0%} at level {alpha:g} after [bold]{weeks}[/] of matured listings.",
        highlight=False)
    if plan.weeks is not None:
        marks = sorted({max(1, plan.weeks // 4), max(1, plan.weeks // 2), plan.weeks,
                        plan.weeks * 2})
        console.print("power after " + ", ".join(
            f"{w} weeks: {plan.power_at(w):.0%}" for w in marks), highlight=False)
    if pooled is not None:
        if plan.weeks is not None:
            left = max(0, plan.weeks - pooled.weeks)
            status = ("enough weeks so far" if left == 0
                      else f"{left} more matured weeks needed")
        else:
            status = ""
        console.print(
            f"so far: {pooled.weeks} matured weeks ({pooled.first_week} .. "
            f"{pooled.last_week}), control {pooled.control_rate:.4f} ({pooled.control:,}) vs "
            f"treated {pooled.treated_rate:.4f} ({pooled.treated:,}): effect "
            f"{_iv({'value': pooled.effect.value, 'low': pooled.effect.low, 'high': pooled.effect.high}, 4)}"
            f"{'; ' + status if status else ''}", highlight=False)
