"""Batch scoring on Spark: a packaged bundle applied per partition with Arrow UDFs, logged.

:func:`score_spark` decides a batch of events as ``valuechain score`` does on one machine
(:func:`valuechain.serve.score.score_file`), with the work on Spark:

1. **features**: the offline build over the decision source's history and the batch
   (:func:`~valuechain.serve.batch_features.batch_features`) with the Spark engine, so the
   windows are computed partitioned by key;
2. **model, calibrator, policy, reasons and ids per partition**: ``mapInArrow`` hands each
   partition's rows to a Python worker as Arrow record batches; the worker loads the bundle
   once (from the registry folder, which must be readable by every executor: a shared or
   object-store path on a cluster) and runs on each batch the single-machine path's own
   functions (:mod:`valuechain.serve.batch`): ``Bundle.score`` on the feature frame (the
   candidate and its calibration), the policy's ``apply`` with each row alone in its period
   (what the service's one-row call gives), the per-feature contributions
   (:func:`~valuechain.serve.batch.reason_contributions`, TreeSHAP for LightGBM) turned into
   the top reasons and their JSON (:func:`~valuechain.serve.batch.top_reasons`,
   :func:`~valuechain.serve.batch.reasons_json`), and each decision's stable id
   (:func:`~valuechain.serve.decider.stable_decision_id` of the decider's scope, the key text
   and the time, as :meth:`Decider.decision_id
   <valuechain.serve.decider.Decider.decision_id>` gives it on one machine);
3. **real-time capacity**: first come, first served per capacity period in decision order,
   as the service's :class:`~valuechain.serve.decider.Decider` counts it from a fresh state:
   a window per period ordered by decision order numbers the rows given the limited action;
   those past the limit get the overflow rule's action. ``reasons="flagged"`` gives reasons
   to the decisions whose *final* action is not the policy's lowest: the partitions compute
   them for the rows the policy flags (a superset: the capacity only turns flagged rows into
   the lowest action), and this step empties the reasons of the rows the overflow rule sent
   to the lowest action;
4. **outputs**: the decisions (keys, time, decision id, score, action, policy action,
   overflow, reasons as JSON, the feature values: the single-machine file's columns) written
   by Spark as a Parquet directory, and with ``top`` the ``top`` highest scores of each
   capacity period (the review lists) as CSV;
5. **decision log** (unless ``log=False``): the driver streams the Parquet files Spark wrote,
   ``chunk`` rows at a time, into the service's SQLite
   :class:`~valuechain.serve.log.DecisionLog` (``origin = "score"``, one transaction per
   chunk, overlapping the next chunk's reading): the records the single-machine path writes
   (the normalised event, the features in the model's order, the capacity note of an
   overflow), under the same stable ids. A decision id already in the log is left as it was
   logged (``on_repeat="skip"``): scoring the same batch again appends nothing.

The actions, scores, reasons, decision ids and the log equal the single-machine path's on
the same rows (tested on the fraud demo). The batch's features and events are on the
driver (the engine's output, as for the single-machine path); only the decision records
are made chunk by chunk.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from valuechain.data.engines.spark import SparkConfig, spark_session
from valuechain.errors import EngineError, SpecError
from valuechain.io import atomic_path
from valuechain.policy.capacity import PERIOD_ANCHOR_US
from valuechain.serve.decider import REASONS
from valuechain.spec.loader import LoadedSpec

if TYPE_CHECKING:
    from valuechain.serve.batch_features import BatchFeatures
    from valuechain.serve.decider import Decider
    from valuechain.serve.log import DecisionLog

__all__ = ["SparkScoreResult", "read_decisions", "score_spark"]

DAY_US = 86_400_000_000
_BUNDLES: dict[tuple[str, str], Any] = {}
#: What the partitions return per row (joined back to the features on ``__i``).
_SCORED = "__i long, score double, policy_action string, decision_id string, reasons string"
_PART = re.compile(r"^part-(\d+)")


@dataclass(frozen=True)
class SparkScoreResult:
    """What :func:`score_spark` did: rows, seconds, the output directory, the top-N CSV,
    the action counts, the overflow count, the bundle, seconds per stage, the decision log
    (None with ``log=False``), the decisions appended to it (fewer than ``rows`` when an
    earlier run logged some) and the reasons mode."""

    rows: int
    seconds: float
    out: Path
    top_path: Path | None
    actions: dict[str, int]
    overflow: int
    bundle_version: str
    stages: dict[str, float] = field(default_factory=dict)
    log_path: Path | None = None
    logged: int = 0
    reasons: str = "all"

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "seconds": round(self.seconds, 3),
                "rows_per_second": round(self.rows_per_second, 1), "out": str(self.out),
                "top_path": str(self.top_path) if self.top_path else None,
                "log": str(self.log_path) if self.log_path else None,
                "logged": self.logged, "reasons": self.reasons,
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


def _scorer(registry: str, version: str, names: list[str], keys: list[str], scope: str,
            reasons: str, lowest: str, top: int) -> Any:
    """The ``mapInArrow`` function: per row its score, policy action, stable decision id and
    reasons (JSON), with the single-machine path's functions (see the module docstring).

    ``reasons`` here is what the partition computes: ``flagged`` gives reasons to the rows
    whose *policy* action is not ``lowest``; the caller empties those the capacity turns to
    ``lowest``."""

    def score(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from valuechain.serve.batch import (
            key_texts,
            plain_rows,
            reason_contributions,
            reasons_json,
            top_reasons,
        )
        from valuechain.serve.decider import stable_decision_id

        bundle = _bundle(registry, version)
        for batch in batches:
            n = batch.num_rows
            if n == 0:
                continue
            part = pa.Table.from_batches([batch])
            matrix = part.select(names).to_pandas()
            scores = np.asarray(bundle.score(matrix), dtype=np.float64)
            actions = [str(a) for a in bundle.policy.apply(scores, np.arange(n)).tolist()]
            contribs = reason_contributions(bundle, matrix, actions, reasons, lowest)
            values = plain_rows(part, names) if contribs is not None else [{}] * n
            why = reasons_json(top_reasons(names, values, contribs, top))
            times = part.column("__t").to_pylist()
            ids = [stable_decision_id(scope, k, t)
                   for k, t in zip(key_texts(part, keys), times, strict=True)]
            yield pa.RecordBatch.from_pydict({
                "__i": batch.column("__i"), "score": pa.array(scores, pa.float64()),
                "policy_action": pa.array(actions, pa.string()),
                "decision_id": pa.array(ids, pa.string()),
                "reasons": pa.array(why, pa.string())})

    return score


def score_spark(spec: Path | str | LoadedSpec, input: Path | str | pd.DataFrame, *,
                out: Path | None = None, version: str | None = None, top: int | None = None,
                registry: Path | None = None, engine: SparkConfig | None = None,
                capacity_limit: int | None = None, partitions: int | None = None,
                reasons: str = "all", log: bool = True, log_path: Path | None = None,
                chunk: int = 50_000) -> SparkScoreResult:
    """Decide every event of ``input`` on Spark and log them (see the module docstring).

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
    reasons : {"all", "flagged", "none"}, default "all"
        Which decisions get their top reasons, as for ``score_file``: every one, those not
        given the policy's lowest action, or none (TreeSHAP costs most, see docs/scale.md).
    log : bool, default True
        Append the decisions to the decision log (``origin = "score"``); an id already
        logged is not appended again.
    log_path : Path, optional
        The decision log; default the service's ``<workspace>/serve/decisions.sqlite``.
    chunk : int, default 50000
        Decisions read from the output per log transaction.

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
    from valuechain.serve.log import DecisionLog
    from valuechain.serve.score import open_batch

    if reasons not in REASONS:
        raise SpecError(f"`reasons` must be one of {', '.join(REASONS)}, got {reasons!r}.")
    if chunk < 1:
        raise SpecError(f"`chunk` must be at least 1, got {chunk}.")
    started = time.perf_counter()
    stages: dict[str, float] = {}
    config = engine or SparkConfig.model_validate({"type": "spark"})
    session = spark_session(config)
    batch = open_batch(spec, input, version=version, registry=registry)
    loaded, bundle, plan, features = batch.loaded, batch.bundle, batch.plan, batch.features
    frame, name, stem = batch.frame, batch.name, batch.stem
    keys, tcol = features.keys, features.time_column
    decider = Decider(bundle, features, None, state=features.state, origin="score",
                      capacity_limit=capacity_limit, reasons=reasons)
    assert decider.id_scope is not None  # batch scoring: stable ids
    # opened before the long work: a damaged log or another schema fails first
    logger = DecisionLog(log_path or loaded.workspace / "serve" / "decisions.sqlite",
                         max_batch=chunk) if log else None
    try:
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
        cap = decider.capacity
        lowest = decider.lowest_action
        # flagged: the partitions see the policy's action; the capacity only turns flagged
        # rows into the lowest action -- unless it limits the lowest action itself
        computed = "all" if (reasons == "flagged" and cap is not None
                             and cap.action == lowest) else reasons
        scored = (rows.repartition(parts)
                  .mapInArrow(_scorer(str(batch.registry), bundle.version, names, list(keys),
                                      decider.id_scope, computed, lowest,
                                      decider.top_reasons), _SCORED))
        decided = rows.join(scored, "__i")
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
        if reasons == "flagged":
            decided = decided.withColumn("reasons", F.when(
                F.col("action") == F.lit(lowest), F.lit("[]")).otherwise(F.col("reasons")))
        output = decided.select(
            *keys, F.timestamp_micros(F.col("__t")).alias(tcol), "decision_id", "score",
            "action", "policy_action", "overflow", "reasons",
            *[F.col(c).alias(f"feature.{c}") for c in names], "__i", "__period").cache()
        target = Path(out) if out else loaded.workspace / "score" / f"{stem}.decisions.spark"
        target.parent.mkdir(parents=True, exist_ok=True)
        output.orderBy("__i").drop("__i", "__period").write.mode("overwrite").parquet(
            str(target))
        tally = output.groupBy("action").agg(
            F.count(F.lit(1)).alias("n"), F.sum(F.col("overflow").cast("long")).alias("over")
        ).collect()  # one job for both counts
        counts = {r["action"]: int(r["n"]) for r in tally}
        overflow = sum(int(r["over"] or 0) for r in tally)
        stages["decide"] = time.perf_counter() - begun
        top_path = None
        if top:
            rank = F.row_number().over(W.partitionBy("__period").orderBy(F.desc("score"),
                                                                          "__i"))
            chosen = (output.withColumn("rank", rank).where(F.col("rank") <= top)
                      .orderBy("__period", "rank").toPandas())
            starts = np.asarray(chosen.pop("__period"), dtype=np.int64).astype(
                "datetime64[us]")
            chosen.insert(0, "period_start", pd.to_datetime(starts, utc=True))
            rank_col = chosen.pop("rank")
            chosen.insert(1, "rank", rank_col)
            top_path = target.with_name(f"{target.name}.top{top}.csv")
            with atomic_path(top_path) as tmp:
                chosen.drop(columns="__i").to_csv(tmp, index=False)
        output.unpersist()
        if logger is not None:
            begun = time.perf_counter()
            per_row = {"features": int(stages["features"] * 1e6) // max(n, 1),
                       "model": int(stages["decide"] * 1e6) // max(n, 1), "policy": 0}
            log_decisions(target, built, decider, logger, chunk=chunk, latency_us=per_row)
            stages["log"] = time.perf_counter() - begun
    finally:
        if logger is not None:
            logger.close()
    return SparkScoreResult(rows=n, seconds=time.perf_counter() - started, out=target,
                            top_path=top_path, actions=counts, overflow=int(overflow),
                            bundle_version=bundle.version, stages=stages,
                            log_path=logger.path if logger else None,
                            logged=logger.stats.records if logger else 0, reasons=reasons)


def _parts(target: Path) -> list[Path]:
    """The Parquet files of a Spark output directory, in partition order."""
    found = [(int(m.group(1)), p.name, p) for p in target.glob("part-*.parquet")
             if (m := _PART.match(p.name))]
    return [p for _, _, p in sorted(found)]


def _micros(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A timestamp column (any unit; Spark may write INT96, read as ns) as epoch µs."""
    unit = getattr(column.type, "unit", "us")
    ints = np.asarray(pc.cast(column, pa.int64()).to_numpy(zero_copy_only=False),
                      dtype=np.int64)
    return {"s": ints * 1_000_000, "ms": ints * 1_000, "us": ints, "ns": ints // 1_000}[unit]


def log_decisions(target: Path, built: BatchFeatures, decider: Decider, log: DecisionLog, *,
                  chunk: int = 50_000, latency_us: dict[str, int] | None = None) -> int:
    """Append the decisions :func:`score_spark` wrote to ``target`` to ``log``: the output
    read ``chunk`` rows at a time (one transaction each), the records made as the
    single-machine path makes them (:class:`~valuechain.serve.batch.PlainRecord`: the
    events of ``built``, row for row in decision order, the logged features, reasons and
    actions of the file, the capacity note of an overflow). A decision id already in the log
    is skipped. Returns the decisions appended.

    Raises
    ------
    EngineError
        The files do not hold the batch's decisions in decision order (a changed or
        foreign output directory).
    """
    from valuechain.serve.batch import PlainRecord, key_texts, plain_rows

    keys, tcol = list(decider.key_columns), decider.time_column
    names = list(decider.feature_names)
    featured = [f"feature.{c}" for c in names]
    times = np.asarray(built.frame.column("__t").to_numpy(), dtype=np.int64)
    bundle_version, policy_version = decider.bundle.version, decider.policy_version
    cap, origin, latency = decider.capacity, decider.origin, dict(latency_us or {})
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spark-score-log")
    pending: Future[int] | None = None
    appended = pos = 0
    try:
        for path in _parts(target):
            for piece in pq.ParquetFile(path).iter_batches(batch_size=chunk):
                size = piece.num_rows
                if size == 0:
                    continue
                given = built.events.slice(pos, size)
                t_list = _micros(piece.column(tcol))
                key_text = key_texts(given, keys)
                if (pos + size > len(times) or not np.array_equal(t_list, times[pos:pos + size])
                        or key_texts(piece, keys) != key_text):
                    raise EngineError(
                        f"{target}: the decisions in {path.name} are not the batch's rows "
                        f"{pos:,}-{pos + size - 1:,} in decision order; the output directory "
                        "was changed after Spark wrote it. Score the batch again.")
                events = plain_rows(given)
                values = [dict(zip(names, v.values(), strict=True))
                          for v in plain_rows(piece, featured)]
                overflow = piece.column("overflow").to_pylist()
                created = time.time_ns() // 1000
                records = [
                    PlainRecord(
                        decision_id=i, time_us=t, key=k, bundle_version=bundle_version,
                        policy_version=policy_version, event=e, features=f, score=s,
                        policy_action=pa_, action=a, overflow=o,
                        capacity_note=cap.full_note(t) if o and cap is not None else None,
                        reasons=json.loads(r), latency_us=latency, origin=origin,
                        created_at_us=created)
                    for i, t, k, e, f, s, pa_, a, o, r in zip(
                        piece.column("decision_id").to_pylist(), t_list.tolist(), key_text,
                        events, values, piece.column("score").to_pylist(),
                        piece.column("policy_action").to_pylist(),
                        piece.column("action").to_pylist(), overflow,
                        piece.column("reasons").to_pylist(), strict=True)]
                if pending is not None:
                    appended += pending.result()
                pending = pool.submit(log.append_many, records, on_repeat="skip")
                pos += size
        if pending is not None:
            appended += pending.result()
    finally:
        pool.shutdown(wait=True)
    if pos != len(times):
        raise EngineError(f"{target}: holds {pos:,} decisions, the batch has {len(times):,}; "
                          "the output directory was changed after Spark wrote it. Score the "
                          "batch again.")
    return appended


def read_decisions(path: Path) -> pa.Table:
    """The decisions :func:`score_spark` wrote (a directory of Parquet files)."""
    return pq.read_table(path)
