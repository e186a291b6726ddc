"""``valuechain score-spark``: batch scoring on Spark (:mod:`valuechain.serve.spark_score`).

The same decisions as ``valuechain score`` on the same rows, with the features built by the
Spark engine and the bundle applied per partition. See docs/scale.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from valuechain.cli import JsonOpt, SpecOpt, _emit, app, console, user_errors

__all__ = ["score_spark"]


@app.command("score-spark")
@user_errors
def score_spark(
    spec: SpecOpt = Path("."),
    input: Annotated[Path, typer.Option(
        "--input", "-i", help="Parquet or CSV file of decision events.")] = Path("events.parquet"),
    out: Annotated[Path | None, typer.Option(
        help="Decisions directory (Parquet files); default <workspace>/score/<input>."
        "decisions.spark.")] = None,
    version: Annotated[str | None, typer.Option(
        help="Bundle version; default the registry's production version.")] = None,
    top: Annotated[int | None, typer.Option(
        help="Also write the N highest scores per capacity period (<out>.topN.csv).")] = None,
    master: Annotated[str | None, typer.Option(
        help="Spark master URL; default VALUECHAIN_SPARK_MASTER or local[2].")] = None,
    capacity_limit: Annotated[int | None, typer.Option(
        help="Override the spec's capacity limit per period.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Decide a batch of events on Spark: features by the Spark engine, the bundle's model,
    calibrator and policy per partition, capacity in decision order. See docs/scale.md."""
    from valuechain.data.engines.spark import SparkConfig
    from valuechain.serve.spark_score import score_spark as run

    config = SparkConfig.model_validate({"type": "spark", "master": master})
    result = run(spec, input, out=out, version=version, top=top, engine=config,
                 capacity_limit=capacity_limit)
    if as_json:
        _emit(result.to_json())
        return
    table = Table(title=f"Scored {result.rows:,} events on Spark with bundle "
                  f"{result.bundle_version}")
    table.add_column("action")
    table.add_column("decisions", justify="right")
    for action, count in sorted(result.actions.items()):
        table.add_row(action, f"{count:,}")
    console.print(table)
    console.print(f"{result.seconds:.1f} s; {result.overflow:,} over capacity", highlight=False)
    console.print(f"decisions: {result.out}", highlight=False)
    if result.top_path:
        console.print(f"top {top} per period: {result.top_path}", highlight=False)
