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
    base_spec: Annotated[Path, typer.Option(
        "--base-spec", help="The fraud spec the story copies (horizon and periods adjusted "
        "for the compact story).")] = Path("examples/fraud/valuechain.yaml"),
    rows: Annotated[int, typer.Option(help="Transactions to generate.")] = 250_000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
    full: Annotated[bool, typer.Option(
        "--full", help="The full story over the published spec (60-day horizon, 455 days, "
        "1M rows: about 20 minutes) instead of the compact one (30-day horizon, 330 days: "
        "a few minutes).")] = False,
    campaign_scale: Annotated[float, typer.Option(
        help="Multiply the campaign's daily intensity. At 1 (the published world) the "
        "campaign is ~1 % of a day's payments and no drift rule fires; 20 makes it ~a fifth "
        "(docs/retraining.md).")] = 20.0,
    replay_days: Annotated[int, typer.Option(
        help="Replay from 3 days before the campaign start up to this many days after it "
        "(0: to the end of the data).")] = 0,
    retrain_at_end: Annotated[bool, typer.Option(
        "--retrain/--no-retrain", help="Retrain at the end of the data.")] = True,
    as_json: JsonOpt = False,
) -> None:
    """The monitoring story: champion before a campaign, replay, daily monitor, retrain."""
    payload = tell_story(dir, base_spec, rows=rows, seed=seed, full=full,
                         campaign_scale=campaign_scale, replay_days=replay_days,
                         retrain_at_end=retrain_at_end, quiet=as_json)
    if as_json:
        _emit(payload)


def tell_story(dir: Path, base_spec: Path, *, rows: int = 250_000, seed: int = 7,
               full: bool = False, campaign_scale: float = 20.0, replay_days: int = 0,
               retrain_at_end: bool = True, quiet: bool = False) -> dict[str, object]:
    """Run the monitoring story (``valuechain demo fraud-story``, ``demo fraud --story``),
    print it unless ``quiet``, and return its JSON."""
    from valuechain.demo.fraud import COMPACT_STORY, FULL_STORY, make_story, monitor_story
    from valuechain.errors import SpecError

    if not base_spec.is_file():
        raise SpecError(f"{base_spec}: the story copies this fraud spec, and it does not "
                        "exist. Pass `--base-spec` with the path of examples/fraud/"
                        "valuechain.yaml (or your copy).")
    with _progress(not quiet, "story: champion") as progress:
        shipped, campaign = make_story(dir, base_spec.read_text(),
                                       story=FULL_STORY if full else COMPACT_STORY,
                                       rows=rows, seed=seed, campaign_scale=campaign_scale,
                                       progress=progress)
    with _progress(not quiet, "story") as progress:
        story = monitor_story(dir, campaign_start=campaign, replay_days=replay_days or None,
                              replay_from=campaign - timedelta(days=3),
                              retrain_at_end=retrain_at_end, progress=progress)
    if not quiet:
        console.print(shipped.lines()[0], highlight=False)
        for line in story.lines():
            console.print(line, highlight=False)
    return {"champion": shipped.to_json(), "story": story.to_json()}
