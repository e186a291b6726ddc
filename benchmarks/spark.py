"""Build the fraud example's frame on Spark (local mode) and on DuckDB: time and peak memory.

Usage::

    python benchmarks/spark.py --rows 1000000 10000000 [--hot-share 0.05] [--hot-rows 1000000]
        [--out FILE]

For each size the fraud world (``valuechain.demo.fraud.generate_fraud``) is generated once;
each engine executes the plan of ``examples/fraud`` (reading the sources, decision points,
features and labels; not writing the frame) in a fresh process, so the peak resident memory
of the process and its children, the Spark JVM included, is the build's own. With
``--hot-share`` a second world has one hot customer holding that share of the transactions
(the skew case: that key's rows all land in one task). Prints a Markdown table, and for
Spark each stage's seconds and skew (largest partition / median partition).
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

_CHILD = """
import json, resource, sys, time
from valuechain.data.engines import get_engine
from valuechain.data.plan import make_plan
from valuechain.spec import load_spec
settings = json.loads(sys.argv[2])
engine = get_engine(settings)
plan = make_plan(load_spec(sys.argv[1]), None)
started = time.perf_counter()
out = engine.execute(plan)
seconds = time.perf_counter() - started
stages = [dict(key=s.key, rows=s.rows, seconds=round(s.seconds, 1), skew=round(s.skew, 2))
          for s in getattr(engine, "stats", [])]
if settings["type"] == "spark":
    from pyspark.sql import SparkSession
    session = SparkSession.getActiveSession()
    if session is not None:
        session.stop()
    time.sleep(1)
own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print(json.dumps({"seconds": seconds, "rows": out.frame.num_rows,
                  "peak_mb": own + children, "stages": stages}))
"""


def world(folder: Path, rows: int, hot_share: float) -> Path:
    """A copy of examples/fraud with ``rows`` generated transactions (one hot customer with
    ``hot_share`` of them when > 0)."""
    import pandas as pd

    from valuechain.demo.fraud import generate_fraud

    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(ROOT / "examples" / "fraud" / "valuechain.yaml", folder / "valuechain.yaml")
    generate_fraud(folder / "data", rows=rows, seed=7)
    if hot_share > 0:
        path = folder / "data" / "transactions.parquet"
        tx = pd.read_parquet(path)
        hot = tx.sample(frac=hot_share, random_state=1).index
        tx.loc[hot, "customer_id"] = int(tx["customer_id"].iloc[0])
        tx.to_parquet(path)
    return folder


def build(project: Path, engine: dict[str, object], timeout: float) -> dict[str, Any]:
    """Build in a fresh process; seconds, rows and peak memory (MB, process + children)."""
    done = subprocess.run([sys.executable, "-c", _CHILD, str(project), json.dumps(engine)],
                          capture_output=True, text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument("--hot-share", type=float, default=0.05)
    parser.add_argument("--hot-rows", type=int, nargs="*",
                        help="sizes that also get the hot-key world (default: the smallest)")
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--partitions", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=3600)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    engines = {"duckdb": {"type": "duckdb", "threads": 2},
               "spark": {"type": "spark", "master": args.master,
                         "shuffle_partitions": args.partitions,
                         "conf": {"spark.driver.memory": "6g"}}}
    lines = ["| rows | world | engine | build s | peak MB |", "|---|---|---|---|---|"]
    base = Path(tempfile.mkdtemp(prefix="vc-spark-bench-"))
    try:
        for rows in args.rows:
            for label, share in (("uniform", 0.0), (f"hot key {args.hot_share:.0%}",
                                                    args.hot_share)):
                hot_rows = args.hot_rows if args.hot_rows is not None else [min(args.rows)]
                if share > 0.0 and rows not in hot_rows:
                    continue
                began = time.perf_counter()
                project = world(base / f"{rows}-{label[:3]}", rows, share)
                print(f"# generated {rows:,} rows ({label}) in "
                      f"{time.perf_counter() - began:.0f} s", flush=True)
                for name, engine in engines.items():
                    got = build(project, engine, args.timeout)
                    cell = (f"{got['seconds']:.1f} | {got['peak_mb']:,.0f}" if "seconds" in got
                            else f"failed: {got['error']} | -")
                    for stage in got.get("stages", []):
                        print(f"#   stage {stage['key']}: {stage['rows']:,} rows, "
                              f"{stage['seconds']} s, skew {stage['skew']}", flush=True)
                    line = f"| {rows:,} | {label} | {name} | {cell} |"
                    lines.append(line)
                    print(line, flush=True)
                shutil.rmtree(project, ignore_errors=True)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    table = "\n".join(lines)
    print(table)
    if args.out:
        args.out.write_text(table + "\n")


if __name__ == "__main__":
    main()
