"""``valuechain parity``: replay a period through the online features and compare with the
offline build (see :mod:`valuechain.serve.parity` and docs/online-features.md)."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from valuechain.cli import JsonOpt, SpecOpt, _emit, _load, _progress, app, console, user_errors
from valuechain.errors import DataError
from valuechain.serve.state import MemoryState, StateStore

__all__ = ["parity_command"]


def _moment(value: str | None, flag: str) -> datetime | None:
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        raise DataError(f"`{flag}` {value!r} is not an ISO 8601 time. Expected e.g. "
                        "2025-09-01 or 2025-09-01T00:00:00 (with +00:00 for time-zone aware "
                        "data).") from None


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
    as_json: JsonOpt = False,
) -> None:
    """Replay a period through the online features and compare each with the offline build.

    Exit status 0 when every feature of every decision agrees (within 1e-9), 1 otherwise.
    """
    from valuechain.serve.parity import parity

    loaded = _load(spec)
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
            result = parity(loaded, since=_moment(since, "since"),
                            until=_moment(until, "until"), engine=engine, state=store,
                            progress=progress)
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
