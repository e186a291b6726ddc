"""Batch scoring on Spark: a packaged bundle applied per partition with Arrow pandas UDFs.

:func:`score_spark` decides a batch of events as ``valuechain score`` does on one machine
(:func:`valuechain.serve.score.score_file`), with the work on Spark:

1. **features**: the offline build over the decision source's history and the batch
   (:func:`~valuechain.serve.batch_features.batch_features`) with the Spark engine, so the
   windows are computed partitioned by key;
2. **model, calibrator and policy per partition**: ``mapInPandas`` hands each partition's
   rows to a Python worker as Arrow batches; the worker loads the bundle once (from the
   registry folder, which must be readable by every executor: a shared or object-store
   path on a cluster) and calls ``Bundle.score`` (the candidate and its calibration, the
   offline code path) and the policy's ``apply``, each row alone in its period — what the
   service's one-row call gives;
3. **real-time capacity**: first come, first served per capacity period in decision order,
   as the service's :class:`~valuechain.serve.decider.Decider` counts it from a fresh state:
   a window per period ordered by decision order numbers the rows given the limited action;
   those past the limit get the overflow rule's action;
4. **outputs**: the decisions (keys, time, decision id, score, action, policy action,
   overflow, the feature values) written by Spark as a Parquet directory, and with ``top``
   the ``top`` highest scores of each capacity period (the review lists) as CSV.

The actions equal the single-machine path's on the same rows (tested on the fraud demo).
Not done here: the decision log (a SQLite file on one machine) and the per-decision reasons
(use ``valuechain score`` for those).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from valuechain.data.engines.spark import SparkConfig, spark_session
from valuechain.io import atomic_path
from valuechain.policy.capacity import PERIOD_ANCHOR_US
from valuechain.spec.loader import LoadedSpec

__all__ = ["SparkScoreResult", "score_spark"]

DAY_US = 86_400_000_000
_BUNDLES: dict[tuple[str, str], Any] = {}


@dataclass(frozen=True)
class SparkScoreResult:
    """What :func:`score_spark` did: rows, seconds, the output directory, the top-N CSV,
    the action counts, the overflow count, the bundle and seconds per stage."""

    rows: int
    seconds: float
    out: Path
    top_path: Path | None
    actions: dict[str, int]
    overflow: int
    bundle_version: str
    stages: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "seconds": round(self.seconds, 3), "out": str(self.out),
                "top_path": str(self.top_path) if self.top_path else None,
                "actions": self.actions, "overflow": self.overflow,
                "bundle_version": self.bundle_version, "engine": "spark",
                "stages": {k: round(v, 3) for k, v in self.stages.items()}}


def _bundle(registry: str, version: str) -> Any:
    """The bundle, loaded once per Python worker."""
    found = _BUNDLES.get((registry, version))
    if found is None:
        from valuechain.registry import Registry

        found = _BUNDLES[(registry, version)] = Registry(Path(registry)).load(version)
    return found


def _scorer(registry: str, version: str, names: list[str]) -> Any:
    """The ``mapInPandas`` function: score and policy action of each row."""

    def score(batches: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        bundle = _bundle(registry, version)
        for batch in batches:
            scores = np.asarray(bundle.score(batch[names]), dtype=np.float64)
            actions = bundle.policy.apply(scores, np.arange(len(scores)))
            yield pd.DataFrame({"__i": batch["__i"].to_numpy(), "score": scores,
                                "policy_action": np.asarray(actions, dtype=object)})

    return score


def score_spark(spec: Path | str | LoadedSpec, input: Path | str | pd.DataFrame, *,
                out: Path | None = None, version: str | None = None, top: int | None = None,
                registry: Path | None = None, engine: SparkConfig | None = None,
                capacity_limit: int | None = None, partitions: int | None = None
                ) -> SparkScoreResult:
    """Decide every event of ``input`` on Spark (see the module docstring).

    Parameters
    ----------
    spec : path or LoadedSpec
        The project.
    input : Path or DataFrame
        Parquet or CSV file of decision events (the decision source's columns), or a
        DataFrame of them.
    out : Path, optional
        Output directory of Parquet files; default
        ``<workspace>/score/<input stem>.decisions.spark``.
    version, registry, capacity_limit
        As for :func:`valuechain.serve.score.score_file`.
    top : int, optional
        Also write the ``top`` highest scores per capacity period to
        ``<out>.top<N>.csv``.
    engine : SparkConfig, optional
        The Spark session's settings (default local[2]).
    partitions : int, optional
        Partitions of the scoring step (default the session's default parallelism).

    Returns
    -------
    SparkScoreResult

    Examples
    --------
    >>> score_spark("examples/fraud", "payments.parquet", top=150)  # doctest: +SKIP
    """
    from pyspark.sql import Window as W
    from pyspark.sql import functions as F

    from valuechain.serve.batch_features import batch_features
    from valuechain.serve.decider import Decider
    from valuechain.serve.score import open_batch

    started = time.perf_counter()
    stages: dict[str, float] = {}
    config = engine or SparkConfig.model_validate({"type": "spark"})
    session = spark_session(config)
    batch = open_batch(spec, input, version=version, registry=registry)
    loaded, bundle, plan, features = batch.loaded, batch.bundle, batch.plan, batch.features
    frame, name, stem = batch.frame, batch.name, batch.stem
    keys, tcol = features.keys, features.time_column
    decider = Decider(bundle, features, None, state=features.state, origin="score",
                      capacity_limit=capacity_limit)
    spans = features.spans()
    built = batch_features(loaded, plan, frame, name=name, required=features.required,
                           lookback_us=spans.get(features.own, 0) + features.slack_us,
                           engine=config.model_dump(), progress=None)
    stages["features"] = time.perf_counter() - started

    begun = time.perf_counter()
    names = list(bundle.feature_names)
    table = built.frame
    n = table.num_rows
    table = table.select([*keys, *[c for c in names if c not in keys], "__t"]).append_column(
        "__i", pa.array(np.arange(n, dtype=np.int64)))
    rows = session.createDataFrame(table)
    parts = partitions or session.sparkContext.defaultParallelism
    scored = (rows.repartition(parts)
              .mapInPandas(_scorer(str(batch.registry), bundle.version, names),
                           "__i long, score double, policy_action string"))
    decided = rows.join(scored, "__i")
    cap = decider.capacity
    per_us = cap.per_us if cap is not None else DAY_US
    period = (F.lit(PERIOD_ANCHOR_US) + F.floor((F.col("__t") - F.lit(PERIOD_ANCHOR_US))
                                                 / F.lit(per_us)).cast("long") * F.lit(per_us))
    decided = decided.withColumn("__period", period)
    if cap is not None:
        limited = (F.col("policy_action") == F.lit(cap.action)).cast("int")
        taken = F.sum(limited).over(W.partitionBy("__period").orderBy("__i").rowsBetween(
            W.unboundedPreceding, W.currentRow))
        over = (F.col("policy_action") == F.lit(cap.action)) & (taken > F.lit(cap.limit))
        decided = decided.withColumn("overflow", over).withColumn(
            "action", F.when(over, F.lit(cap.spill_to)).otherwise(F.col("policy_action")))
    else:
        decided = decided.withColumn("overflow", F.lit(False)).withColumn(
            "action", F.col("policy_action"))
    decided = decided.withColumn("decision_id", F.expr("replace(uuid(), '-', '')"))
    output = decided.select(
        *keys, F.timestamp_micros(F.col("__t")).alias(tcol), "decision_id", "score", "action",
        "policy_action", "overflow", *[F.col(c).alias(f"feature.{c}") for c in names],
        "__i", "__period").cache()
    target = Path(out) if out else loaded.workspace / "score" / f"{stem}.decisions.spark"
    target.parent.mkdir(parents=True, exist_ok=True)
    output.orderBy("__i").drop("__i", "__period").write.mode("overwrite").parquet(str(target))
    counts = {r["action"]: int(r["count"]) for r in output.groupBy("action").count().collect()}
    overflow = output.where(F.col("overflow")).count()
    stages["decide"] = time.perf_counter() - begun
    top_path = None
    if top:
        rank = F.row_number().over(W.partitionBy("__period").orderBy(F.desc("score"), "__i"))
        chosen = (output.withColumn("rank", rank).where(F.col("rank") <= top)
                  .orderBy("__period", "rank").toPandas())
        starts = np.asarray(chosen.pop("__period"), dtype=np.int64).astype("datetime64[us]")
        chosen.insert(0, "period_start", pd.to_datetime(starts, utc=True))
        rank_col = chosen.pop("rank")
        chosen.insert(1, "rank", rank_col)
        top_path = target.with_name(f"{target.name}.top{top}.csv")
        with atomic_path(top_path) as tmp:
            chosen.drop(columns="__i").to_csv(tmp, index=False)
    output.unpersist()
    return SparkScoreResult(rows=n, seconds=time.perf_counter() - started, out=target,
                            top_path=top_path, actions=counts, overflow=int(overflow),
                            bundle_version=bundle.version, stages=stages)


def read_decisions(path: Path) -> pa.Table:
    """The decisions :func:`score_spark` wrote (a directory of Parquet files)."""
    return pq.read_table(path)
