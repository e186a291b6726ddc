"""CDNOW win-back: our candidates against a recency rule and BG/NBD, on the test Mondays.

Usage::

    python benchmarks/cdnow_churn.py [--spec DIR] [--run DIR] [--seed N] [--n-boot N]
                                     [--out FILE.md]

``--spec`` is the project (default ``examples/cdnow-churn``, which reads
``../shared/data/cdnow/CDNOW_master.txt`` beside the repository). The script builds the frame
and trains (``valuechain.api.build`` / ``train``; ``--run`` reuses a finished run directory
instead), then scores the test Mondays of ``split`` with:

- every candidate of the run (``prior``, ``rules``, ``logistic``, ``lightgbm``; calibrated
  scores, as ``predictions_test.parquet`` holds them);
- the **recency rule**: rank by ``days_since_last`` (the frame's feature; today's rule,
  "no purchase for 13 weeks", is its threshold at 91 days);
- **BG/NBD** (:mod:`valuechain.forecast.bgnbd`), fitted point in time: for each test Monday
  ``t`` the model is fitted on the purchases known at ``t`` (dated before ``t``'s day;
  calibration end = the Sunday before, ``T`` counted to it), never on later data, and scores
  every customer of that Monday with ``1 - P(alive)`` and with the probability of no
  purchase in the next 13 weeks,
  ``P(lapse) = 1 - P(alive) + P(alive) * ((α + T) / (α + T + 13))^(r + x)``
  (alive, the purchases are Poisson with a rate whose posterior is Gamma(r + x, α + T); a
  customer can only drop out after a purchase). One fit per Monday, all customers pooled, as
  Fader & Hardie fit the cohort.

The label is the spec's ``lapses_13w`` (no purchase dated ``t``'s day .. 90 days after); the
script checks it against the purchases (``rfm_summary``'s holdout count) on every test row.
AUC and average precision come with 95 % intervals that resample **customers** (the same
customer recurs every Monday: ``valuechain.evaluate.bootstrap`` with customers as blocks),
and each row's difference to the run's best candidate (chosen on validation) is a paired
interval over the same resamples. There is no outreach history in CDNOW (nobody was contacted), so no uplift can be
estimated: the comparison is of risk rankings only.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from valuechain import api
from valuechain.evaluate.bootstrap import Interval, block_bootstrap, paired_difference
from valuechain.forecast.bgnbd import fit_bgnbd, rfm_summary
from valuechain.spec import load_spec
from valuechain.spec.loader import LoadedSpec

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SPEC = ROOT / "examples" / "cdnow-churn"
HORIZON_WEEKS = 13.0


@dataclass(frozen=True)
class Row:
    """One scorer's test figures."""

    name: str
    what: str
    auc: Interval
    ap: Interval
    auc_vs_best: Interval | None


def read_purchases(loaded: LoadedSpec, source: str = "purchases") -> pd.DataFrame:
    """The raw purchase log the spec's source points to (customer ids as text)."""
    src = loaded.spec.sources[source]
    assert src.path is not None
    path = (loaded.root / src.path).resolve()
    names = src.columns if src.columns else None
    raw = pd.read_csv(path, sep=r"\s+", header=None if names else 0, names=names,
                      dtype={"customer_id": str})
    return raw


def bgnbd_scores(purchases: pd.DataFrame, mondays: list[pd.Timestamp]) -> tuple[
        pd.DataFrame, list[dict[str, object]]]:
    """Per (customer, Monday): ``1 - P(alive)``, ``P(lapse in 13 weeks)`` and the lapse seen
    in the purchases, each Monday's model fitted on the purchases dated before it."""
    out: list[pd.DataFrame] = []
    fits: list[dict[str, object]] = []
    for t in mondays:
        cal_end = (t - pd.Timedelta(days=1)).date()
        hold_end = (t + pd.Timedelta(days=90)).date()
        summary = rfm_summary(purchases, customer="customer_id", time="date",
                              calibration_end=cal_end, holdout_end=hold_end)
        model = fit_bgnbd(summary)
        x, tx, big_t = (summary[c].to_numpy() for c in ("frequency", "recency", "T"))
        alive = model.probability_alive(x, tx, big_t)
        stays_quiet = ((model.alpha + big_t) / (model.alpha + big_t + HORIZON_WEEKS)) ** (
            model.r + x)
        out.append(pd.DataFrame({
            "customer_id": summary.index.to_numpy(), "decision_time": t,
            "bgnbd_dead": 1.0 - alive, "bgnbd_lapse": 1.0 - alive + alive * stays_quiet,
            "lapse_seen": (summary["frequency_holdout"].to_numpy() == 0).astype(int)}))
        fits.append({"t": str(t.date()), "r": model.r, "alpha": model.alpha, "a": model.a,
                     "b": model.b, "customers": float(len(summary))})
    return pd.concat(out, ignore_index=True), fits


def _fmt(iv: Interval) -> str:
    return f"{iv.value:.3f} [{iv.low:.3f}, {iv.high:.3f}]"


def compare(loaded: LoadedSpec, run_dir: Path, *, n_boot: int, seed: int
            ) -> tuple[list[Row], dict[str, object]]:
    """The comparison table's rows and the context figures."""
    preds = pd.read_parquet(run_dir / "predictions_test.parquet")
    frame = pd.read_parquet(loaded.workspace / "build" / "frame.parquet",
                            columns=["decision_id", "days_since_last"])
    preds = preds.merge(frame, on="decision_id", how="left", validate="one_to_one")
    mondays = sorted(pd.to_datetime(preds["decision_time"]).unique())
    started = time.perf_counter()
    bg, fits = bgnbd_scores(read_purchases(loaded), [pd.Timestamp(t) for t in mondays])
    fit_seconds = time.perf_counter() - started
    preds["decision_time"] = pd.to_datetime(preds["decision_time"])
    both = preds.merge(bg, on=["customer_id", "decision_time"], how="left",
                       validate="one_to_one")
    missing = int(both["bgnbd_lapse"].isna().sum())
    mismatched = int((both["lapse_seen"] != both["label"]).sum())
    y = both["label"].to_numpy().astype(float)
    blocks = both["customer_id"].to_numpy()
    candidates = sorted(c.removeprefix("score_") for c in both.columns
                        if c.startswith("score_"))
    scorers: dict[str, tuple[str, np.ndarray]] = {
        f"valuechain {c}": ("calibrated candidate score", both[f"score_{c}"].to_numpy())
        for c in candidates}
    scorers["recency rule"] = ("days since the last purchase",
                               both["days_since_last"].to_numpy().astype(float))
    scorers["BG/NBD 1 - P(alive)"] = ("fitted at each Monday", both["bgnbd_dead"].to_numpy())
    scorers["BG/NBD P(no purchase in 13 w)"] = ("fitted at each Monday",
                                                both["bgnbd_lapse"].to_numpy())
    aucs = {name: block_bootstrap("roc_auc", blocks, s, y, n_boot=n_boot, seed=seed)
            for name, (_, s) in scorers.items()}
    # The run's choice, made on validation (never the best on test).
    chosen = json.loads((run_dir / "metrics.json").read_text())["best_candidate"]
    best = f"valuechain {chosen}"
    rows = []
    for name, (what, s) in scorers.items():
        ap = block_bootstrap("average_precision", blocks, s, y, n_boot=n_boot, seed=seed)
        diff = (None if name == best else
                paired_difference("roc_auc", blocks, scorers[best][1], s, y, n_boot=n_boot,
                                  seed=seed))
        rows.append(Row(name, what, aucs[name], ap, diff))
    context: dict[str, object] = {
        "rows": len(both), "customers": int(pd.Series(blocks).nunique()),
        "mondays": [str(pd.Timestamp(t).date()) for t in mondays],
        "lapse_rate": float(y.mean()), "best": best, "missing_bgnbd": missing,
        "label_mismatches": mismatched, "fits": fits, "fit_seconds": fit_seconds,
        "n_boot": n_boot}
    return rows, context


def markdown(rows: list[Row], context: dict[str, object]) -> str:
    mondays = context["mondays"]
    assert isinstance(mondays, list)
    lines = [
        f"CDNOW win-back (examples/cdnow-churn): test Mondays {mondays[0]} .. {mondays[-1]} "
        f"({len(mondays)} weeks), {context['rows']:,} customer-Mondays of "
        f"{context['customers']:,} customers; label `lapses_13w` (no purchase in the next 13 "
        f"weeks) = {context['lapse_rate']:.1%}. 95 % intervals resample customers "
        f"({context['n_boot']} resamples); the last column is the paired AUC difference of "
        f"the run's best candidate ({context['best']}, chosen on validation by `valuechain "
        f"train`) minus the row.", "",
        "| scorer | what | test AUC | test AP | best − row (AUC) |",
        "|---|---|---:|---:|---:|"]
    for r in rows:
        diff = "—" if r.auc_vs_best is None else (
            f"{r.auc_vs_best.value:+.3f} [{r.auc_vs_best.low:+.3f}, {r.auc_vs_best.high:+.3f}]")
        lines.append(f"| {r.name} | {r.what} | {_fmt(r.auc)} | {_fmt(r.ap)} | {diff} |")
    fits = context["fits"]
    assert isinstance(fits, list)
    lines += ["", "BG/NBD fitted on the purchases known at each test Monday "
              f"({context['fit_seconds']:.1f} s for {len(fits)} fits):", "",
              "| Monday | customers | r | α | a | b |", "|---|---:|---:|---:|---:|---:|"]
    lines += [f"| {f['t']} | {f['customers']:,.0f} | {f['r']:.3f} | {f['alpha']:.3f} | "
              f"{f['a']:.3f} | {f['b']:.3f} |" for f in fits]
    lines += ["", f"Label check: {context['label_mismatches']} of {context['rows']:,} test rows "
              "disagree with the purchases' own 13-week count (rfm_summary's holdout); "
              f"{context['missing_bgnbd']} rows have no BG/NBD score.", "",
              "No outreach history exists in CDNOW (nobody was contacted, nobody held out): "
              "the effect of a contact cannot be estimated, so uplift is skipped; these are "
              "risk rankings only."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else "")
    parser.add_argument("--spec", type=Path, default=DEFAULT_SPEC)
    parser.add_argument("--run", type=Path, default=None,
                        help="a finished run directory of the spec (skips build and train)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--n-boot", type=int, default=200)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    loaded = load_spec(args.spec)
    src = loaded.spec.sources["purchases"]
    if not (loaded.root / (src.path or "")).exists():
        print(f"CDNOW data not found at {(loaded.root / (src.path or '')).resolve()}; "
              "skipped.")
        return 0
    run_dir = args.run
    if run_dir is None:
        api.build(loaded)
        result = api.train(loaded, seed=args.seed)
        run_dir = loaded.workspace / "runs" / result.run_id
    rows, context = compare(loaded, run_dir, n_boot=args.n_boot, seed=args.seed)
    text = markdown(rows, context)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
