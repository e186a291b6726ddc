"""``valuechain parity``: replay a period through the online features and compare with the
offline build (see :mod:`valuechain.serve.parity` and docs/online-features.md)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from valuechain.cli import (
    JsonOpt,
    SpecOpt,
    _emit,
    _load,
    _progress,
    app,
    console,
    parse_moment,
    user_errors,
)
from valuechain.errors import DataError
from valuechain.serve.state import MemoryState, StateStore

__all__ = ["parity_command"]


def _show(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.10g}"
    return repr(value)


@app.command("parity")
@user_errors
def parity_command(
    spec: SpecOpt = Path("."),
    since: Annotated[str | None, typer.Option(
        help="Start of the replayed period (exclusive), ISO 8601; default 7 days before "
             "--until.")] = None,
    until: Annotated[str | None, typer.Option(
        help="End of the period (inclusive), ISO 8601; default the latest decision.")] = None,
    engine: Annotated[str | None, typer.Option(
        help="Offline engine to compare with; default the spec's, else duckdb.")] = None,
    state: Annotated[str, typer.Option(
        help="Online state to replay into: memory, or redis://host:port/db (a namespace of "
             "its own, removed afterwards).")] = "memory",
    version: Annotated[str | None, typer.Option(
        "--version", help="Also compare the scores of this registry bundle (a version, "
        "`production` or `latest`) on the online and the offline features.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Replay a period through the online features and compare each with the offline build.

    Exit status 0 when every feature of every decision agrees (within 1e-9), 1 otherwise.
    """
    from valuechain.serve.parity import parity

    loaded = _load(spec)
    scorer = None
    if version is not None:
        from valuechain.registry import Registry, default_registry, load_bundle

        scorer = load_bundle(Registry(default_registry(loaded)).get(version).path).score
    store: StateStore
    if state == "memory":
        store = MemoryState()
    elif state.startswith(("redis://", "rediss://", "unix://")):
        from valuechain.serve.redis_state import RedisState

        store = RedisState(state, namespace=f"valuechain-parity-{os.getpid()}")
    else:
        raise DataError(f"`state` {state!r}: expected memory or a redis:// URL.")
    try:
        with _progress(not as_json, "parity") as progress:
            result = parity(loaded, since=parse_moment(since, "--since"),
                            until=parse_moment(until, "--until"), engine=engine, state=store,
                            scorer=scorer, progress=progress)
    finally:
        store.clear()
        store.close()
    if as_json:
        _emit(result.to_json())
    else:
        table = Table(title=f"Parity - {loaded.spec.project.name}: {result.decisions:,} "
                            f"decisions in ({result.since.isoformat()}, "
                            f"{result.until.isoformat()}]")
        table.add_column("feature")
        table.add_column("compared", justify="right")
        table.add_column("differing", justify="right")
        table.add_column("max |diff|", justify="right")
        table.add_column("example (decision: online vs offline)")
        for f in result.features:
            example = (f"{f.examples[0][0]}: {_show(f.examples[0][1])} vs "
                       f"{_show(f.examples[0][2])}" if f.examples else "")
            table.add_row(f.name, f"{f.compared:,}",
                          "[green]0[/]" if f.exact else f"[red]{f.differing:,}[/]",
                          f"{f.max_abs_diff:.3g}", example)
        console.print(table)
        warm = result.warm
        console.print(
            f"warm-up to {warm.until.isoformat()}: "
            + ", ".join(f"{n} {s}" for s, n in warm.rows.items())
            + f" rows in {warm.seconds:.2f} s; replay {result.seconds.get('replay', 0):.2f} s "
            f"({result.events_per_second:,.0f} decisions/s)")
        if result.only_offline or result.only_online:
            console.print(f"[red]decisions only offline: {result.only_offline:,}, only "
                          f"online: {result.only_online:,}[/]")
        console.print("[bold green]exact[/]" if result.exact else
                      "[bold red]not exact[/]: the features listed in red differ")
    if not result.exact:
        raise typer.Exit(1)
