"""``valuechain serve`` and ``valuechain score``: the decision service and batch scoring.

Thin layers over :func:`valuechain.serve.service.open_service` +
:func:`valuechain.serve.app.create_app` (served by uvicorn) and
:func:`valuechain.serve.score.score_file`. See docs/serving.md and docs/batch-scoring.md.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from valuechain.cli import JsonOpt, SpecOpt, _emit, _progress, app, console, user_errors
from valuechain.errors import SpecError

__all__ = ["score", "serve"]


def actions_table(title: str, actions: dict[str, int]) -> Table:
    """Decisions per action, as ``score`` prints them."""
    table = Table(title=title)
    table.add_column("action")
    table.add_column("decisions", justify="right")
    for action, count in sorted(actions.items()):
        table.add_row(action, f"{count:,}")
    return table


@app.command()
@user_errors
def serve(
    spec: SpecOpt = Path("."),
    version: Annotated[str | None, typer.Option(
        help="Bundle version to serve; default the registry's production version.")] = None,
    state: Annotated[str, typer.Option(
        help="Feature state: memory (in-process) or redis://HOST:PORT/DB (several "
        "replicas).")] = "memory",
    host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(
        help="Worker processes (more than 1 needs a Redis state).")] = 1,
    log: Annotated[Path | None, typer.Option(
        "--log", help="Decision log (SQLite); default <workspace>/serve/decisions.sqlite.")
    ] = None,
    api_keys_file: Annotated[Path | None, typer.Option(
        help="File with one API key per line (also VALUECHAIN_API_KEYS, comma-separated).")
    ] = None,
    max_body: Annotated[int, typer.Option(help="Largest request body in bytes.")] = 64 * 1024,
    log_sync: Annotated[str, typer.Option(
        metavar="<full|normal>", help="full: each decision is on disk before it is answered (survives power loss); "
        "normal: survives the process being killed, not an OS crash (faster fsync-bound "
        "disks).")] = "full",
    namespace: Annotated[str | None, typer.Option(
        help="Redis key prefix; default valuechain:<project name>.")] = None,
    capacity_limit: Annotated[int | None, typer.Option(
        help="Override the spec's capacity limit per period (e.g. fewer reviewers today).")
    ] = None,
    reasons: Annotated[str, typer.Option(
        metavar="<all|flagged|none>", help="Which decisions get their top reasons: all; flagged (not the policy's lowest "
        "action: reviews and declines; approvals answer with none and skip TreeSHAP, the "
        "costliest stage); none.")] = "all",
) -> None:
    """Serve the bundle's decisions over HTTP (POST /v1/decide); every decision is logged."""
    import uvicorn

    from valuechain.serve.app import create_app, read_api_keys
    from valuechain.serve.service import CONFIG_ENV, open_service

    if workers < 1:
        raise SpecError(f"`workers` must be at least 1, got {workers}.")
    if workers > 1 and state == "memory":
        raise SpecError("`workers` above 1 needs a shared feature state: each worker would "
                        "keep its own in-process state and review queue. Pass `state` "
                        "redis://HOST:PORT/DB, or serve with one worker.")
    keys = read_api_keys(file=api_keys_file)
    if not keys:
        raise SpecError("no API key: set VALUECHAIN_API_KEYS (comma-separated) or give "
                        "`api_keys_file` (one key per line); every request but /health must "
                        "carry one.")
    url = f"http://{host}:{port}"
    if workers > 1:
        os.environ[CONFIG_ENV] = json.dumps({
            "spec": str(spec.resolve()), "version": version, "state": state,
            "log": str(log.resolve()) if log else None,
            "api_keys_file": str(api_keys_file.resolve()) if api_keys_file else None,
            "max_body": max_body, "capacity_limit": capacity_limit, "namespace": namespace, "log_sync": log_sync,
            "reasons": reasons})
        console.print(f"valuechain serve: {workers} workers, state {state}, on {url} "
                      "(POST /v1/decide, GET /health, GET /metrics, GET /docs)")
        uvicorn.run("valuechain.serve.service:app_from_env", factory=True, host=host,
                    port=port, workers=workers, log_level="warning", access_log=False)
        return
    service = open_service(spec, version=version, state=state, log_path=log,
                           capacity_limit=capacity_limit, namespace=namespace,
                           log_sync=log_sync, reasons=reasons)
    asgi = create_app(service, api_keys=keys, max_body_bytes=max_body)
    decider = service.decider
    console.print(f"valuechain serve: bundle {decider.bundle.version} "
                  f"({decider.policy_version}), state {service.state_kind} (warmed "
                  f"{service.warmed_rows:,} rows, replayed {service.replayed:,} journal "
                  f"entries), log {service.log.path}", highlight=False)
    console.print(f"listening on {url}  (POST /v1/decide, GET /health, GET /metrics, "
                  "GET /docs)", highlight=False)
    uvicorn.run(asgi, host=host, port=port, log_level="warning", access_log=False)


@app.command()
@user_errors
def score(
    spec: SpecOpt = Path("."),
    input: Annotated[Path, typer.Option(
        "--input", "-i", help="Parquet or CSV file of decision events.")] = Path("events.parquet"),
    out: Annotated[Path | None, typer.Option(
        help="Decisions file (.parquet or .csv); default <workspace>/score/<input>."
        "decisions.parquet.")] = None,
    version: Annotated[str | None, typer.Option(
        help="Bundle version; default the registry's production version.")] = None,
    top: Annotated[int | None, typer.Option(
        help="Also write the N highest scores per capacity period (<out>.topN.csv).")] = None,
    log: Annotated[Path | None, typer.Option(
        "--log", help="Decision log; default <workspace>/serve/decisions.sqlite.")] = None,
    no_log: Annotated[bool, typer.Option(
        "--no-log", help="Do not append the decisions to the decision log.")] = False,
    online: Annotated[bool, typer.Option(
        "--online", help="Row-by-row reference path (the service's online features, one "
        "event at a time) instead of the vectorised batch path; same decisions, ~100x "
        "slower.")] = False,
    reasons: Annotated[str, typer.Option(
        metavar="<all|flagged|none>", help="Which decisions get their top reasons: all (as the service), flagged (those "
        "not given the policy's lowest action) or none. Reasons cost ~1 ms per row.")
    ] = "all",
    chunk: Annotated[int, typer.Option(
        help="Events per model call and per decision-log transaction.")] = 50_000,
    capacity_limit: Annotated[int | None, typer.Option(
        help="Override the spec's capacity limit per period (e.g. fewer reviewers).")
    ] = None,
    engine: Annotated[str, typer.Option(
        metavar="<duckdb|spark>", help="duckdb (this machine) or spark (features by the Spark "
        "engine, the bundle and the reasons per partition, a Parquet directory of decisions, "
        "then the decision log from the driver; no --online; see docs/scale.md).")
    ] = "duckdb",
    master: Annotated[str | None, typer.Option(
        help="With --engine spark: the Spark master URL; default VALUECHAIN_SPARK_MASTER "
        "or local[2].")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Decide a whole batch of events as the service would; log them, write the decisions.

    Vectorised by default: features from the offline engine (the training frame's build),
    the model on whole chunks, capacity in decision order. See docs/batch-scoring.md.
    """
    from valuechain.serve.score import score_file

    if engine not in ("duckdb", "spark"):
        raise SpecError(f"`--engine` {engine!r}: expected duckdb or spark.")
    if engine == "spark":
        from valuechain.cli_spark import score_on_spark

        score_on_spark(spec, input, out=out, version=version, top=top, master=master,
                       capacity_limit=capacity_limit, as_json=as_json,
                       unsupported={"--online": online}, reasons=reasons, log=log,
                       no_log=no_log, chunk=chunk)
        return
    if master is not None:
        raise SpecError("`--master` is a Spark setting: use it with `--engine spark`.")
    if chunk < 1:
        raise SpecError(f"`chunk` must be at least 1, got {chunk}.")
    with _progress(not as_json, "score") as progress:
        result = score_file(spec, input, out=out, version=version, top=top, log_path=log,
                            log=not no_log, online=online, reasons=reasons, chunk=chunk,
                            capacity_limit=capacity_limit, progress=progress)
    if as_json:
        _emit(result.to_json())
        return
    console.print(actions_table(f"Scored {result.rows:,} events with bundle "
                                f"{result.bundle_version} ({result.mode})", result.actions))
    console.print(f"{result.rows_per_second:,.0f} rows/s ({result.seconds:.1f} s); "
                  f"{result.overflow:,} over capacity (overflow rule applied)")
    console.print(f"decisions: {result.out}", highlight=False)
    if result.top_path:
        console.print(f"top {top} per period: {result.top_path}", highlight=False)
    if result.log_path:
        again = result.rows - result.logged
        console.print(f"logged to {result.log_path}: {result.logged:,} appended"
                      + (f", {again:,} already there (the same decision ids)" if again
                         else ""), highlight=False)
