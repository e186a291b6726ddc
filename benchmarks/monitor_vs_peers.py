"""Benchmark: valuechain's drift monitoring against Evidently and NannyML.

A generated decision stream shaped like the fraud demo (20 numeric and 4 categorical
features, a calibrated score): a reference period of 60,000 decisions, then ``--days`` days
of ``--per-day`` decisions (30 x 100,000 = 3 M by default), with a shift in a few features
from day 20 on.

1. **Same numbers**: our PSI against Evidently's ``psi`` stat test on Evidently's own bins
   (``np.histogram_bin_edges(ref + cur, "sturges")``, passed to :func:`psi` as edges), our
   JS distance and KS statistic against NannyML's ``jensen_shannon`` (categorical) and
   ``kolmogorov_smirnov`` (continuous) per daily chunk; the largest absolute difference.
2. **Run time** of drift over the whole stream (every feature and the score, every day):
   ours (``drift_signals``: PSI + KS / JS per feature and window), Evidently (``psi`` stat
   test per feature per day, the calculation its DataDriftPreset runs), NannyML
   (``UnivariateDriftCalculator`` with KS + JS, ``chunk_period="D"``), and reading the
   decision log (``read_decisions`` over a generated SQLite log of ``--log-rows`` rows).
3. **Estimates before labels**: our ``estimate_signals`` (``valuechain.monitor.estimate``)
   against NannyML's CBPE on a simulated calibrated set (``label ~ Bernoulli(score)``,
   flagged when the score is at least 0.03), precision and recall per daily cohort, both
   against the realised values: absolute error per cohort and interval coverage.

The peers run in their own interpreter (``--peers-python``, a venv with evidently and
nannyml; they are not valuechain dependencies): this script writes the data as Parquet,
runs itself there with ``--peer-side`` and reads back a JSON of results.

    python benchmarks/monitor_vs_peers.py [--days 30] [--per-day 100000]
        [--peers-python /work/peers-venv/bin/python] [--log-rows 3000000] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

DAY_US = 86_400_000_000
ANCHOR_US = 4 * DAY_US  # Monday 1970-01-05, valuechain's period anchor
NUMERIC = [f"num_{i:02d}" for i in range(20)]
CATEGORICAL = ["risk_tier", "verified_phone", "merchant_category", "segment"]
LEVELS = {"risk_tier": (["low", "medium", "high"], [0.7, 0.2, 0.1]),
          "verified_phone": (["True", "False"], [0.85, 0.15]),
          "merchant_category": ([f"mc{i}" for i in range(10)], [0.1] * 10),
          "segment": (["consumer", "premium", "student", "business"], [0.5, 0.2, 0.2, 0.1])}


def _start() -> int:
    return int(pd.Timestamp("2025-08-04", tz="UTC").value // 1000)  # a Monday


def generate(n: int, seed: int, *, shift: float = 0.0, start_us: int = 0,
             days: int = 1) -> pd.DataFrame:
    """``n`` decisions over ``days`` days; ``shift`` moves 4 numeric and 1 categorical."""
    rng = np.random.default_rng(seed)
    data: dict[str, Any] = {}
    day = np.sort(rng.integers(0, days, n))
    data["time_us"] = start_us + day * DAY_US + rng.integers(0, DAY_US, n)
    for j, name in enumerate(NUMERIC):
        kind = j % 4
        if kind == 0:
            values = rng.lognormal(3.5 + (0.3 * shift if j < 8 else 0), 1.0, n)
        elif kind == 1:
            values = rng.poisson(2 + (2 * shift if j < 8 else 0), n).astype(float)
        elif kind == 2:
            values = rng.beta(1, 30, n)
        else:
            values = rng.normal(0, 1, n) + (0.5 * shift if j < 8 else 0)
        values[rng.random(n) < 0.01] = np.nan
        data[name] = values
    for name, (levels, p) in LEVELS.items():
        probs = np.asarray(p)
        if name == "merchant_category" and shift:
            probs = probs.copy()
            probs[-1] += 0.15 * shift
            probs /= probs.sum()
        data[name] = rng.choice(levels, n, p=probs)
    data["score"] = rng.beta(0.6 + 0.2 * shift, 60, n)
    frame = pd.DataFrame(data)
    frame["time"] = pd.to_datetime(frame["time_us"], unit="us", utc=True)
    return frame


def stream(days: int, per_day: int, seed: int = 1, shift_from: int = 20) -> pd.DataFrame:
    start = _start()
    parts = [generate(per_day, seed + d, shift=1.0 if d >= shift_from else 0.0,
                      start_us=start + d * DAY_US) for d in range(days)]
    return pd.concat(parts, ignore_index=True)


# ----------------------------------------------------------------------------- peer side

def peer_side(folder: Path, peer_days: int) -> None:
    """Runs in the peers' interpreter: Evidently's PSI and NannyML's KS/JS, timed."""
    out: dict[str, Any] = {"versions": {}}
    ref = pd.read_parquet(folder / "reference.parquet")
    cur = pd.read_parquet(folder / "current.parquet")
    cur["day"] = (cur["time_us"] - cur["time_us"].min() // DAY_US * DAY_US) // DAY_US
    features = [*NUMERIC, *CATEGORICAL, "score"]
    try:
        import evidently
        from evidently.legacy.calculations.stattests.psi import _psi
        from evidently.legacy.core import ColumnType

        out["versions"]["evidently"] = evidently.__version__
        days = sorted(cur["day"].unique())[:peer_days]
        started = time.perf_counter()
        psis: list[dict[str, Any]] = []
        for d in days:
            chunk = cur[cur["day"] == d]
            for name in features:
                kind = ColumnType.Categorical if name in CATEGORICAL else ColumnType.Numerical
                r, c = ref[name].dropna(), chunk[name].dropna()
                value, _ = _psi(r, c, kind, 0.1)
                row: dict[str, Any] = {"day": int(d), "feature": name, "psi": float(value)}
                if kind == ColumnType.Numerical and r.nunique() > 20:
                    edges = np.histogram_bin_edges(np.concatenate([r.to_numpy(),
                                                                   c.to_numpy()]), "sturges")
                    row["edges"] = edges.tolist()
                psis.append(row)
        out["evidently"] = {"seconds": time.perf_counter() - started, "days": len(days),
                            "psi": psis}
    except Exception as err:  # report, do not hide: the table says what failed
        out["evidently_error"] = f"{type(err).__name__}: {err}"
    try:
        import nannyml as nml

        out["versions"]["nannyml"] = nml.__version__
        started = time.perf_counter()
        calc = nml.UnivariateDriftCalculator(
            column_names=features, treat_as_categorical=CATEGORICAL,
            timestamp_column_name="time", continuous_methods=["kolmogorov_smirnov"],
            categorical_methods=["jensen_shannon"], chunk_period="D")
        calc.fit(ref)
        result = calc.calculate(cur).filter(period="analysis").to_df()
        seconds = time.perf_counter() - started
        rows = []
        for name in features:
            method = "jensen_shannon" if name in CATEGORICAL else "kolmogorov_smirnov"
            values = result[(name, method, "value")].to_numpy()
            starts = pd.to_datetime(result[("chunk", "chunk", "start_date")])
            for s, v in zip(starts, values, strict=True):
                rows.append({"day": str(pd.Timestamp(s).date()), "feature": name,
                             "method": method, "value": float(v)})
        out["nannyml"] = {"seconds": seconds, "values": rows}
    except Exception as err:
        out["nannyml_error"] = f"{type(err).__name__}: {err}"
    if (folder / "cbpe_reference.parquet").is_file():
        try:
            out["cbpe"] = _cbpe(folder)
        except Exception as err:
            out["cbpe_error"] = f"{type(err).__name__}: {err}"
    (folder / "peers.json").write_text(json.dumps(out))


def _cbpe(folder: Path) -> dict[str, Any]:
    """NannyML's CBPE estimate of precision and recall per daily cohort."""
    import nannyml as nml

    ref = pd.read_parquet(folder / "cbpe_reference.parquet")
    cur = pd.read_parquet(folder / "cbpe_current.parquet")
    started = time.perf_counter()
    estimator = nml.CBPE(metrics=["precision", "recall"], y_pred_proba="score",
                         y_pred="flagged", y_true="label", problem_type="classification_binary",
                         timestamp_column_name="time", chunk_period="D")
    estimator.fit(ref)
    result = estimator.estimate(cur.drop(columns=["label"])).filter(period="analysis").to_df()
    seconds = time.perf_counter() - started
    rows = []
    for metric in ("precision", "recall"):
        starts = pd.to_datetime(result[("chunk", "start_date")])
        for i, start in enumerate(starts):
            rows.append({"day": str(pd.Timestamp(start).date()), "metric": metric,
                         "value": float(result[(metric, "value")].iloc[i]),
                         "lower": float(result[(metric, "lower_confidence_boundary")].iloc[i]),
                         "upper": float(result[(metric, "upper_confidence_boundary")].iloc[i])})
    return {"seconds": seconds, "values": rows}


# ----------------------------------------------------------------------------- our side

def make_log(path: Path, rows: int, per_day: int, seed: int = 7) -> float:
    """A SQLite decision log of ``rows`` generated decisions (the fraud demo's width)."""
    import sqlite3

    from valuechain.serve.log import DecisionLog, iso_us

    if path.exists():
        return 0.0
    started = time.perf_counter()
    tmp = path.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    DecisionLog(tmp, sync="normal").close()
    conn = sqlite3.connect(tmp)
    conn.execute("PRAGMA synchronous=OFF")
    block = 250_000
    for s in range(0, rows, block):
        n = min(block, rows - s)
        frame = generate(n, seed + s, start_us=_start() + (s // per_day) * DAY_US,
                         days=max(1, n // per_day))
        feats = frame[[*NUMERIC, *CATEGORICAL]].to_json(orient="records", lines=True)
        event = frame[["num_00", "time_us"]].rename(columns={"num_00": "amount"}).to_json(
            orient="records", lines=True)
        actions = np.where(frame["score"] > 0.05, "review", "approve")
        t = frame["time_us"].to_numpy()
        values = [(s + i + 1, f"{s + i:032x}", iso_us(int(t[i])), int(t[i]), str(s + i), "v1",
                   "three_band@x", e, f, float(sc), a, a, 0, None, "[]",
                   '{"features":900,"model":1800,"policy":40}', "serve",
                   "2026-12-01T00:00:00.000000Z")
                  for i, (f, e, sc, a) in enumerate(zip(feats.splitlines(), event.splitlines(),
                                                        frame["score"], actions, strict=True))]
        conn.executemany(f"INSERT INTO decisions VALUES ({','.join('?' * 18)})", values)
        conn.commit()
    conn.execute(f"UPDATE meta SET value={rows} WHERE name='seq'")
    conn.commit()
    conn.close()
    tmp.rename(path)
    return time.perf_counter() - started


def calibrated_set(n: int, seed: int, start_us: int, days: int) -> pd.DataFrame:
    """Decisions whose scores are calibrated by construction: ``label ~ Bernoulli(score)``.

    Flagged (review or decline) when the score is at least 0.03, as a three-band policy.
    """
    rng = np.random.default_rng(seed)
    day = np.sort(rng.integers(0, days, n))
    score = rng.beta(0.5, 40, n)
    frame = pd.DataFrame({"time_us": start_us + day * DAY_US + rng.integers(0, DAY_US, n),
                          "score": score, "label": (rng.random(n) < score).astype(float)})
    frame["time"] = pd.to_datetime(frame["time_us"], unit="us", utc=True)
    frame["flagged"] = (score >= 0.03).astype(int)
    frame["role"] = np.where(score >= 0.3, "decline", np.where(score >= 0.03, "review",
                                                                "approve"))
    frame["mature"] = True
    return frame


def write_cbpe_inputs(folder: Path, days: int, per_day: int) -> pd.DataFrame:
    ref = calibrated_set(60_000, 100, _start() - 30 * DAY_US, 15)
    cur = calibrated_set(days * per_day, 101, _start(), days)
    cols = ["time", "score", "flagged", "label"]
    ref[cols].to_parquet(folder / "cbpe_reference.parquet")
    cur[cols].to_parquet(folder / "cbpe_current.parquet")
    return cur


def cbpe_table(args: argparse.Namespace, cbpe: dict[str, Any]) -> str:
    """Our estimate vs NannyML's CBPE, both against the realised values per cohort."""
    from valuechain.monitor.estimate import estimate_signals
    from valuechain.spec import load_spec

    cur = calibrated_set(args.days * args.cbpe_per_day, 101, _start(), args.days)
    spec = load_spec(Path(__file__).resolve().parents[1] / "examples" / "fraud")
    started = time.perf_counter()
    ours = estimate_signals(cur.drop(columns=["time", "flagged"]), spec, window_us=DAY_US)
    seconds = time.perf_counter() - started
    cur["day"] = cur["time"].dt.strftime("%Y-%m-%d")
    realised: dict[tuple[str, str], float] = {}
    for day, g in cur.groupby("day"):
        tp = float((g["flagged"] * g["label"]).sum())
        realised[(str(day), "precision")] = tp / g["flagged"].sum()
        realised[(str(day), "recall")] = tp / g["label"].sum()
    lines = [f"estimate before labels, {args.days} daily cohorts x {args.cbpe_per_day:,} "
             "calibrated decisions (label ~ Bernoulli(score)); absolute error per cohort "
             "against the realised value, and the share of cohorts whose interval holds it:",
             "| metric | ours: mean abs error | ours: max | ours: covered (90 % interval) | "
             "CBPE: mean abs error | CBPE: max | CBPE: covered (its 3-sigma band) |",
             "|---|---|---|---|---|---|---|"]
    ours = ours[ours["section"] == "estimate"]
    for metric in ("precision", "recall"):
        mine = ours[ours["metric"] == metric]
        errs, cov = [], []
        for _, row in mine.iterrows():
            truth = realised[(str(row["window"].date()), metric)]
            errs.append(abs(row["value"] - truth))
            cov.append(row["lower"] <= truth <= row["upper"])
        theirs = [r for r in cbpe["values"] if r["metric"] == metric]
        terr = [abs(r["value"] - realised[(r["day"], metric)]) for r in theirs]
        tcov = [r["lower"] <= realised[(r["day"], metric)] <= r["upper"] for r in theirs]
        lines.append(f"| {metric} | {np.mean(errs):.4f} | {np.max(errs):.4f} | "
                     f"{np.mean(cov):.0%} of {len(cov)} | {np.mean(terr):.4f} | "
                     f"{np.max(terr):.4f} | {np.mean(tcov):.0%} of {len(tcov)} |")
    lines.append(f"run time: ours {seconds:.2f} s (estimate_signals, every KPI metric with "
                 f"simulated intervals), CBPE {cbpe['seconds']:.2f} s (fit + estimate)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--per-day", type=int, default=100_000)
    parser.add_argument("--reference", type=int, default=60_000)
    parser.add_argument("--peers-python", default="/work/peers-venv/bin/python")
    parser.add_argument("--peer-days", type=int, default=30,
                        help="days Evidently is timed on (its time is scaled to --days)")
    parser.add_argument("--log-rows", type=int, default=3_000_000,
                        help="rows of the generated SQLite log read_decisions reads (0: skip)")
    parser.add_argument("--cbpe-per-day", type=int, default=20_000,
                        help="decisions per daily cohort of the estimate comparison (0: skip)")
    parser.add_argument("--out", type=Path, default=Path("/tmp/monitor_vs_peers"))
    parser.add_argument("--reuse-peers", action="store_true",
                        help="read the peers' results of an earlier run (same --out, same "
                             "data) instead of running them again")
    parser.add_argument("--peer-side", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    if args.peer_side:
        peer_side(args.out, args.peer_days)
        return 0

    from valuechain.monitor.drift import drift_signals, js, ks, psi
    from valuechain.monitor.inputs import Reference, read_decisions

    load = os.getloadavg()[0]
    print(f"host: {os.cpu_count()} cores, 1-min load average {load:.2f} at start")
    ref = generate(args.reference, 0, start_us=_start() - 30 * DAY_US, days=15)
    cur = stream(args.days, args.per_day)
    ref.to_parquet(args.out / "reference.parquet")
    cur.to_parquet(args.out / "current.parquet")
    reference = Reference(frame=ref.drop(columns=["time_us"]).assign(
        label=0.0, action="approve", decision_id=[str(i) for i in range(len(ref))]),
        bundle_version="bench", period="generated")
    print(f"data: reference {len(ref):,} rows, current {len(cur):,} rows "
          f"({args.days} days x {args.per_day:,}), {len(NUMERIC)} numeric + "
          f"{len(CATEGORICAL)} categorical features + score")

    started = time.perf_counter()
    signals = drift_signals(cur, reference, window_us=DAY_US)
    ours = time.perf_counter() - started
    print(f"ours: drift_signals over {len(cur):,} rows: {ours:.2f} s "
          f"({len(signals):,} signals)")

    if args.cbpe_per_day:
        write_cbpe_inputs(args.out, args.days, args.cbpe_per_day)
    else:
        (args.out / "cbpe_reference.parquet").unlink(missing_ok=True)
    peer_started = time.perf_counter()
    if args.reuse_peers and (args.out / "peers.json").is_file():
        proc = subprocess.CompletedProcess([], 0, "", "")
        print("peers: results of the earlier run reused (--reuse-peers)")
    else:
        proc = subprocess.run([args.peers_python, __file__, "--peer-side", "--out",
                               str(args.out), "--peer-days", str(args.peer_days)],
                              capture_output=True, text=True)
    if proc.returncode != 0:
        print(f"peers failed ({args.peers_python}): {proc.stderr[-2000:]}")
        peers: dict[str, Any] = {}
    else:
        peers = json.loads((args.out / "peers.json").read_text())
    print(f"peers ran in {time.perf_counter() - peer_started:.1f} s wall "
          f"({peers.get('versions')})")

    lines = ["| what | ours | peer | max abs difference | peer |", "|---|---|---|---|---|"]
    cur["day"] = (cur["time_us"] - cur["time_us"].min() // DAY_US * DAY_US) // DAY_US
    days = {int(d): g for d, g in cur.groupby("day")}
    if "evidently" in peers:
        # Evidently fills an empty bin with 1e-4, like ours, unless some non-empty bin holds
        # 0.01 % or less: then with (smallest share) / 1e6. Compared apart.
        kinds: dict[str, list[float]] = {}
        for row in peers["evidently"]["psi"]:
            chunk = days[row["day"]]
            r, c = ref[row["feature"]].dropna(), chunk[row["feature"]].dropna()
            if "edges" in row:  # Evidently's equal-width bins, given to psi() as edges
                edges = np.asarray(row["edges"])
                mine = psi(r, c, bins=edges[1:-1])
                rc, cc = np.histogram(r, edges)[0], np.histogram(c, edges)[0]
                kind = "continuous (Sturges bins)"
            else:  # <= 20 distinct values or a category: one bin per value
                mine = psi(r, c, categorical=True)
                rc, cc = r.value_counts().to_numpy(), c.value_counts().to_numpy()
                kind = "discrete and categorical (value bins)"
            small_r, small_c = rc[rc > 0].min() / len(r), cc[cc > 0].min() / len(c)
            tiny = min(small_r, small_c) <= 1e-4
            kind += (", some bin <= 0.01 %: Evidently's eps = min share / 1e6" if tiny
                     else ", every bin > 0.01 %: eps = 1e-4 on both sides")
            kinds.setdefault(kind, []).append(abs(mine - row["psi"]))
            if tiny:  # the same formula with Evidently's per-side epsilon
                their_eps = tuple(s / 1e6 if s <= 1e-4 else 1e-4 for s in (small_r, small_c))
                same = (psi(r, c, bins=edges[1:-1], eps=their_eps) if "edges" in row
                        else psi(r, c, categorical=True, eps=their_eps))
                kinds.setdefault(kind.split(",")[0] + ", tiny bins, ours given Evidently's "
                                 "per-side eps", []).append(abs(same - row["psi"]))
        for kind, diffs in sorted(kinds.items()):
            lines.append(f"| PSI, {kind}; {len(diffs)} feature-days | psi() | "
                         f"psi_stat_test | {max(diffs):.2e} | evidently "
                         f"{peers['versions'].get('evidently')} |")
    else:
        lines.append(f"| PSI | | | not compared: {peers.get('evidently_error', 'no peers')} "
                     "| evidently |")
    if "nannyml" in peers:
        diffs_js, diffs_ks = [], []
        for row in peers["nannyml"]["values"]:
            day = (pd.Timestamp(row["day"], tz="UTC").value // 1000 - _start()) // DAY_US
            if day not in days:
                continue
            chunk = days[int(day)]
            if row["method"] == "jensen_shannon":
                diffs_js.append(abs(js(ref[row["feature"]], chunk[row["feature"]])
                                    - row["value"]))
            else:
                diffs_ks.append(abs(ks(ref[row["feature"]], chunk[row["feature"]])[0]
                                    - row["value"]))
        version = peers["versions"].get("nannyml")
        lines.append(f"| JS distance, {len(diffs_js)} categorical feature-days | js() | "
                     f"jensen_shannon | {max(diffs_js):.2e} | nannyml {version} |")
        lines.append(f"| KS statistic, {len(diffs_ks)} feature-days (NannyML bins a "
                     f"reference of 10,000+ rows into 10,000 bins: an approximation) | ks() | "
                     f"kolmogorov_smirnov | {max(diffs_ks):.2e} | nannyml {version} |")
    else:
        lines.append(f"| JS / KS | | | not compared: {peers.get('nannyml_error', 'no peers')}"
                     " | nannyml |")
    print("\n".join(lines))

    timing = ["| drift over the stream | seconds | rows/s |", "|---|---|---|"]
    timing.append(f"| valuechain drift_signals (PSI + KS/JS, 24 features + score, "
                  f"{args.days} windows) | {ours:.2f} | {len(cur) / ours:,.0f} |")
    if "evidently" in peers:
        ev = peers["evidently"]
        scaled = ev["seconds"] * args.days / max(1, ev["days"])
        note = "" if ev["days"] == args.days else f" (timed on {ev['days']} days, scaled)"
        timing.append(f"| Evidently psi stat test per feature per day{note} | {scaled:.2f} "
                      f"| {len(cur) / scaled:,.0f} |")
    if "nannyml" in peers:
        nm = peers["nannyml"]["seconds"]
        timing.append(f"| NannyML UnivariateDriftCalculator (KS + JS, daily chunks) | "
                      f"{nm:.2f} | {len(cur) / nm:,.0f} |")
    if args.log_rows:
        log = args.out / f"decisions-{args.log_rows}.sqlite"
        made = make_log(log, args.log_rows, args.per_day)
        if made:
            print(f"generated {log} ({args.log_rows:,} rows) in {made:.0f} s")
        started = time.perf_counter()
        table = read_decisions(log)
        seconds = time.perf_counter() - started
        timing.append(f"| valuechain read_decisions, SQLite log of {len(table):,} rows "
                      f"({log.stat().st_size / 1e9:.1f} GB, {table.shape[1]} columns) | "
                      f"{seconds:.2f} | {len(table) / seconds:,.0f} |")
        cache = args.out / "decisions.flat.parquet"
        cache.unlink(missing_ok=True)
        last_day = pd.Timestamp(int(table["time_us"].max()) // DAY_US * DAY_US, unit="us",
                                tz="UTC").to_pydatetime()
        for what, kwargs in (("first run with cache= (full read + cache write)",
                              {"cache": cache}),
                             ("cache= with nothing appended (cache read)", {"cache": cache}),
                             ("one day's rows (what a daily run adds to the cache read)",
                              {"since": last_day})):
            started = time.perf_counter()
            part = read_decisions(log, **kwargs)  # type: ignore[arg-type]
            seconds = time.perf_counter() - started
            timing.append(f"| read_decisions, {what}: {len(part):,} rows | {seconds:.2f} | "
                          f"{len(part) / seconds:,.0f} |")
    print("\n".join(timing))
    if "cbpe" in peers:
        print(cbpe_table(args, peers["cbpe"]))
    else:
        print(f"estimate vs NannyML CBPE: not compared ({peers.get('cbpe_error', 'no peers')})")
    print(f"1-min load average at the end: {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
