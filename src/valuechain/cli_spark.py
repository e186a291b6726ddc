"""``valuechain score --engine spark``: batch scoring on Spark (:mod:`valuechain.serve.spark_score`).

The same decisions as ``valuechain score`` on the same rows — actions, scores, reasons
(``--reasons all|flagged|none``) and stable decision ids — with the features built by the
Spark engine and the bundle applied per partition; then the decisions appended to the
decision log from the driver (``--log PATH``, ``--no-log``; scoring a batch again appends
nothing twice). The row-by-row reference path (``--online``) has no Spark form and is
refused. See docs/scale.md and docs/batch-scoring.md.
"""

from __future__ import annotations

from pathlib import Path

from valuechain.cli import _emit, console
from valuechain.errors import SpecError

__all__ = ["score_on_spark"]


def score_on_spark(spec: Path, input: Path, *, out: Path | None, version: str | None,
                   top: int | None, master: str | None, capacity_limit: int | None,
                   as_json: bool, unsupported: dict[str, bool], reasons: str = "all",
                   log: Path | None = None, no_log: bool = False, chunk: int = 50_000
                   ) -> None:
    """Decide a batch of events on Spark and print the result (``score --engine spark``).

    ``unsupported`` names the ``score`` flags that were set but have no Spark form (the
    row-by-row ``--online`` path); any set is refused with one paragraph (exit 2).
    """
    from valuechain.cli_serve import actions_table
    from valuechain.data.engines.spark import SparkConfig
    from valuechain.serve.spark_score import score_spark as run

    refused = [flag for flag, given in unsupported.items() if given]
    if refused:
        raise SpecError(
            f"{', '.join(refused)}: not available with `--engine spark`. Spark scoring runs "
            "the vectorised batch path only (features by the Spark engine, the bundle per "
            "partition, reasons and the decision log as `valuechain score` gives them); the "
            "row-by-row reference path runs on one machine. Drop the flag, or score with "
            "`--engine duckdb`.")
    config = SparkConfig.model_validate({"type": "spark", "master": master})
    result = run(spec, input, out=out, version=version, top=top, engine=config,
                 capacity_limit=capacity_limit, reasons=reasons, log=not no_log,
                 log_path=log, chunk=chunk)
    if as_json:
        _emit(result.to_json())
        return
    console.print(actions_table(f"Scored {result.rows:,} events on Spark with bundle "
                                f"{result.bundle_version}", result.actions))
    console.print(f"{result.rows_per_second:,.0f} rows/s ({result.seconds:.1f} s); "
                  f"{result.overflow:,} over capacity; reasons: {result.reasons}",
                  highlight=False)
    console.print(f"decisions: {result.out}", highlight=False)
    if result.top_path:
        console.print(f"top {top} per period: {result.top_path}", highlight=False)
    if result.log_path:
        again = result.rows - result.logged
        console.print(f"logged to {result.log_path}: {result.logged:,} appended"
                      + (f", {again:,} already there (the same decision ids)" if again
                         else ""), highlight=False)
