"""The ``valuechain`` command: parse flags, call :mod:`valuechain.api`, render with Rich.

Every command is a thin layer over the function of the same name in :mod:`valuechain.api`
(which writes the stage's outputs and returns its typed result). Every command accepts
``--spec`` (a file, or a directory holding ``valuechain.yaml``) and ``--json`` for machine
output. User mistakes print one clear paragraph, with the library's argument names rewritten
to this command's flags, and exit with 2; failed checks exit with 1. Any other exception is a
bug in valuechain: one paragraph names it and the log file holding its traceback, exit 3
(``valuechain --debug <command>`` prints the traceback instead). See docs/errors.md.
"""

from __future__ import annotations

import functools
import inspect
import json
import os
import sys
import tempfile
import traceback
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import typer.core
import typer.rich_utils
from rich.console import Console
from rich.progress import (
    BarColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from valuechain import __version__
from valuechain.errors import ValuechainError, with_flags

app = typer.Typer(
    name="valuechain",
    help="Turn a predictive model into a decision rule a business can rely on.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
generate_app = typer.Typer(help="Generate demo worlds.", no_args_is_help=True)
demo_app = typer.Typer(help="Run a demo project end to end.", no_args_is_help=True)
app.add_typer(generate_app, name="generate")
app.add_typer(demo_app, name="demo")

console = Console()
err_console = Console(stderr=True)

#: The heading of a mistake on the command line (an unknown flag or value, a bad type):
#: click reports those itself, in a panel, with exit status 2.
USAGE_MISTAKE = "Usage mistake"
typer.rich_utils.ERRORS_PANEL_TITLE = USAGE_MISTAKE
_display_type_rich = typer.core.TyperOption.display_type_rich


def _flag_type(self: typer.core.TyperOption, ctx: Any) -> str | None:
    """No ``<bool>`` placeholder in help for on/off flags (they take no value)."""
    if getattr(self, "is_flag", False) and self.metavar is None:
        return None
    return _display_type_rich(self, ctx)


typer.core.TyperOption.display_type_rich = _flag_type  # type: ignore[method-assign]

SpecOpt = Annotated[
    Path, typer.Option("--spec", "-s", help="valuechain.yaml, or the directory holding it.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object (machine output).")]
F = TypeVar("F", bound=Callable[..., Any])


def _emit(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, default=str) + "\n")


def parse_moment(value: str | None, flag: str) -> datetime | None:
    """A time flag's value (ISO 8601, with or without an offset), or a clear error.

    >>> parse_moment("2025-09-01T12:00:00+02:00", "--as-of").isoformat()
    '2025-09-01T12:00:00+02:00'
    >>> parse_moment("2025-09-01", "--as-of").isoformat()
    '2025-09-01T00:00:00'
    """
    from valuechain.errors import DataError

    if value is None:
        return None
    try:
        return datetime.fromisoformat(value.strip())
    except ValueError:
        raise DataError(f"`{flag}` {value!r} is not an ISO 8601 time. Expected e.g. "
                        "2025-09-01 or 2025-09-01T00:00:00, with an offset such as +00:00 "
                        "when the data's times are time-zone aware."
                        ) from None


def flags_of(fn: Callable[..., Any]) -> dict[str, str]:
    """Parameter name -> the flag a command spells it with (``time_col`` -> ``--time-col``).

    >>> flags_of(audit)["time_col"], flags_of(audit)["finding_id"], flags_of(audit)["as_json"]
    ('--time-col', '--explain', '--json')
    """
    out: dict[str, str] = {}
    for name, param in inspect.signature(fn, eval_str=True).parameters.items():
        flag = "--" + name.replace("_", "-")
        for meta in getattr(param.annotation, "__metadata__", ()):
            # typer.Option("--flag", ...) inside Annotated keeps "--flag" in `default`
            names = [getattr(meta, "default", None), *(getattr(meta, "param_decls", None) or ())]
            decls = [d for d in names if isinstance(d, str) and d.startswith("--")]
            if decls:
                flag = decls[0]
        out[name] = flag
    return out


EXIT_USER_ERROR = 2
EXIT_INTERNAL_ERROR = 3
_state = {"debug": False}


def _log_dir(kwargs: dict[str, Any]) -> Path:
    """Where the traceback of an internal error goes: ``.valuechain/logs`` beside the spec.

    The directory of ``--spec`` when it exists (the default workspace), else the current one.
    """
    spec = kwargs.get("spec") or kwargs.get("dir")
    base = Path.cwd()
    if isinstance(spec, Path | str):
        candidate = Path(spec)
        candidate = candidate if candidate.is_dir() else candidate.parent
        if candidate.is_dir():
            base = candidate
    return base / ".valuechain" / "logs"


def write_crash_log(err: BaseException, kwargs: dict[str, Any]) -> Path | None:
    """Write the traceback of ``err`` to a new log file, atomically; its path (None if unwritable).

    Tried in ``.valuechain/logs`` beside the spec (or in the current directory), then in the
    system's temporary directory.
    """
    text = "".join(traceback.format_exception(err))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
    header = f"valuechain {__version__} internal error, argv {sys.argv!r}\n"
    for folder in (_log_dir(kwargs), Path(tempfile.gettempdir()) / "valuechain-logs"):
        try:
            folder.mkdir(parents=True, exist_ok=True)
            target = folder / f"{stamp}-{os.getpid()}.log"
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".log")
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(header + text)
            os.replace(tmp, target)
            return target
        except OSError:
            continue
    return None


def internal_error_message(err: BaseException, log: Path | None) -> str:
    """The one paragraph printed for an exception valuechain did not expect."""
    detail = str(err).strip().replace("\n", " ")
    if len(detail) > 300:
        detail = detail[:297] + "..."
    where = f"the traceback is in {log}" if log else "the traceback could not be written to a log"
    return (
        f"internal error: {type(err).__name__}: {detail or '(no message)'}. This is a bug in "
        f"valuechain, not your input; {where}; rerun with --debug (`valuechain --debug "
        "<command> ...`) to print it."
    )


def _heading(err: ValuechainError, flags: dict[str, str]) -> str:
    """The first line of a user error: its kind, or a usage mistake when it names a flag.

    >>> from valuechain.errors import SpecError
    >>> _heading(SpecError("`--kind` 'x': expected three_band."), {"kind": "--kind"})
    '[bold red]Usage mistake[/] [dim](SpecError)[/]'
    >>> _heading(SpecError("valuechain.yaml, field `label`: ..."), {"kind": "--kind"})
    '[bold red]SpecError[/]'
    """
    text = str(err)
    if any(f"`{flag}`" in text for flag in flags.values() if flag != "--spec"):
        return f"[bold red]{USAGE_MISTAKE}[/] [dim]({type(err).__name__})[/]"
    return f"[bold red]{type(err).__name__}[/]"


def user_errors(fn: F) -> F:
    """Turn ValuechainError into a clear message and exit status 2 (no traceback).

    Arguments the library names in backticks (```time_col```) are rewritten to this
    command's flags (```--time-col```) first. Any other exception is an internal error: one
    paragraph naming it and a log file holding the traceback, exit status 3 (with the global
    ``--debug``, the traceback is printed instead).
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except ValuechainError as raised:
            err = with_flags(raised, flags_of(fn))
            if kwargs.get("as_json"):
                _emit({"error": str(err), "type": type(err).__name__})
            else:
                err_console.print(_heading(err, flags_of(fn)), highlight=False)
                err_console.print(Text(str(err)), soft_wrap=True, highlight=False)
            raise typer.Exit(EXIT_USER_ERROR) from None
        except (typer.Exit, typer.Abort, typer.exceptions.TyperException, KeyboardInterrupt):
            raise
        except Exception as raised:
            if _state["debug"]:
                err_console.print(Text("".join(traceback.format_exception(raised))),
                                  soft_wrap=True, highlight=False)
                raise typer.Exit(EXIT_INTERNAL_ERROR) from None
            log = write_crash_log(raised, kwargs)
            message = internal_error_message(raised, log)
            if kwargs.get("as_json"):
                _emit({"error": message, "type": "InternalError",
                       "log": str(log) if log else None})
            else:
                err_console.print("[bold red]InternalError[/]", highlight=False)
                err_console.print(Text(message), soft_wrap=True, highlight=False)
            raise typer.Exit(EXIT_INTERNAL_ERROR) from None

    return wrapper  # type: ignore[return-value]


@app.callback()
def _global_options(
    debug: Annotated[bool, typer.Option(
        "--debug", help="Print the traceback of an internal error (exit 3) instead of writing "
        "it to .valuechain/logs/.")] = False,
) -> None:
    """Turn a predictive model into a decision rule a business can rely on."""
    _state["debug"] = debug


@contextmanager
def _progress(enabled: bool, label: str) -> Iterator[Callable[[str, float], None] | None]:
    """A progress bar on stderr (elapsed and remaining time) fed by ``update(step, fraction)``.

    The stages call ``update`` before each step of their long loops (per candidate, per
    bootstrap interval, per fold...), so the bar advances inside long steps. The step text
    is cut to the terminal's width so the bar stays on one line.
    """
    if not enabled:
        yield None
        return
    with Progress(TextColumn("[bold]{task.description}"), BarColumn(bar_width=24),
                  TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
                  TextColumn("[dim]left[/]"), TimeRemainingColumn(), console=err_console,
                  transient=True) as bar:
        task = bar.add_task(label, total=1.0)
        room = max(err_console.width - 60, 20)

        def update(stage: str, fraction: float) -> None:
            text = f"{label}: {stage}"
            if len(text) > room:
                text = text[:room - 1] + "…"
            bar.update(task, completed=fraction, description=text)

        yield update


def _load(spec: Path) -> Any:
    from valuechain import api

    return api.load_spec(spec)


@app.command()
@user_errors
def version(as_json: JsonOpt = False) -> None:
    """Print the version."""
    _emit({"version": __version__}) if as_json else console.print(__version__)


@app.command()
@user_errors
def schema(
    out: Annotated[Path | None, typer.Option(help="Write the schema to this file.")] = None,
) -> None:
    """Print the JSON Schema of valuechain.yaml."""
    from valuechain.spec.models import Spec

    text = json.dumps(Spec.model_json_schema(), indent=2)
    if out:
        from valuechain.io import write_text

        write_text(out, text + "\n")
        console.print(f"wrote {out}")
    else:
        sys.stdout.write(text + "\n")


@app.command(epilog="Example: `valuechain check --spec examples/fraud`")
@user_errors
def check(spec: SpecOpt = Path("."), as_json: JsonOpt = False) -> None:
    """Validate the spec against its data and print the readiness checklist."""
    from valuechain import api

    loaded = _load(spec)
    report = api.check(loaded)
    if as_json:
        _emit(report.to_json())
    else:
        console.print(_verdicts(f"Data checks - {loaded.path}", ("check", "detail"),
                                [(c.name, c.passed, c.message) for c in report.data_checks]))
        console.print(_verdicts("Readiness checklist", ("question", "reason"),
                                [(i.title, i.passed, i.reason) for i in report.checklist]))
    if not report.passed:
        raise typer.Exit(1)


def _verdicts(title: str, headers: tuple[str, str], rows: list[tuple[str, bool, str]]) -> Table:
    table = Table(title=title)
    table.add_column(headers[0])
    table.add_column("")
    table.add_column(headers[1], overflow="fold")
    for name, passed, detail in rows:
        table.add_row(name, _mark(passed), detail)
    return table


def _mark(passed: bool) -> str:
    return "[green]pass[/]" if passed else "[red]FAIL[/]"


@app.command(epilog="Examples: `valuechain build --spec examples/fraud` · `valuechain "
             "build -s examples/fraud --as-of 2025-09-01 --force`")
@user_errors
def build(
    spec: SpecOpt = Path("."),
    as_of: Annotated[
        str | None,
        typer.Option("--as-of", help="Extraction time, ISO 8601 (e.g. 2025-09-01 or "
                     "2025-09-01T00:00:00+02:00); default the latest time in the sources."),
    ] = None,
    engine: Annotated[
        str | None,
        typer.Option(help="Engine: duckdb, reference or a package.module:Class path; default "
                     "the spec's `engine`, else duckdb. The spec's options apply when the "
                     "type matches."),
    ] = None,
    force: Annotated[bool, typer.Option(help="Rebuild even if inputs are unchanged.")] = False,
    accept_early_times: Annotated[bool, typer.Option(
        "--accept-early-times", help="Accept times at or before 1970-01-01 among later ones "
        "(refused by default as missing-time placeholders).")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Build the point-in-time training frame and its lineage manifest."""
    from valuechain import api

    loaded = _load(spec)
    with _progress(not as_json, "build") as progress:
        result = api.build(loaded, as_of=parse_moment(as_of, "--as-of"), engine=engine, force=force,
                           accept_early_times=accept_early_times, progress=progress)
    if as_json:
        _emit(result.to_json())
        return
    rows = result.rows
    table = Table(title=f"Frame - {loaded.spec.project.name}")
    table.add_column("")
    table.add_column("value", justify="right")
    for name, value in [
        ("decision rows", f"{rows.total:,}"),
        ("mature (kept)", f"{rows.mature:,}"),
        ("immature (excluded)", f"{rows.immature:,}"),
        ("positive", f"{rows.positive:,} ({rows.positive / max(rows.mature, 1):.3%})"),
        ("as of", result.manifest["as_of"]),
        ("features", str(len(loaded.spec.features))),
        ("seconds", f"{result.seconds:.2f}" + (" (cached)" if result.cached else "")),
    ]:
        table.add_row(name, value)
    console.print(table)
    console.print(f"frame: {result.frame}\nmanifest: {result.manifest_path}")


@app.command(epilog="Examples: `valuechain audit --spec examples/fraud` · `valuechain "
             "audit --explain leak-001` · `valuechain audit --frame table.parquet --time-col ts "
             "--label-col is_fraud`")
@user_errors
def audit(
    spec: SpecOpt = Path("."),
    frame: Annotated[Path | None, typer.Option(help="Audit this flat Parquet/CSV table.")] = None,
    time_col: Annotated[str | None, typer.Option(help="Decision time column (--frame).")] = None,
    label_col: Annotated[str | None, typer.Option(help="Label column (--frame).")] = None,
    key_col: Annotated[str | None, typer.Option(help="Row or entity key (--frame).")] = None,
    finding_id: Annotated[
        str | None, typer.Option("--explain", help="Print the rows behind a finding id.")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Find features that could carry information from after the decision."""
    from valuechain import api

    with _progress(not as_json, "audit") as progress:
        if frame is not None:
            result = api.audit(frame=frame, time_col=time_col, label_col=label_col,
                               key_col=key_col, progress=progress)
        else:
            result = api.audit(_load(spec), progress=progress)
    if finding_id is not None:
        rows = result.explain(finding_id)
        finding = result.get(finding_id)
        assert finding is not None  # explain() raised otherwise
        if as_json:
            _emit({"finding": finding.to_json(), "rows": rows.to_dict(orient="records")})
        else:
            console.print(f"[bold]{finding.id}[/]: {finding.explanation}")
            console.print(rows.to_string(index=False))
        return
    if as_json:
        _emit(result.to_json())
    else:
        table = Table(title="Leakage audit")
        for column in ("severity", "finding", "evidence", "fix"):
            table.add_column(column, overflow="fold")
        colours = {"critical": "red", "warning": "yellow", "info": "dim"}
        for f in result.findings:
            severity = f"[{colours[f.severity]}]{f.severity}[/]"
            if f.accepted:
                severity += f"\n(accepted by {f.accepted_by})"
            evidence = ", ".join(f"{k}={v}" for k, v in f.evidence.items())
            table.add_row(severity, f"{f.id}\n{f.explanation}", evidence, f.fix)
        console.print(table)
        console.print(f"{result.critical} unaccepted critical finding(s); "
                      "`--explain ID` prints the rows behind one.")
    if result.exit_code:
        raise typer.Exit(result.exit_code)


def _candidate_names(value: str | None) -> list[str] | None:
    """``--candidates`` as a list; a name that is not a built-in candidate is a usage mistake.

    >>> _candidate_names("prior, lightgbm")
    ['prior', 'lightgbm']
    """
    if value is None:
        return None
    from valuechain.errors import ModelError
    from valuechain.models import CANDIDATES

    names = [c.strip() for c in value.split(",") if c.strip()]
    unknown = [n for n in names if n not in CANDIDATES]
    if unknown or not names:
        what = ("unknown candidate " + ", ".join(map(repr, unknown))) if unknown else (
            "no candidate named")
        raise ModelError(
            f"`--candidates` {value!r}: {what}. Expected a comma-separated list of "
            f"{', '.join(CANDIDATES)} (e.g. prior,lightgbm).")
    return names


@app.command(epilog="Examples: `valuechain train --spec examples/fraud` (the last run's seed, "
             "else 0) · `valuechain train -s examples/fraud --candidates "
             "prior,rules,lightgbm --backtest 3` · `valuechain train --json > run.json`")
@user_errors
def train(
    spec: SpecOpt = Path("."),
    seed: Annotated[int | None, typer.Option(
        help="Random seed (models, calibration, bootstrap); default the seed of the last "
        "run of this spec (the demo's 7), else 0. Recorded in the run.")] = None,
    candidates: Annotated[str | None, typer.Option(
        metavar="<prior,rules,logistic,lightgbm>",
        help="Comma-separated candidates to train; default all (rules when the spec has "
        "value.baseline_policy).")] = None,
    backtest: Annotated[int, typer.Option(help="Rolling-origin folds (0: none).")] = 0,
    as_json: JsonOpt = False,
) -> None:
    """Train baselines and models on time periods; calibrate; evaluate with intervals."""
    from valuechain import api

    names = _candidate_names(candidates)
    loaded = _load(spec)
    seed, seed_from = _seed(loaded, seed)
    with _progress(not as_json, "train") as progress:
        run = api.train(loaded, seed=seed, candidates=names, backtest=backtest,
                        progress=progress)
    if as_json:
        _emit(run.to_json())
        return
    console.print(_candidates_table(run))
    console.print(_calibration_table(run))
    verdicts = Table(title=f"Against the baselines ({_human(run.headline_metric)}, paired "
                     "difference on test)")
    for column in ("candidate", "baseline", "difference", "verdict"):
        verdicts.add_column(column)
    colours = {"beats": "green", "ties": "yellow", "loses": "red"}
    for v in run.verdicts:
        d = v.difference
        verdicts.add_row(_human(v.candidate), _human(v.baseline),
                         f"{_num(d.value, '+.4f')} [{_num(d.low, '+.4f')}, "
                         f"{_num(d.high, '+.4f')}]",
                         f"[{colours[v.verdict]}]{v.verdict}[/]")
    console.print(verdicts)
    rt = run.random_vs_time
    console.print(f"random split AUC {_num(rt.auc_random_split, '.4f')} vs time split "
                  f"{_num(rt.auc_time_split, '.4f')} ({rt.candidate}): {rt.explanation}")
    console.print(f"run {run.run_id} (seed {seed}{seed_from}): {run.run_dir}")


def _seed(loaded: Any, seed: int | None) -> tuple[int, str]:
    """``--seed``, else the seed recorded in the latest run, else 0; and where it came from."""
    if seed is not None:
        return seed, ""
    from valuechain.train.runs import recorded_seed

    found = recorded_seed(loaded.workspace / "runs")
    return (found, ", reused from the last run") if found is not None else (0, "")


def _duration(value: Any) -> str:
    from datetime import timedelta

    from valuechain.spec.durations import format_duration

    return format_duration(value) if isinstance(value, timedelta) else str(value)


def _num(value: float | None, spec: str) -> str:
    return "-" if value is None or value != value else format(value, spec)


#: Human names of metric keys and candidates in the terminal's tables.
HUMAN = {
    "roc_auc": "ROC AUC", "average_precision": "average precision",
    "precision_at_capacity": "precision at capacity", "recall_at_capacity":
    "recall at capacity", "expected_cost": "expected cost per decision",
    "ece": "ECE (calibration)", "brier": "Brier score", "log_loss": "log loss",
    "prior": "prior (base rate)", "rules": "today's rule", "logistic": "logistic",
    "lightgbm": "LightGBM", "approve_all": "approve all", "threshold_0.5":
    "threshold 0.5", "accuracy_optimal": "accuracy-optimal", "policy": "the policy",
}
#: Metrics where lower is better (the rest: higher is better).
LOWER_IS_BETTER = frozenset({"expected_cost", "ece", "brier", "log_loss"})


def _human(key: str) -> str:
    """A metric or candidate key as people read it (unknown keys: underscores to spaces).

    >>> _human("average_precision"), _human("my_model")
    ('average precision', 'my model')
    """
    return HUMAN.get(key, key.replace("_", " "))


def _interval(metrics: Any, key: str, fmt: str = ".3f") -> str:
    """``value [low, high]`` on one line, or "-" when the metric is missing.

    >>> _interval({"auc": 0.8774, "auc_low": 0.8612, "auc_high": 0.8931}, "auc")
    '0.877 [0.861, 0.893]'
    """
    value = metrics.get(key)
    if value is None or value != value:
        return "-"
    return (f"{_num(value, fmt)} [{_num(metrics.get(key + '_low'), fmt)}, "
            f"{_num(metrics.get(key + '_high'), fmt)}]")


def _best(values: dict[str, float | None], lower: bool) -> set[str]:
    """Names holding the best finite value (ties share it; none when all are equal).

    >>> sorted(_best({"a": 0.5, "b": 0.7, "c": 0.7}, lower=False)), _best({"a": 1, "b": 1}, True)
    (['b', 'c'], set())
    """
    finite = {k: v for k, v in values.items() if v is not None and v == v}
    if len(set(finite.values())) < 2:
        return set()
    target = min(finite.values()) if lower else max(finite.values())
    return {k for k, v in finite.items() if v == target}


def _candidates_table(run: Any) -> Table:
    """Each candidate's test metrics with 95 % intervals on one line; the best marked."""
    shown = ("roc_auc", "average_precision", "precision_at_capacity", "expected_cost")
    fmt = {"expected_cost": ",.3f"}
    test_split = run.splits["test"]
    table = Table(title=f"Candidates on test ({str(test_split['start'])[:10]} .. "
                        f"{str(test_split['end'])[:10]}), 95% day-block intervals",
                  caption=f"* best on test in its column; chosen on validation by "
                          f"{_human(run.headline_metric)}: {_human(run.best_candidate)}",
                  caption_justify="left")
    table.add_column("candidate", no_wrap=True)
    headers = {"average_precision": "average\nprecision", "precision_at_capacity":
               "precision\nat capacity", "expected_cost": "expected cost\nper decision"}
    for key in shown:
        table.add_column(headers.get(key, _human(key)), justify="right", no_wrap=True)
    best = {k: _best({n: e.test.get(k) for n, e in run.candidates.items()},
                     k in LOWER_IS_BETTER) for k in shown}
    for name, entry in run.candidates.items():
        cells = []
        for key in shown:
            text = _interval(entry.test, key, fmt.get(key, ".3f"))
            cells.append(f"[bold green]*{text}[/]" if name in best[key] else text)
        label = _human(name) + (" (chosen)" if name == run.best_candidate else "")
        table.add_row(label, *cells)
    return table


def _calibration_table(run: Any) -> Table:
    """How each candidate was calibrated and its ECE on test before and after."""
    table = Table(title="Calibration on test (expected calibration error, lower is better)")
    table.add_column("candidate", no_wrap=True)
    table.add_column("method")
    table.add_column("ECE before", justify="right")
    table.add_column("ECE after [95% interval]", justify="right", no_wrap=True)
    for name, entry in run.candidates.items():
        cal = entry.calibration
        table.add_row(_human(name), cal.method, _num(cal.ece_before, ".4f"),
                      _interval(entry.test, "ece", ".4f"))
    return table


@app.command()
@user_errors
def runs(spec: SpecOpt = Path("."), as_json: JsonOpt = False) -> None:
    """List training runs, newest first."""
    from valuechain.train import list_runs

    found = list_runs(_load(spec).workspace / "runs")
    if as_json:
        _emit({"runs": found})
        return
    table = Table(title="Runs")
    for column in ("run", "created", "best", "test headline", "test AUC"):
        table.add_column(column)
    for r in found:
        table.add_row(r["run_id"], r["created_at"], str(r["best"]),
                      f"{r['test']:.4f}" if r["test"] is not None else "-",
                      f"{r['roc_auc']:.4f}" if r["roc_auc"] is not None else "-")
    console.print(table)


@app.command(epilog="Examples: `valuechain decide --spec examples/fraud` · `valuechain "
             "decide -s examples/fraud --kind threshold --objective realised` · `valuechain "
             "decide --json`")
@user_errors
def decide(
    spec: SpecOpt = Path("."),
    # Choices are checked by the library (a SpecError naming the flag, exit 2, JSON with
    # --json); the metavar shows them in help.
    kind: Annotated[str, typer.Option(
        metavar="<three_band|threshold|top_n>",
        help="three_band (approve/review/decline), threshold or top_n.")] = "three_band",
    objective: Annotated[str, typer.Option(
        metavar="<expected|realised>",
        help="expected (under calibrated scores) or realised (labels).")] = "expected",
    seed: Annotated[int | None, typer.Option(
        help="Bootstrap seed; default the seed the latest run was trained with.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Turn the latest run's scores into actions under costs and capacity; price them."""
    from valuechain import api

    loaded = _load(spec)
    seed, _ = _seed(loaded, seed)
    with _progress(not as_json, "decide") as progress:
        result = api.decide(loaded, kind=kind, objective=objective,  # type: ignore[arg-type]
                            seed=seed, progress=progress)
    if as_json:
        _emit(result.to_json())
        return
    from valuechain.policy import describe
    from valuechain.train.context import spec_capacity

    currency = loaded.spec.value.currency if loaded.spec.value else ""
    found = spec_capacity(loaded)
    console.print(Text(describe(result.policy, per=_duration(found[1].per) if found else None,
                                limited=found[0] if found else None)), soft_wrap=True,
                  highlight=False)
    console.print(f"[dim]{result.kind.replace('_', '-')} policy from run {result.run_id} "
                  f"({result.candidate}), {objective} cost[/]", highlight=False)
    table = Table(title="Test period")
    for column in ("", "cost", "per 1,000", "reviews/period max", "over limit"):
        table.add_column(column, justify="right")
    for name, summary in [("policy", result.test), *result.baselines.items()]:
        cap = summary.capacity
        table.add_row(_human(name), f"{summary.expected_cost:,.0f}",
                      f"{summary.cost_per_1000:,.1f}",
                      f"{cap.max_used:.0f} / {cap.limit}", str(cap.periods_over_limit))
    console.print(table)
    savings = Table(title=f"Savings of the policy on test ({currency}, 95% day-block interval)")
    for column in ("against", "saved", "interval"):
        savings.add_column(column, justify="right")
    for name, s in (result.test.savings or {}).items():
        savings.add_row(_human(name), f"{s.value:,.0f}",
                        f"[{_num(s.low, ',.0f')}, {_num(s.high, ',.0f')}]")
    console.print(savings)
    chain = Table(title="The value chain")
    for column in ("link", "owner", "what"):
        chain.add_column(column, overflow="fold")
    for link in result.value_chain:
        chain.add_row(link["link"], link["owner"], link["what"])
    console.print(chain)
    console.print(f"policy written to {result.policy_path}")


@app.command(epilog="Example: `valuechain report --spec examples/fraud --out report.html`")
@user_errors
def report(
    spec: SpecOpt = Path("."),
    out: Annotated[Path | None, typer.Option(help="HTML file to write.")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Write one self-contained HTML report from whatever stage outputs exist.

    Exits with 1 (after writing the file) when a section could not be rendered; a stage
    output made from another frame, run or spec than the others is a warning.
    """
    from valuechain import api

    result = api.report(_load(spec), out=out)
    if as_json:
        _emit(result.to_json())
    else:
        for mismatch in result.mismatches:
            err_console.print(f"[yellow]warning[/]: {mismatch.message()}", highlight=False)
        for section in result.failed:
            err_console.print(f"[red]section failed[/]: {section.title}: {section.error}",
                              highlight=False)
        console.print(f"report: {result.path}")
    if not result.ok:
        raise typer.Exit(1)


@generate_app.command("fraud")
@user_errors
def generate_fraud(
    out: Annotated[Path, typer.Option(help="Directory for the Parquet tables.")],
    rows: Annotated[int, typer.Option(help="Number of transactions.")] = 1_000_000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
    as_json: JsonOpt = False,
) -> None:
    """Generate the fraud demo world (transactions, chargebacks, disputes, profiles...)."""
    from valuechain.demo.fraud import generate_fraud as generate

    with _progress(not as_json, "generate") as progress:
        summary = generate(out, rows=rows, seed=seed, progress=progress)
    if as_json:
        _emit(summary.to_json())
    else:
        for line in summary.lines():
            console.print(line)


@demo_app.command("fraud")
@user_errors
def demo_fraud(
    dir: Annotated[Path, typer.Option("--dir", help="Project directory.")] = Path(
        "examples/fraud"),
    rows: Annotated[int, typer.Option(help="Transactions to generate.")] = 1_000_000,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
    story: Annotated[bool, typer.Option(
        "--story", help="Then tell the monitoring story in <dir>-story: a champion trained "
        "before a new attack campaign, the campaign replayed through `score`, `monitor` day "
        "by day, `retrain` (a few minutes; `valuechain demo fraud-story` for its options).")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Generate the fraud world if needed, then check, build, audit, train, decide, report."""
    from valuechain import api
    from valuechain.demo.fraud import generate_fraud as generate
    from valuechain.demo.fraud import ship

    data = dir / "data"
    if not (data / "transactions.parquet").exists():
        with _progress(not as_json, "generate") as progress:
            generate(data, rows=rows, seed=seed, progress=progress)
    loaded = _load(dir)
    checked = api.check(loaded)
    with _progress(not as_json, "build") as progress:
        built = api.build(loaded, progress=progress)
    with _progress(not as_json, "audit") as progress:
        audited = api.audit(loaded, progress=progress)
    with _progress(not as_json, "train") as progress:
        run = api.train(loaded, seed=seed, progress=progress)
    with _progress(not as_json, "decide") as progress:
        decided = api.decide(loaded, seed=seed, progress=progress)
    reported = api.report(loaded)
    shipped = ship(loaded, dir)
    payload = {"check": checked.to_json(), "build": built.to_json(),
               "audit": audited.to_json(), "train": run.to_json(),
               "decide": decided.to_json(), "report": reported.to_json(),
               "package": shipped.to_json()}
    if story:
        from valuechain.cli_retrain import tell_story

        if not as_json:
            _print_demo(checked, built, audited, run, decided, reported, shipped)
        payload["story"] = tell_story(dir.parent / f"{dir.name}-story", dir / "valuechain.yaml",
                                      seed=seed, quiet=as_json)
        if as_json:
            _emit(payload)
            return
        for line in shipped.lines():  # end, as without the story, on how to serve the bundle
            if line.startswith("next:"):
                console.print(line)
        return
    if as_json:
        _emit(payload)
        return
    _print_demo(checked, built, audited, run, decided, reported, shipped)


def _print_demo(checked: Any, built: Any, audited: Any, run: Any, decided: Any,
                reported: Any, shipped: Any) -> None:
    failed = [c.name for c in checked.data_checks if not c.passed]
    console.print(f"check: {'passed' if checked.passed else 'FAILED ' + str(failed)}")
    for item in checked.checklist:
        console.print(f"  {_mark(item.passed)} {item.title}")
    r = built.rows
    console.print(f"build: {r.mature:,} mature rows ({r.immature:,} immature excluded), "
                  f"{r.positive:,} positive, {built.seconds:.1f}s -> {built.frame}")
    counts = audited.to_json()["counts"]
    console.print(f"audit: {audited.critical} critical, {counts['warning']} warning(s), "
                  f"{counts['info']} info")
    best = run.best_candidate
    test = run.candidates[best].test
    console.print(f"train: run {run.run_id}, best {best}: test AUC "
                  f"{_num(test.get('roc_auc'), '.3f')}, AP "
                  f"{_num(test.get('average_precision'), '.3f')}; verdicts "
                  + ", ".join(f"{v.candidate} {v.verdict} {v.baseline}" for v in run.verdicts))
    savings = decided.test.savings or {}
    today = savings.get("rules") or savings["approve_all"]
    cap = decided.test.capacity
    console.print(f"decide: {decided.policy['kind']} policy, max {cap.max_used:.0f}/"
                  f"{cap.limit} reviews per day on test, saves {today.value:,.0f} "
                  f"[{_num(today.low, ',.0f')}, {_num(today.high, ',.0f')}] vs today's policy")
    console.print(f"report: {reported.path}" + ("" if reported.ok else
                                                 " (with problems: `valuechain report`)"))
    for line in shipped.lines():
        console.print(line)


# --- command modules (each registers its commands on `app` when imported)
# (one import line per module, alphabetical)
from valuechain import cli_churn as _cli_churn  # noqa: E402, F401  (registers commands)
from valuechain import cli_monitor as _cli_monitor  # noqa: E402, F401  (registers commands)
from valuechain import cli_parity as _cli_parity  # noqa: E402, F401  (registers commands)
from valuechain import cli_registry as _cli_registry  # noqa: E402, F401  (registers commands)
from valuechain import cli_retrain as _cli_retrain  # noqa: E402, F401  (registers commands)
from valuechain import cli_segment as _cli_segment  # noqa: E402, F401  (registers commands)
from valuechain import cli_serve as _cli_serve  # noqa: E402, F401  (registers commands)
from valuechain import cli_uplift as _cli_uplift  # noqa: E402, F401  (registers commands)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
