"""BG/NBD on the CDNOW sample: the published anchor of Fader, Hardie & Lee (2005).

Usage::

    python benchmarks/bgnbd_cdnow.py [--data DIR] [--out FILE.md] [--results]

``DIR`` holds ``CDNOW_sample.txt`` (default: ``../shared/data/cdnow`` beside the repository,
then ``/work/shared/data/cdnow``). The 2,357 customers' purchases are summarised with
:func:`valuechain.forecast.bgnbd.rfm_summary` (calibration 1997-01-01..1997-09-30 = 39 weeks,
holdout 1997-10-01..1998-06-30 = 39 weeks; one transaction per customer-day), the model is
fitted, and the script prints:

- the fitted parameters beside the published ones, the log-likelihood and the fit time;
- the holdout total of repeat transactions: actual, the sum of each customer's conditional
  expectation ``E[Y(39) | x, t_x, T]``, and the error in % of the actual;
- the weekly cumulative repeat transactions of the cohort (every 13 weeks): actual against
  :func:`~valuechain.forecast.bgnbd.cumulative_tracking` (each customer from their own first
  purchase).

Time convention (the one ``T`` uses): a purchase on day ``d`` (days since 1997-01-01) is at
``d / 7`` weeks; week ``k`` covers days ``7(k-1) .. 7k-1``, so its cumulative count is
compared with the expectation at ``(7k - 1) / 7`` weeks. ``--out`` writes the table as
Markdown; ``--results`` also replaces the ``## bgnbd_cdnow`` section of
``benchmarks/RESULTS.md``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from valuechain.forecast.bgnbd import cumulative_tracking, fit_bgnbd, rfm_summary

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DIRS = (ROOT.parent / "shared" / "data" / "cdnow", Path("/work/shared/data/cdnow"))
PUBLISHED = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426, "log-likelihood": -9582.4}
ORIGIN, CAL_END, HOLD_END = "1997-01-01", "1997-09-30", "1998-06-30"


def run(data: Path) -> str:
    """Fit, predict and track; return the Markdown report."""
    raw = pd.read_csv(data / "CDNOW_sample.txt", sep=r"\s+", header=None,
                      names=["orig_id", "id", "date", "cds", "dollars"])
    summary = rfm_summary(raw, customer="id", time="date", calibration_end=CAL_END,
                          holdout_end=HOLD_END, origin=ORIGIN)
    started = time.perf_counter()
    model = fit_bgnbd(summary)
    fit_seconds = time.perf_counter() - started

    lines = [f"CDNOW sample: {len(raw):,} rows, {len(summary):,} customers, "
             f"{int(summary['frequency'].sum()):,} calibration repeat transactions "
             "(one per customer-day)", "",
             "| parameter | fitted | published |", "|---|---:|---:|"]
    fitted = {"r": model.r, "alpha": model.alpha, "a": model.a, "b": model.b,
              "log-likelihood": model.log_likelihood}
    for name, value in fitted.items():
        digits = 1 if name == "log-likelihood" else 3
        lines.append(f"| {name} | {value:.{digits + 1}f} | {PUBLISHED[name]:.{digits}f} |")
    lines += ["", f"fit time: {fit_seconds:.2f} s", ""]

    actual = float(summary["frequency_holdout"].sum())
    predicted = float(model.conditional_expected(
        39.0, summary["frequency"], summary["recency"], summary["T"]).sum())
    lines += ["| holdout (39 weeks) | repeat transactions |", "|---|---:|",
              f"| actual | {actual:,.0f} |",
              f"| BG/NBD E[Y(39) given x, t_x, T], summed | {predicted:,.1f} |",
              f"| error | {100 * (predicted - actual) / actual:+.1f} % |", ""]
    each = pd.Series(model.conditional_expected(
        39.0, summary["frequency"], summary["recency"], summary["T"]), index=summary.index)
    bins = summary["frequency"].clip(upper=7).astype(int)
    table = pd.DataFrame({"customers": bins.value_counts().sort_index(),
                          "actual": summary["frequency_holdout"].groupby(bins).mean(),
                          "expected": each.groupby(bins).mean()})
    lines += ["| calibration repeat purchases | customers | holdout actual (mean) | "
              "BG/NBD conditional expectation (mean) |", "|---:|---:|---:|---:|"]
    for x, row in table.iterrows():
        label = "7+" if x == 7 else str(x)
        lines.append(f"| {label} | {int(row['customers'])} | {row['actual']:.3f} | "
                     f"{row['expected']:.3f} |")
    lines.append("")

    days = raw.assign(day=(pd.to_datetime(raw["date"].astype(str), format="%Y%m%d")
                           - pd.Timestamp(ORIGIN)).dt.days)[["id", "day"]].drop_duplicates()
    repeat_days = days.sort_values(["id", "day"])[days.sort_values(["id", "day"])
                                                  .duplicated("id")]["day"].to_numpy()
    weeks = np.arange(1, 79)
    actual_cum = np.array([(repeat_days <= 7 * k - 1).sum() for k in weeks], dtype=float)
    expected_cum = cumulative_tracking(model, summary["first"], (7 * weeks - 1) / 7)
    lines += ["| week | actual cumulative | BG/NBD expected | error |", "|---:|---:|---:|---:|"]
    for k in (13, 26, 39, 52, 65, 78):
        a, e = actual_cum[k - 1], expected_cum[k - 1]
        lines.append(f"| {k} | {a:,.0f} | {e:,.1f} | {100 * (e - a) / a:+.1f} % |")
    hold = weeks > 39
    mape = float(np.mean(np.abs(expected_cum[hold] - actual_cum[hold]) / actual_cum[hold]))
    lines += ["", f"mean absolute % error of the weekly cumulative, weeks 40-78: "
              f"{100 * mape:.1f} %; weeks 1-39: "
              f"{100 * float(np.mean(np.abs(expected_cum[~hold] - actual_cum[~hold]) / np.maximum(actual_cum[~hold], 1))):.1f} %"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--results", action="store_true")
    args = parser.parse_args(argv)
    data = args.data or next((d for d in DEFAULT_DIRS if (d / "CDNOW_sample.txt").is_file()),
                             None)
    if data is None or not (data / "CDNOW_sample.txt").is_file():
        print(f"CDNOW_sample.txt not found in {args.data or DEFAULT_DIRS}; pass --data DIR",
              file=sys.stderr)
        return 2
    report = run(data)
    print(report)
    if args.out:
        args.out.write_text(report)
    if args.results:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from _results import write_section

        write_section("## bgnbd_cdnow", "## bgnbd_cdnow\n\n" + report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
