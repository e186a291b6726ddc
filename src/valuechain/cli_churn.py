"""``valuechain generate churn``: write the churn demo world (see :mod:`valuechain.demo.churn`
and docs/churn.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from valuechain.cli import JsonOpt, _emit, _progress, console, generate_app, user_errors

__all__ = ["generate_churn_command"]


@generate_app.command("churn")
@user_errors
def generate_churn_command(
    out: Annotated[Path, typer.Option(help="Directory for the Parquet tables.")],
    customers: Annotated[int, typer.Option(help="Number of subscribers.")] = 100_000,
    months: Annotated[int, typer.Option(help="Length of the period in months.")] = 18,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
    start: Annotated[str, typer.Option(help="First day (ISO date); weeks start on the "
                                       "first Monday from it.")] = "2024-01-01",
    truth: Annotated[bool, typer.Option(help="Also write the ground truth (response types, "
                                        "true uplift) into OUT/truth/ (not a source).")] = True,
    as_json: JsonOpt = False,
) -> None:
    """Generate the churn demo world (subscriptions, usage, tickets, payments, outreach...)."""
    from valuechain.demo.churn import generate_churn

    with _progress(not as_json, "generate") as progress:
        summary = generate_churn(out, customers=customers, months=months, seed=seed,
                                 start=start, truth=truth, progress=progress)
    if as_json:
        _emit(summary.to_json())
    else:
        for line in summary.lines():
            console.print(line, highlight=False)
