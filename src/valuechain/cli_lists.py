"""``valuechain list`` (the week's outreach list) and ``valuechain demo churn`` (the chain).

See :mod:`valuechain.lists` and docs/churn.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from valuechain.cli import JsonOpt, SpecOpt, _emit, _load, app, console, demo_app, user_errors

__all__ = ["demo_churn", "list_command"]


@app.command("list", epilog="Example: `valuechain list --spec examples/churn --week "
             "2025-06-02`")
@user_errors
def list_command(
    spec: SpecOpt = Path("."),
    week: Annotated[str, typer.Option(help="The Monday of the list (ISO date, on the "
                                      "spec's schedule).")] = "",
    out: Annotated[Path | None, typer.Option(help="List file (.parquet or .csv; the other "
                                             "format is written beside it); default "
                                             "<workspace>/lists/<week>.*")] = None,
    rank: Annotated[str, typer.Option(
        metavar="<auto|risk|value>",
        help="auto: by the expected value of a call when an uplift model exists, else by "
             "risk; risk; value (needs `valuechain uplift`).")] = "auto",
    as_json: JsonOpt = False,
) -> None:
    """Write the week's list: the customers most worth the action, with a random control."""
    from valuechain.errors import DataError
    from valuechain.lists import week_list

    if not week:
        raise DataError("`week` is required: the Monday of the list, e.g. `--week 2025-06-02`.")
    result = week_list(_load(spec), week, out=out, rank=rank)
    if as_json:
        _emit(result.to_json())
        return
    for line in result.lines():
        console.print(line, highlight=False, soft_wrap=True)


@demo_app.command("churn")
@user_errors
def demo_churn(
    dir: Annotated[Path, typer.Option("--dir", help="Project directory (created).")] = Path(
        "churn-demo"),
    customers: Annotated[int, typer.Option(help="Subscribers to generate.")] = 10_000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
    as_json: JsonOpt = False,
) -> None:
    """Generate the churn world, then check, build, audit, train, decide, uplift, list, report."""
    from valuechain.demo.churn_chain import run_churn_demo

    result = run_churn_demo(dir, customers=customers, seed=seed,
                            echo=None if as_json else _echo)
    if as_json:
        _emit(result)


def _echo(line: str) -> None:
    console.print(line, highlight=False, soft_wrap=True)
