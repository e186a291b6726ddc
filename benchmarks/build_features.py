"""Build the fraud handbook's 15 features three ways and compare speed and peak memory.

Engines, each timed in a process of its own so that peak memory is its own:

- ``pandas``: the book's code (``groupby().apply`` of rolling windows), from
  ``tests/handbook_oracle.py``; compute time only (the Parquet read is excluded);
- ``kernel``: the hand-written sorted two-pointer kernel from the same module (numba when
  installed, else numpy); compute time only, JIT compilation excluded (warmed up first on a
  small slice), best of ``--repeat`` runs;
- ``valuechain``: ``valuechain build --json --spec SPEC --force`` end to end (start-up, reading,
  point-in-time features, labels, writing the frame); with ``--check`` its frame is then
  compared with the kernel's features on the frame's rows.

Peak memory is the VmHWM that each child reports for itself (for valuechain, ``wait4``'s
``ru_maxrss``, which also counts this small parent process's RSS at fork time).

Two data sets: the handbook's 1.75 M transactions (``--handbook``; skipped with a message when
absent) and a synthetic table of ``--rows-generated`` rows with the same columns and shape
(customers ~ N/350, terminals ~ N/175, 183 days, ~0.8 % fraud) written under
``benchmarks/_work/``. pandas runs on the synthetic table only up to ``--pandas-max-rows``.

Usage::

    python benchmarks/build_features.py                       # rich table
    python benchmarks/build_features.py --rows-generated 1000000 --json
    python benchmarks/build_features.py --write-results       # update benchmarks/RESULTS.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
WORK = HERE / "_work"
SECTION = "## build_features"
DEFAULT_HANDBOOK = (
    Path(__file__).resolve().parents[2] / "shared/data/fraud_handbook/transactions.parquet"
)
DEFAULT_SPEC = REPO / "examples" / "fraud-handbook" / "valuechain.yaml"
ENGINES = ("pandas", "kernel", "valuechain")

sys.path.insert(0, str(REPO))  # tests/handbook_oracle.py: the oracle and the kernel
sys.path.insert(0, str(HERE))
from _results import RESULTS_MD, machine_info, write_section  # noqa: E402


class ValuechainUnavailable(RuntimeError):
    """``valuechain build`` cannot be run (no command, no spec, or the build failed)."""


@dataclass
class Measurement:
    """One engine on one data set."""

    dataset: str
    engine: str
    rows: int
    status: str = "ok"  # ok | skipped | failed | not available
    seconds: float | None = None  # compute time (pandas, kernel) or end-to-end (valuechain)
    process_seconds: float | None = None  # the whole subprocess, start-up and reading included
    peak_rss_mib: float | None = None
    note: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rows_per_s(self) -> float | None:
        return self.rows / self.seconds if self.seconds else None


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Subprocesses with their own peak memory
# ---------------------------------------------------------------------------------------------


@dataclass
class ProcessRun:
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    peak_rss_mib: float


def run_measured(
    cmd: Sequence[str], cwd: Path = REPO, env: dict[str, str] | None = None
) -> ProcessRun:
    """Run ``cmd``; wall time and the RSS high-water mark of that very child (``wait4``)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(cmd), cwd=cwd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return ProcessRun(
            returncode=proc.returncode,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
            seconds=seconds,
            peak_rss_mib=usage.ru_maxrss / 1024,  # kilobytes on Linux
        )


def run_check(data: Path, frame: Path, dataset: str) -> dict[str, Any]:
    """``--only check`` in a subprocess: valuechain's frame against the kernel."""
    log(f"[{dataset}] check: valuechain's frame against the kernel ...")
    me = str(Path(__file__).resolve())
    run = run_measured(
        [sys.executable, me, "--only", "check", "--data", str(data), "--frame", str(frame)]
    )
    if run.returncode != 0:
        return {"error": (run.stderr.strip().splitlines() or ["failed"])[-1]}
    result: dict[str, Any] = json.loads(run.stdout.strip().splitlines()[-1])
    log(f"[{dataset}] check: {result}")
    return result


def run_child(engine: str, data: Path, dataset: str, rows: int, repeat: int) -> Measurement:
    """Re-invoke this script with ``--only ENGINE`` on ``data``."""
    cmd = [sys.executable, str(Path(__file__).resolve()), "--only", engine, "--data", str(data)]
    cmd += ["--repeat", str(repeat)]
    log(f"[{dataset}] {engine}: running ...")
    run = run_measured(cmd)
    m = Measurement(dataset, engine, rows, process_seconds=run.seconds)
    m.peak_rss_mib = run.peak_rss_mib
    m.extra["peak_rss_wait4_mib"] = run.peak_rss_mib
    if run.returncode != 0:
        m.status = "failed"
        m.note = (run.stderr.strip().splitlines() or ["exit code " + str(run.returncode)])[-1]
        log(f"[{dataset}] {engine}: failed: {run.stderr.strip()[-2000:]}")
        return m
    report = json.loads(run.stdout.strip().splitlines()[-1])
    m.rows = int(report["rows"])
    m.seconds = float(report["seconds"])
    m.extra.update({k: v for k, v in report.items() if k not in ("rows", "seconds")})
    if report.get("peak_rss_self_mib"):  # VmHWM: this process only, not its parent
        m.peak_rss_mib = float(report["peak_rss_self_mib"])
    if engine == "kernel":
        m.note = f"{report['backend']}, best of {len(report['runs'])}"
    log(f"[{dataset}] {engine}: {m.seconds:.3f} s, peak {m.peak_rss_mib:.0f} MiB")
    return m


def child_main(args: argparse.Namespace) -> None:
    """``--only ...``: work that must not grow the parent process; prints one JSON line.

    ``pandas`` / ``kernel`` time one engine; ``generate`` writes the synthetic table; ``check``
    compares valuechain's frame with the kernel.
    """
    engine, data = args.only, args.data
    if engine == "generate":
        generate_transactions(args.rows_generated, data, seed=args.seed)
        print(json.dumps({"rows": args.rows_generated, "path": str(data)}))
        return
    if engine == "check":
        print(json.dumps(check_valuechain_frame(data, args.frame)))
        return
    import pandas as pd
    from tests.handbook_oracle import (
        KERNEL_BACKEND,
        handbook_features,
        two_pointer_features,
        warm_up,
    )

    df = pd.read_parquet(data)
    report: dict[str, Any] = {"engine": engine, "rows": len(df)}
    if engine == "pandas":
        start = time.perf_counter()
        out = handbook_features(df)
        report["seconds"] = time.perf_counter() - start
    else:
        warm_up()
        two_pointer_features(df.iloc[: min(len(df), 20_000)])  # compile for these dtypes
        runs = []
        for _ in range(max(args.repeat, 1)):
            out = None  # free the previous result before the next run
            start = time.perf_counter()
            out = two_pointer_features(df)
            runs.append(time.perf_counter() - start)
        report["seconds"] = min(runs)
        report["runs"] = runs
        report["backend"] = KERNEL_BACKEND
    if out is None or len(out) != len(df):
        got = "no" if out is None else len(out)
        raise SystemExit(f"{engine}: {got} output rows for {len(df)} input rows")
    report["rss_after_load_mib"] = _proc_status_mib("VmRSS")
    report["peak_rss_self_mib"] = _proc_status_mib("VmHWM")
    print(json.dumps(report))


def _proc_status_mib(name: str) -> float | None:
    """``VmRSS`` / ``VmHWM`` of this process (Linux); ``ru_maxrss`` also counts the parent's
    RSS at fork time, VmHWM does not."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    if name == "VmHWM":
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return None


# ---------------------------------------------------------------------------------------------
# valuechain
# ---------------------------------------------------------------------------------------------


def valuechain_command() -> tuple[list[str], dict[str, str] | None] | None:
    """How to run ``valuechain``: the environment's command, one on PATH, or this checkout.

    Returns the command prefix and the environment to run it with (None: inherit).
    """
    beside = Path(sys.executable).parent / "valuechain"
    if beside.exists():
        return [str(beside)], None
    found = shutil.which("valuechain")
    if found:
        return [found], None
    if (REPO / "src" / "valuechain" / "cli.py").exists():  # not installed: run the checkout
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO / "src"), *filter(None, [env.get("PYTHONPATH")])]
        )
        code = "import sys; from valuechain.cli import main; sys.exit(main())"
        return [sys.executable, "-c", code], env
    return None


def _run_valuechain_measured(spec_path: Path) -> ProcessRun:
    found = valuechain_command()
    if found is None:
        raise ValuechainUnavailable("no `valuechain` command")
    if not spec_path.exists():
        raise ValuechainUnavailable(f"no spec at {spec_path}")
    command, env = found
    cmd = [*command, "build", "--json", "--spec", str(spec_path), "--force"]
    run = run_measured(cmd, env=env)
    if run.returncode != 0:
        tail = (run.stderr.strip() or run.stdout.strip()).splitlines()[-3:]
        raise ValuechainUnavailable(f"build exited {run.returncode}: {' | '.join(tail)}")
    return run


def run_valuechain(spec_path: Path) -> float:
    """Run ``valuechain build --json --spec SPEC --force``; wall seconds of the subprocess.

    Raises :class:`ValuechainUnavailable` when the command, the spec or the build is missing.
    """
    return _run_valuechain_measured(spec_path).seconds


def measure_valuechain(spec_path: Path, dataset: str, rows: int) -> Measurement:
    log(f"[{dataset}] valuechain: running ...")
    try:
        run = _run_valuechain_measured(spec_path)
    except ValuechainUnavailable as exc:
        print(f"valuechain: not available ({exc})", file=sys.stderr, flush=True)
        return Measurement(dataset, "valuechain", rows, status="not available", note=str(exc))
    m = Measurement(
        dataset,
        "valuechain",
        rows,
        seconds=run.seconds,
        process_seconds=run.seconds,
        peak_rss_mib=run.peak_rss_mib,
        note="end to end: start-up, read, build, write",
    )
    try:
        m.extra["build"] = json.loads(run.stdout)
    except json.JSONDecodeError:
        m.extra["stdout_tail"] = run.stdout[-2000:]
    else:
        inside = m.extra["build"].get("seconds") if isinstance(m.extra["build"], dict) else None
        if isinstance(inside, int | float):
            m.note += f"; build reports {inside:.2f} s"
    log(f"[{dataset}] valuechain: {m.seconds:.3f} s, peak {m.peak_rss_mib:.0f} MiB")
    return m


def retarget_spec(spec_path: Path, original: Path, replacement: Path, dest: Path) -> Path:
    """Copy the spec to ``dest`` with every path to ``original`` replaced by ``replacement``."""
    import yaml

    spec = yaml.safe_load(spec_path.read_text())
    hits = 0

    def walk(node: Any) -> Any:
        nonlocal hits
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        if isinstance(node, list):
            return [walk(v) for v in node]
        if isinstance(node, str) and node.endswith(original.name):
            candidate = Path(node)
            if not candidate.is_absolute():
                candidate = spec_path.parent / candidate
            if candidate.resolve() == original.resolve() or not original.exists():
                hits += 1
                return str(replacement.resolve())
        return node

    spec = walk(spec)
    if hits == 0:
        raise ValuechainUnavailable(f"{spec_path} names no source at {original}")
    dest.parent.mkdir(parents=True, exist_ok=True)
    header = f"# Generated by benchmarks/build_features.py from {spec_path.name}: do not edit.\n"
    dest.write_text(header + yaml.safe_dump(spec, sort_keys=False))
    return dest


def check_valuechain_frame(data: Path, frame_path: Path) -> dict[str, float | int]:
    """Largest difference between valuechain's frame and the kernel on the frame's rows."""
    import numpy as np
    import pandas as pd
    from tests.handbook_oracle import feature_columns, two_pointer_features

    frame = pd.read_parquet(frame_path)
    expected = two_pointer_features(pd.read_parquet(data)).set_index("TRANSACTION_ID")
    expected = expected.loc[frame["TRANSACTION_ID"].to_numpy()]
    worst = 0.0
    for col in feature_columns():
        got = frame[col].to_numpy(dtype=np.float64)
        diff = np.abs(got - expected[col].to_numpy(dtype=np.float64))
        worst = max(worst, float(np.nanmax(diff)) if diff.size else 0.0)
    return {"frame_rows": len(frame), "max_abs_diff_vs_kernel": worst}


# ---------------------------------------------------------------------------------------------
# Synthetic data
# ---------------------------------------------------------------------------------------------


def generate_transactions(n: int, path: Path, seed: int = 0) -> Path:
    """``n`` handbook-like transactions (sorted by time, integer ids) as Parquet at ``path``."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    n_customers = max(1, round(n / 350))
    n_terminals = max(1, round(n / 175))
    seconds = np.sort(rng.integers(0, 183 * 86_400, n))
    customers = rng.integers(0, n_customers, n)
    terminals = rng.integers(0, n_terminals, n)
    mean_amount = rng.uniform(5.0, 100.0, n_customers)
    amount = np.round(np.abs(rng.normal(mean_amount[customers], mean_amount[customers] / 2)), 2)
    fraud = (rng.random(n) < 0.008).astype(np.int64)
    df = pd.DataFrame(
        {
            "TRANSACTION_ID": np.arange(n, dtype=np.int64),
            "TX_DATETIME": (
                np.datetime64("2018-04-01T00:00:00", "ns")
                + seconds.astype("timedelta64[s]").astype("timedelta64[ns]")
            ),
            "CUSTOMER_ID": customers,
            "TERMINAL_ID": terminals,
            "TX_AMOUNT": amount,
            "TX_TIME_SECONDS": seconds,
            "TX_TIME_DAYS": seconds // 86_400,
            "TX_FRAUD": fraud,
            "TX_FRAUD_SCENARIO": fraud,
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    df.to_parquet(tmp, index=False)
    tmp.replace(path)
    return path


# ---------------------------------------------------------------------------------------------
# Reporting
# ---------------------------------------------------------------------------------------------


def add_ratios(results: list[Measurement]) -> None:
    """``speedup_vs_pandas`` = pandas s / s; ``speed_vs_kernel`` = kernel s / s (1 = kernel)."""
    for dataset in {m.dataset for m in results}:
        rows = [m for m in results if m.dataset == dataset]
        base = {m.engine: m.seconds for m in rows if m.status == "ok" and m.seconds}
        for m in rows:
            if m.status != "ok" or not m.seconds:
                continue
            pandas_s, kernel_s = base.get("pandas"), base.get("kernel")
            if pandas_s:
                m.extra["speedup_vs_pandas"] = pandas_s / m.seconds
            if kernel_s:
                m.extra["speed_vs_kernel"] = kernel_s / m.seconds


def _fmt(value: float | None, spec: str) -> str:
    return "—" if value is None else format(value, spec)


def table_rows(results: list[Measurement]) -> list[list[str]]:
    rows = []
    for m in results:
        rows.append(
            [
                m.dataset,
                m.engine,
                f"{m.rows:,}",
                _fmt(m.seconds, ".3f") if m.status == "ok" else m.status,
                _fmt(m.rows_per_s / 1e6 if m.rows_per_s else None, ".2f"),
                _fmt(m.process_seconds, ".1f"),
                _fmt(m.peak_rss_mib, ",.0f"),
                _fmt(m.extra.get("speedup_vs_pandas"), ",.1f"),
                _fmt(m.extra.get("speed_vs_kernel"), ".3f"),
                m.note,
            ]
        )
    return rows


HEADERS = [
    "data",
    "engine",
    "rows",
    "seconds",
    "M rows/s",
    "process s",
    "peak RSS MiB",
    "× pandas",
    "× kernel",
    "note",
]

NOTES = (
    "`seconds`: compute only for pandas and kernel (Parquet read and JIT excluded), end to end "
    "for valuechain. `process s`: the whole subprocess. `peak RSS`: high-water mark of that "
    "engine's own process (data included). `× pandas` = pandas seconds / seconds (speed-up); "
    "`× kernel` = kernel seconds / seconds (1 = as fast as the two-pointer kernel)."
)


def print_table(results: list[Measurement]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="build_features: the handbook's 15 features")
    for h in HEADERS:
        table.add_column(h, justify="left" if h in ("data", "engine", "note") else "right")
    for row in table_rows(results):
        table.add_row(*row)
    console = Console()
    if not console.is_terminal:
        console = Console(width=170)
    console.print(table)
    console.print(NOTES, style="dim")


def markdown_section(
    results: list[Measurement], machine: dict[str, Any], date: str, command: str = ""
) -> str:
    lines = [
        SECTION,
        "",
        f"Measured {date} on `{machine['platform']}`, {machine['cpu']}, {machine['cores']} cores "
        f"(Python {machine['python']}, pandas {machine['pandas']}, numpy {machine['numpy']}, "
        f"numba {machine['numba'] or 'not installed'}, duckdb {machine['duckdb']}).",
        f"Command: `{command or 'python benchmarks/build_features.py --write-results'}`.",
        "",
        "| " + " | ".join(HEADERS) + " |",
        "|" + "|".join("---" if h in ("data", "engine", "note") else "---:" for h in HEADERS) + "|",
    ]
    for row in table_rows(results):
        lines.append("| " + " | ".join(cell.replace("|", "/") for cell in row) + " |")
    lines += ["", NOTES, ""]
    return "\n".join(lines)


def write_results(
    results: list[Measurement],
    machine: dict[str, Any],
    date: str,
    path: Path = RESULTS_MD,
    command: str = "",
) -> Path:
    """Replace (or append) the ``## build_features`` section of ``path``."""
    return write_section(SECTION, markdown_section(results, machine, date, command), path)


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def bench_dataset(
    dataset: str,
    data: Path,
    rows: int,
    spec: Path | None,
    args: argparse.Namespace,
    run_pandas: bool,
    pandas_note: str = "",
) -> list[Measurement]:
    """pandas, kernel and valuechain on one table (``rows`` 0: learnt from the children)."""
    results = []
    if run_pandas:
        results.append(run_child("pandas", data, dataset, rows, 1))
    else:
        results.append(Measurement(dataset, "pandas", rows, status="skipped", note=pandas_note))
    results.append(run_child("kernel", data, dataset, rows, args.repeat))
    rows = rows or max(m.rows for m in results)
    for m in results:
        m.rows = m.rows or rows
    if spec is None:
        results.append(
            Measurement(dataset, "valuechain", rows, status="not available", note="no spec")
        )
    else:
        m = measure_valuechain(spec, dataset, rows)
        if m.status == "ok" and args.check:
            build = m.extra.get("build")
            frame = build.get("frame") if isinstance(build, dict) else None
            if not isinstance(frame, str):
                frame = str(spec.parent / ".valuechain" / "build" / "frame.parquet")
            m.extra["check"] = run_check(data, Path(frame), dataset)
            diff = m.extra["check"].get("max_abs_diff_vs_kernel")
            m.note += "; check failed" if diff is None else f"; max |diff| vs kernel {diff:.1e}"
        results.append(m)
    return results


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    p.add_argument("--rows-generated", type=int, default=10_000_000, metavar="N")
    p.add_argument("--skip-generated", action="store_true", help="only the handbook data")
    p.add_argument("--skip-handbook", action="store_true", help="only the generated data")
    p.add_argument("--handbook", type=Path, default=DEFAULT_HANDBOOK, metavar="PATH")
    p.add_argument("--spec", type=Path, default=DEFAULT_SPEC, help="valuechain spec (handbook)")
    p.add_argument(
        "--pandas-max-rows",
        type=int,
        default=2_000_000,
        help="largest generated table the pandas approach is run on (default 2M)",
    )
    p.add_argument("--repeat", type=int, default=3, help="kernel runs; the best counts")
    p.add_argument("--seed", type=int, default=0, help="seed of the generated table")
    p.add_argument(
        "--check",
        action="store_true",
        help="compare valuechain's frame with the kernel on the frame's rows",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")
    p.add_argument("--write-results", action="store_true", help=f"update {RESULTS_MD.name}")
    p.add_argument(
        "--only", choices=["pandas", "kernel", "generate", "check"], help=argparse.SUPPRESS
    )
    p.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    p.add_argument("--frame", type=Path, help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.only:
        if args.data is None:
            raise SystemExit("--only needs --data")
        child_main(args)
        return 0

    results: list[Measurement] = []
    if args.skip_handbook:
        pass
    elif not args.handbook.exists():
        log(f"handbook data: not found at {args.handbook}; skipping the handbook benchmark")
    else:
        results += bench_dataset("handbook", args.handbook, 0, args.spec, args, True)

    if not args.skip_generated:
        n = args.rows_generated
        data = WORK / f"generated_{n}_seed{args.seed}.parquet"
        if not data.exists():
            log(f"[generated] writing {n:,} rows to {data} ...")
            me = str(Path(__file__).resolve())
            cmd = [sys.executable, me, "--only", "generate", "--data", str(data)]
            run = run_measured([*cmd, "--rows-generated", str(n), "--seed", str(args.seed)])
            if run.returncode != 0:
                raise SystemExit(f"generating {data} failed:\n{run.stderr}")
        spec: Path | None = None
        try:
            spec = retarget_spec(
                args.spec, args.handbook, data, WORK / f"spec_generated_{n}" / "valuechain.yaml"
            )
        except (OSError, ValuechainUnavailable) as exc:
            print(f"valuechain: not available ({exc})", file=sys.stderr, flush=True)
        run_pandas = n <= args.pandas_max_rows
        note = (
            ""
            if run_pandas
            else f"not run above {args.pandas_max_rows:,} rows: the book's per-group rolling "
            "takes many minutes there"
        )
        if not run_pandas:
            log(f"[generated] pandas: skipped ({note})")
        results += bench_dataset("generated", data, n, spec, args, run_pandas, note)

    add_ratios(results)
    machine = machine_info()
    date = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    if args.json:
        payload = {
            "date": date,
            "machine": machine,
            "results": [{**asdict(m), "rows_per_s": m.rows_per_s} for m in results],
        }
        print(json.dumps(payload, indent=2, default=str))
    else:
        print_table(results)
    if args.write_results:
        command = " ".join(["python benchmarks/build_features.py", *(argv or sys.argv[1:])])
        path = write_results(results, machine, date, command=command)
        log(f"updated {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
