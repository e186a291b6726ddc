"""``valuechain score --engine spark``: batch scoring on Spark (:mod:`valuechain.serve.spark_score`).

The same decisions as ``valuechain score`` on the same rows, with the features built by the
Spark engine and the bundle applied per partition. See docs/scale.md.
"""

from __future__ import annotations

from pathlib import Path

from valuechain.cli import _emit, console
from valuechain.errors import SpecError

__all__ = ["score_on_spark"]


def score_on_spark(spec: Path, input: Path, *, out: Path | None, version: str | None,
                   top: int | None, master: str | None, capacity_limit: int | None,
                   as_json: bool, unsupported: dict[str, bool]) -> None:
    """Decide a batch of events on Spark and print the result (``score --engine spark``).

    ``unsupported`` names the ``score`` flags that were set but have no meaning on Spark
    (the decision log, per-decision reasons, the row-by-row path); any set is refused.
    """
    from valuechain.cli_serve import actions_table
    from valuechain.data.engines.spark import SparkConfig
    from valuechain.serve.spark_score import score_spark as run

    refused = [flag for flag, given in unsupported.items() if given]
    if refused:
        raise SpecError(f"{', '.join(refused)}: not available with `--engine spark`, which "
                        "writes decisions as Parquet files without a decision log or "
                        "reasons. Drop the flag, or score with `--engine duckdb`.")
    config = SparkConfig.model_validate({"type": "spark", "master": master})
    result = run(spec, input, out=out, version=version, top=top, engine=config,
                 capacity_limit=capacity_limit)
    if as_json:
        _emit(result.to_json())
        return
    console.print(actions_table(f"Scored {result.rows:,} events on Spark with bundle "
                                f"{result.bundle_version}", result.actions))
    console.print(f"{result.seconds:.1f} s; {result.overflow:,} over capacity", highlight=False)
    console.print(f"decisions: {result.out}", highlight=False)
    if result.top_path:
        console.print(f"top {top} per period: {result.top_path}", highlight=False)
