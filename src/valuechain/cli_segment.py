"""``valuechain segment``: thin over :func:`valuechain.segments.segment_project`.

Exit status: 0 when the run completes (whatever the verdict: segments, no structure or no
stable segments), 2 for a user mistake (no ``segments:`` block, an unknown feature, a time
off the schedule, a bad flag), 3 for an internal error. See docs/segments.md.
"""

from __future__ import annotations

import math
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from valuechain.cli import JsonOpt, SpecOpt, _emit, _load, _progress, app, console, user_errors

__all__ = ["segment_command"]


def _pct(value: float | None, low: float | None = None, high: float | None = None) -> str:
    if value is None or not math.isfinite(value):
        return "pending"
    text = f"{value:.1%}"
    if low is not None and high is not None and math.isfinite(low) and math.isfinite(high):
        text += f" [{low:.1%}, {high:.1%}]"
    return text


@app.command("segment")
@user_errors
def segment_command(
    spec: SpecOpt = Path("."),
    as_of: Annotated[str | None, typer.Option(
        "--as-of", help="Decision time to segment at (ISO 8601, on the schedule); default "
        "segments.as_of, else the latest with a mature label and a next period.")] = None,
    k: Annotated[str | None, typer.Option(
        "--k", help="Range of k tried, e.g. 2-6; default segments.k.")] = None,
    methods: Annotated[str | None, typer.Option(
        "--methods", help="Clustering methods, comma-separated: kmeans, gmm; default "
        "segments.methods.")] = None,
    n_boot: Annotated[int, typer.Option(
        "--n-boot", help="Bootstrap resamples per k (cluster Jaccard).")] = 20,
    seed: Annotated[int, typer.Option(help="Seed of every random draw.")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Behavioural segments, checked: tendency, k by stability, stability over time, meaning.

    Writes <workspace>/segments/segments.json and assignments.parquet (read by the report).
    """
    from valuechain.errors import SpecError
    from valuechain.segments import segment_project
    from valuechain.segments.cluster import Method

    moment = None
    if as_of is not None:
        try:
            moment = datetime.fromisoformat(as_of)
        except ValueError:
            raise SpecError(f"`as_of`: {as_of!r} is not an ISO 8601 time; e.g. "
                            "2025-03-03 or 2025-03-03T00:00:00.") from None
    ks = None
    if k is not None:
        try:
            lo, _, hi = k.partition("-")
            ks = (int(lo), int(hi or lo))
        except ValueError:
            raise SpecError(f"`k`: {k!r} is not a range; e.g. 2-6.") from None
    chosen: list[Method] | None = None
    if methods is not None:
        chosen = []
        for name in (m.strip() for m in methods.split(",") if m.strip()):
            if name not in ("kmeans", "gmm"):
                raise SpecError(f"`methods`: {name!r} is not a method; use kmeans and/or gmm, "
                                "e.g. kmeans,gmm.")
            chosen.append("kmeans" if name == "kmeans" else "gmm")
        if not chosen:
            raise SpecError("`methods`: name at least one of kmeans, gmm.")
    if n_boot < 2:
        raise SpecError(f"`n_boot`: {n_boot} is too few; use at least 2 (default 20).")
    loaded = _load(spec)
    with _progress(not as_json, "segment") as progress:
        result = segment_project(loaded, as_of=moment, k=ks, methods=chosen, n_boot=n_boot,
                                 seed=seed, progress=progress)
    if as_json:
        _emit(result.to_json())
        return
    h = result.hopkins
    console.print(f"[bold]Segments at {result.as_of.isoformat()}[/] on "
                  f"{', '.join(result.features)}: {result.rows:,} customers"
                  + (f" ({result.dropped_missing:,} without every feature left out)"
                     if result.dropped_missing else ""))
    console.print(f"Clustering tendency: Hopkins {h.h:.3f} (p = {h.p_value:.2g}, m = {h.m}, "
                  f"d = {h.d}); Gaussian mixture BIC best at k = "
                  f"{min(result.bic, key=lambda kk: result.bic[kk])}")
    if result.stability:
        table = Table(title="Stability by k (bootstrap Jaccard per cluster; >= 0.75 stable)")
        for col in ("method", "k", "least stable", "Jaccard per cluster", "pred. strength",
                    "silhouette", "stable"):
            table.add_column(col)
        for s in result.stability:
            picked = s.method == result.method and s.k == result.k
            table.add_row(s.method, str(s.k), f"{s.min_jaccard:.2f}",
                          " ".join(f"{v:.2f}" for v in s.jaccard),
                          f"{s.prediction_strength:.2f}", f"{s.silhouette:.2f}",
                          ("[bold green]chosen[/]" if picked else "yes") if s.stable else "no")
        console.print(table)
    if result.profiles:
        table = Table(title=f"Segments ({result.label} rate over the horizon, matured)")
        for col in ("segment", "size", "what sets it apart", f"{result.label}", "action",
                    "Jaccard"):
            table.add_column(col)
        for p in result.profiles:
            table.add_row(p.name, f"{p.size:,} ({p.share:.0%})", "; ".join(p.words),
                          _pct(p.rate, p.rate_low, p.rate_high),
                          p.action or "[dim]none in the spec[/]",
                          f"{p.jaccard:.2f} {p.trust}")
        console.print(table)
    if result.over_time is not None:
        o = result.over_time
        console.print(f"Over time (refit at {result.next_time.isoformat() if result.next_time else '-'}): "
                      f"{o.kept:.1%} of {o.customers:,} customers keep their segment, "
                      f"adjusted Rand {o.ari:.2f}")
    if result.bands:
        table = Table(title="Quantile bands instead of clusters")
        for col in ("feature", "band", "range", "size", f"{result.label}"):
            table.add_column(col)
        for b in result.bands:
            table.add_row(b.feature, b.band, f"{b.low:.4g} .. {b.high:.4g}", f"{b.size:,}",
                          _pct(b.rate, b.rate_low, b.rate_high))
        console.print(table)
    style = "green" if result.verdict == "segments" else "yellow"
    console.print(f"[bold {style}]{result.message}[/]")
    if result.paths:
        console.print(f"Wrote {result.paths['json']}")
