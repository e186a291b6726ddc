"""``valuechain retrain``: thin over :func:`valuechain.monitor.retrain.retrain`."""

from __future__ import annotations

import math
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from valuechain.cli import (
    JsonOpt,
    SpecOpt,
    _emit,
    _progress,
    app,
    console,
    demo_app,
    parse_moment,
    user_errors,
)

_LABELS = {"roc_auc": ("ROC AUC", ".3f"), "average_precision": ("average precision", ".3f"),
           "cost_per_1000": ("policy cost / 1,000 decisions", ",.1f"),
           "loss_per_1000": ("KPI: loss / 1,000 approved", ",.2f")}


def _fmt(value: float, spec: str, sign: bool = False) -> str:
    if not math.isfinite(value):
        return "n/a"
    return format(value, ("+" if sign else "") + spec)


@app.command("retrain")
@user_errors
def retrain_command(
    spec: SpecOpt = Path("."),
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="Extraction time of the challenger's data (ISO 8601); default the "
        "latest time in the sources.")] = None,
    recent: Annotated[str | None, typer.Option(
        help="Length of the recent comparison period, e.g. 30d; default the spec's test "
        "period's length.")] = None,
    promote: Annotated[bool, typer.Option(
        "--promote", help="Promote the challenger through the registry's gates when it "
        "wins.")] = False,
    seed: Annotated[int, typer.Option(help="Seed of the models and the bootstrap.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Train a challenger on the recent matured periods and compare it with the champion."""
    from valuechain.monitor.retrain import retrain
    from valuechain.spec.durations import parse_duration

    moment = parse_moment(as_of, "--as-of")
    window = parse_duration(recent) if recent is not None else None
    with _progress(not as_json, "retrain") as progress:
        result = retrain(spec, as_of=moment, recent=window, promote=promote, seed=seed,
                         progress=progress)
    if as_json:
        _emit(result.to_json())
    else:
        spans = ", ".join(f"{p.name} {p.start:%Y-%m-%d}..{p.end:%Y-%m-%d}"
                          for p in result.periods)
        console.print(f"champion {result.champion} vs challenger {result.challenger} "
                      f"(run {result.run_id}); data as of {result.as_of:%Y-%m-%d %H:%M}")
        console.print(f"challenger periods (the spec's, shifted {result.offset.days} days): "
                      f"{spans}")
        c = result.comparison
        table = Table(title=f"recent matured period {c.start:%Y-%m-%d}..{c.end:%Y-%m-%d}: "
                      f"{result.rows:,} decisions, {result.positives:,} positives, "
                      f"{result.days} days (95 % day-block intervals)")
        for column in ("metric", "champion", "challenger", "challenger - champion", "better"):
            table.add_column(column, justify="left" if column == "metric" else "right")
        for m in result.metrics:
            label, f = _LABELS.get(m.metric, (m.metric, ".3f"))
            table.add_row(
                label,
                f"{_fmt(m.champion, f)} [{_fmt(m.champion_low, f)}, {_fmt(m.champion_high, f)}]",
                f"{_fmt(m.challenger, f)} [{_fmt(m.challenger_low, f)}, "
                f"{_fmt(m.challenger_high, f)}]",
                f"{_fmt(m.difference, f, True)} [{_fmt(m.difference_low, f, True)}, "
                f"{_fmt(m.difference_high, f, True)}]",
                m.better)
        console.print(table)
        for reason in result.reasons:
            console.print(f"- {reason}", highlight=False)
    if promote and not result.promoted:
        raise typer.Exit(1)


@demo_app.command("fraud-story")
@user_errors
def demo_fraud_story(
    dir: Annotated[Path, typer.Option("--dir", help="Story project directory (created).")] = Path(
        "examples/fraud-story"),
    rows: Annotated[int, typer.Option(help="Transactions to generate.")] = 1_000_000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
    compact: Annotated[bool, typer.Option(
        "--compact", help="The compact story (30-day horizon, 330 days): minutes, not tens "
        "of minutes.")] = False,
    campaign_scale: Annotated[float, typer.Option(
        help="Multiply the campaign's daily intensity.")] = 1.0,
    replay_days: Annotated[int, typer.Option(
        help="Replay from 3 days before the campaign start up to this many days after it "
        "(scoring runs at hundreds of payments per second; 0: to the end of the data).")] = 21,
    retrain_at_end: Annotated[bool, typer.Option(
        "--retrain/--no-retrain", help="Retrain at the end of the data.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """The monitoring story: champion before the campaign, replay, daily monitor, retrain."""
    from valuechain.demo.fraud import COMPACT_STORY, FULL_STORY, make_story, monitor_story

    here = Path(__file__).resolve().parents[2] / "examples" / "fraud" / "valuechain.yaml"
    with _progress(not as_json, "story: champion") as progress:
        shipped, campaign = make_story(dir, here.read_text(),
                                       story=COMPACT_STORY if compact else FULL_STORY,
                                       rows=rows, seed=seed, campaign_scale=campaign_scale,
                                       progress=progress)
    with _progress(not as_json, "story") as progress:
        story = monitor_story(dir, campaign_start=campaign, replay_days=replay_days or None,
                              replay_from=campaign - timedelta(days=3),
                              retrain_at_end=retrain_at_end, progress=progress)
    if as_json:
        _emit({"champion": shipped.to_json(), "story": story.to_json()})
        return
    console.print(shipped.lines()[0], highlight=False)
    for line in story.lines():
        console.print(line, highlight=False)
