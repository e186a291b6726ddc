"""Batch scoring: ``valuechain score`` on many rows, against the row-by-row path and the bare
model.

Usage::

    python benchmarks/score.py --project DIR [--rows 1000000] [--online-rows 5000]
                               [--reasons none,flagged,all] [--all-rows 100000]
                               [--out results.md]

``DIR`` is a packaged, promoted project (the fraud demo, ``make demo``); it is copied to a
temporary folder (nothing is written into it). The events are the first ``--rows`` payments
of its decision source (from the first one: nothing before them to warm or to read as
history). Each measurement runs ``valuechain score ... --json`` in a fresh process (imports,
bundle loading, the offline build, scoring, the durable decision log, the Parquet output and
the top-150 lists all counted) and reads its rows/s and peak resident memory:

- **batch** (the default vectorised path) on ``--rows`` events, for each ``--reasons``
  mode; ``all`` (every decision's reasons: LightGBM TreeSHAP, ~1 ms a row) runs on the first
  ``--all-rows`` events only, to stay bounded;
- **online** (``--online``, the row-by-row reference) on the first ``--online-rows`` events,
  and batch on the same slice: the ratio;
- **bare model**: the bundle's calibrated score of the same rows' ready feature matrix (from
  the batch output), in one call — the floor no scoring path can beat; and the per-row cost
  of the contributions (reasons) on 20,000 rows.

The 1-minute load average is printed before and after each run (the 2-core host is shared).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]


def load() -> float:
    return os.getloadavg()[0]


def run_score(project: Path, events: Path, work: Path, tag: str, *extra: str) -> dict[str, Any]:
    """``valuechain score`` in a fresh process; its JSON result plus wall time and loads."""
    out = work / f"{tag}.parquet"
    log = work / f"{tag}.sqlite"
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    before = load()
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", "from valuechain.cli import main; main()", "score", "--spec",
         str(project), "--input",
         str(events), "--out", str(out), "--log", str(log), "--top", "150", "--json", *extra],
        capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"valuechain score failed ({tag}):\n{done.stdout}\n{done.stderr}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    result.update(tag=tag, wall=wall, load_before=before, load_after=load(), out=str(out))
    print(f"{tag}: {result['rows']:,} rows in {wall:.1f} s wall ({result['rows_per_second']:,.0f}"
          f" rows/s inside), peak {result['peak_rss_mb']:,.0f} MB, load {before:.1f} -> "
          f"{result['load_after']:.1f}; stages {result.get('stages')}", flush=True)
    return result


def bare_model(project: Path, decisions: Path) -> dict[str, float]:
    """Seconds per row of the bundle's score (all rows) and contributions (20,000 rows)."""
    sys.path.insert(0, str(ROOT / "src"))
    from valuechain.registry import Registry, default_registry
    from valuechain.spec.loader import load_spec

    bundle = Registry(default_registry(load_spec(project))).load()
    names = list(bundle.feature_names)
    frame = pd.read_parquet(decisions, columns=[f"feature.{n}" for n in names])
    frame.columns = names
    bundle.score(frame.head(100))  # warm the predictor
    before = load()
    started = time.perf_counter()
    bundle.score(frame)
    score_s = time.perf_counter() - started
    part = frame.head(20_000)
    started = time.perf_counter()
    bundle.contributions(part)
    contrib_s = time.perf_counter() - started
    out = {"rows": float(len(frame)), "score_rows_per_s": len(frame) / score_s,
           "contrib_ms_per_row": 1000 * contrib_s / len(part), "load_before": before,
           "load_after": load()}
    print(f"bare model: score {out['score_rows_per_s']:,.0f} rows/s on {len(frame):,} rows; "
          f"contributions {out['contrib_ms_per_row']:.3f} ms/row", flush=True)
    return out


def marginal(result: dict[str, Any]) -> float:
    """Milliseconds per row of the features and decide stages (without the fixed costs:
    process start, imports, loading the bundle; the online path's warm-up excluded)."""
    stages = result.get("stages", {})
    spent = stages.get("features.total", 0.0) + stages.get("decide", 0.0)
    return 1000.0 * spent / max(int(result["rows"]), 1)


def table(results: list[dict[str, Any]], bare: dict[str, float], online_ratio: float,
          rows: int) -> str:
    lines = ["| run | rows | wall s | rows/s (inside) | features s | decide s | ms/row "
             "(features + decide) | peak RSS MB | load 1-min before → after |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        stages = r.get("stages", {})
        features = stages.get("features.total", stages.get("warm", 0.0))
        lines.append(f"| {r['tag']} | {r['rows']:,} | {r['wall']:.1f} | "
                     f"{r['rows_per_second']:,.0f} | {features:.1f} | "
                     f"{stages.get('decide', 0.0):.1f} | {marginal(r):.3f} | "
                     f"{r['peak_rss_mb']:,.0f} | "
                     f"{r['load_before']:.1f} → {r['load_after']:.1f} |")
    lines.append(f"| bare model (calibrated score only, one call) | {int(bare['rows']):,} | – "
                 f"| {bare['score_rows_per_s']:,.0f} | – | – | "
                 f"{1000 / bare['score_rows_per_s']:.4f} | – | {bare['load_before']:.1f} → "
                 f"{bare['load_after']:.1f} |")
    lines.append("")
    lines.append(f"Batch / row-by-row on the same slice, end to end (fixed costs — imports, "
                 f"bundle, warm-up — weigh on a small slice): **{online_ratio:,.1f}×**. "
                 f"Reasons (LightGBM `pred_contrib`): {bare['contrib_ms_per_row']:.3f} ms/row.")
    online = next((r for r in results if r["tag"].startswith("online")), None)
    for r in results:
        if online is not None and r is not online:
            lines.append(f"Per-row cost (features + decide), row by row / {r['tag']}: "
                         f"**{marginal(online) / marginal(r):,.1f}×**.")
    main = next((r for r in results if r["rows"] == rows), None)
    if main is not None:
        lines.append(f"Batch at {rows:,} rows vs the bare model: "
                     f"{main['rows_per_second'] / bare['score_rows_per_s']:.3f}× its rate.")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=Path, required=True)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--online-rows", type=int, default=5_000)
    parser.add_argument("--all-rows", type=int, default=100_000)
    parser.add_argument("--reasons", default="none,flagged,all")
    parser.add_argument("--out", type=Path, default=None, help="Also write the table here.")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="vc-score-bench-"))
    try:
        project = work / "project"
        shutil.copytree(args.project, project)
        tx = pd.read_parquet(project / "data" / "transactions.parquet")
        tx = tx.sort_values(["ts", "transaction_id"], kind="stable")
        events = work / "events.parquet"
        tx.head(args.rows).to_parquet(events)
        online_events = work / "online-events.parquet"
        tx.head(args.online_rows).to_parquet(online_events)
        del tx
        results: list[dict[str, Any]] = []
        for mode in [m for m in args.reasons.split(",") if m]:
            if mode == "all" and args.all_rows < args.rows:
                sliced = work / "all-events.parquet"
                pd.read_parquet(events).head(args.all_rows).to_parquet(sliced)
                results.append(run_score(project, sliced, work, "batch, reasons all",
                                         "--reasons", "all"))
            else:
                results.append(run_score(project, events, work, f"batch, reasons {mode}",
                                         "--reasons", mode))
        online = run_score(project, online_events, work, "online (row by row)", "--online")
        same = run_score(project, online_events, work, "batch, same slice")
        results += [online, same]
        ratio = same["rows_per_second"] / online["rows_per_second"]
        print(f"per-row cost, row by row / batch on the slice: "
              f"{marginal(online) / marginal(same):.1f}x", flush=True)
        main_run = next((r for r in results if r["rows"] == args.rows), results[0])
        bare = bare_model(project, Path(main_run["out"]))
        text = table(results, bare, ratio, args.rows)
        print()
        print(text)
        if args.out:
            args.out.write_text(text + "\n")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
