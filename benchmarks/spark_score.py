"""Batch scoring on Spark against one machine: rows/s with every decision's reasons and none.

Usage::

    python benchmarks/spark_score.py --project DIR [--rows 5000] [--master local[2]]

``DIR`` is a packaged, promoted project (the fraud demo); it is copied to a temporary folder.
The events are the last ``--rows`` payments of its decision source. In one process (the
Spark session started once, before the runs, and timed apart), each run decides the batch
with a durable decision log of its own and the top-150 lists:

- ``score_file`` (one machine, DuckDB features) with ``reasons`` none and all;
- ``score_spark`` (Spark features, the bundle and reasons per partition, the log from the
  driver) with ``reasons`` none, all, none, all (the first one also starts the Python
  workers and warms the JVM);
- the per-partition function alone (what each Spark task runs: score, policy, stable ids,
  reasons), on the batch's features as Arrow batches in this process, with ``reasons``
  none and all: its rows/s per core, the part of Spark scoring that grows with the rows.

Prints one line per run (rows/s of the whole call, seconds per stage) and the 1-minute
load average (the 2-core host is shared).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

import pandas as pd


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--project", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--master", default="local[2]")
    args = parser.parse_args()

    from valuechain.data.engines.spark import SparkConfig, spark_session
    from valuechain.serve.score import score_file
    from valuechain.serve.spark_score import score_spark
    from valuechain.spec.loader import load_spec

    work = Path(tempfile.mkdtemp(prefix="spark-score-"))
    project = work / "project"
    shutil.copytree(args.project, project)
    loaded = load_spec(project)
    source = loaded.spec.sources[str(getattr(loaded.spec.decision_points, "source", ""))]
    tcol = source.event_time or "ts"
    tx = pd.read_parquet(project / str(source.path))
    batch = work / "batch.parquet"
    tx.sort_values(tcol, kind="stable").tail(args.rows).to_parquet(batch)
    config = SparkConfig.model_validate({"type": "spark", "master": args.master})
    began = time.perf_counter()
    spark_session(config)
    print(f"spark session started in {time.perf_counter() - began:.1f} s "
          f"(load {os.getloadavg()[0]:.1f})")
    runs = [("one machine", "none"), ("one machine", "all"), ("spark", "none"),
            ("spark", "all"), ("spark", "none"), ("spark", "all")]
    for i, (where, reasons) in enumerate(runs):
        before = os.getloadavg()[0]
        log = work / f"log{i}.sqlite"
        if where == "spark":
            result = score_spark(project, batch, out=work / f"d{i}", top=150, engine=config,
                                 reasons=reasons, log_path=log)
        else:
            result = score_file(project, batch, out=work / f"d{i}.parquet", top=150,
                                reasons=reasons, log_path=log)
        stages = ", ".join(f"{k} {v:.1f}" for k, v in result.stages.items())
        print(f"{where:12s} reasons {reasons:5s}: {result.rows:,} rows in "
              f"{result.seconds:.1f} s = {result.rows_per_second:,.0f} rows/s "
              f"(logged {result.logged:,}; s: {stages}; load {before:.1f} -> "
              f"{os.getloadavg()[0]:.1f})", flush=True)
    partition_function(project, work / "d0.parquet")
    shutil.rmtree(work, ignore_errors=True)


def partition_function(project: Path, decisions: Path) -> None:
    """Time the ``mapInArrow`` function on the single machine's features, one core."""
    import numpy as np
    import pyarrow as pa

    from valuechain.registry import Registry, default_registry
    from valuechain.serve.decider import Decider
    from valuechain.serve.features import OnlineFeatures
    from valuechain.serve.spark_score import _scorer
    from valuechain.serve.state import MemoryState
    from valuechain.spec.loader import load_spec

    loaded = load_spec(project)
    registry = Path(default_registry(loaded)).resolve()
    bundle = Registry(registry).load()
    online = OnlineFeatures(bundle.plan(loaded.root), MemoryState())
    decider = Decider(bundle, online, None, origin="score")
    assert decider.id_scope is not None
    names = list(bundle.feature_names)
    frame = pd.read_parquet(decisions)
    tcol, keys = decider.time_column, list(decider.key_columns)
    table = pa.table({**{k: frame[k] for k in keys},
                      **{c: frame[f"feature.{c}"] for c in names},
                      "__t": frame[tcol].astype("datetime64[us, UTC]").astype("int64"),
                      "__i": np.arange(len(frame), dtype=np.int64)})
    for reasons in ("none", "all"):
        run = _scorer(str(registry), bundle.version, names, keys, decider.id_scope, reasons,
                      decider.lowest_action, decider.top_reasons)
        began = time.perf_counter()
        rows = sum(b.num_rows for b in run(iter(table.to_batches(max_chunksize=10_000))))
        took = time.perf_counter() - began
        print(f"partition function reasons {reasons:5s}: {rows:,} rows in {took:.2f} s = "
              f"{rows / took:,.0f} rows/s on one core (load {os.getloadavg()[0]:.1f})",
              flush=True)


if __name__ == "__main__":
    main()
