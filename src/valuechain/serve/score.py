"""``valuechain score``: decide a whole batch of events as the service would, logged.

:func:`score_file` reads decision events (Parquet, CSV or a DataFrame; the decision source's
columns) and decides every one of them with a bundle, in decision order (time, then keys, as
the build orders tied events). Two paths give the same decisions:

- **batch** (the default, vectorised): the features come from the offline engine
  (:func:`~valuechain.serve.batch_features.batch_features`: the build that made the training
  frame, run over the decision source's history before the first event plus the batch), the
  model scores whole chunks, the policy and the real-time capacity run in order
  (:func:`~valuechain.serve.batch.decide_batch`).
- **online** (``online=True``, the row-by-row reference): a private in-process feature state
  is warmed from the sources up to the first event; the events go through
  :meth:`Decider.prepare_batch <valuechain.serve.decider.Decider.prepare_batch>` one by one,
  and the sources' outcomes, dimension versions and other events that become known during
  the batch are applied between them at their availability times (the replay of
  ``valuechain parity``).

Both count the outcomes *known by each decision time*, reported during the batch included
(before this, the row-by-row path applied no outcome reported during the scored period; see
docs/batch-scoring.md). Every decision is appended to the decision log (``origin =
"score"``, one group commit per chunk) under a stable id (the same event scored with the
same bundle, policy and capacity limit gets the same id:
:meth:`Decider.decision_id <valuechain.serve.decider.Decider.decision_id>`); an id already in
the log is kept as logged first, so re-running a batch appends nothing twice
(``ScoreResult.logged`` counts what was appended). The decisions (keys, time, decision id, score,
action, policy action, overflow, reasons as JSON, the feature values) go to Parquet or CSV,
and with ``top`` the ``top`` highest scores of each capacity period (the review list) to
``<out>.top<N>.csv``.
"""

from __future__ import annotations

import json
import resource
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from valuechain.data.build import EngineChoice
from valuechain.errors import DataError, SpecError
from valuechain.io import atomic_path
from valuechain.policy.capacity import PERIOD_ANCHOR_US, capacity_period
from valuechain.serve.batch import decide_batch, event_rows
from valuechain.serve.decider import REASONS, Decider, Pending, time_us
from valuechain.serve.features import OnlineFeatures
from valuechain.serve.log import DecisionLog
from valuechain.spec.loader import LoadedSpec

if TYPE_CHECKING:
    from valuechain.data.plan import Plan
    from valuechain.registry import Bundle

__all__ = ["ScoreResult", "read_events", "score_file"]

DAY_US = 86_400_000_000
Progress = Callable[[str, float], None]


@dataclass(frozen=True)
class ScoreResult:
    """What :func:`score_file` did.

    ``mode`` is ``"batch"`` or ``"online"``; ``history_rows`` the decision source's rows
    used as history (batch) or loaded into the state (online); ``stages`` seconds per stage;
    ``peak_rss_mb`` the process's peak resident memory when it finished; ``logged`` the
    decisions appended to the log (fewer than ``rows`` when some were logged by an earlier
    run of the same batch).
    """

    rows: int
    seconds: float
    out: Path
    top_path: Path | None
    log_path: Path | None
    actions: dict[str, int]
    overflow: int
    bundle_version: str
    policy_version: str
    mode: str = "batch"
    history_rows: int = 0
    stages: dict[str, float] = field(default_factory=dict)
    peak_rss_mb: float = 0.0
    logged: int = 0

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "seconds": round(self.seconds, 3),
                "rows_per_second": round(self.rows_per_second, 1), "out": str(self.out),
                "top": str(self.top_path) if self.top_path else None,
                "log": str(self.log_path) if self.log_path else None,
                "logged": self.logged, "actions": self.actions, "overflow": self.overflow,
                "bundle_version": self.bundle_version, "policy_version": self.policy_version,
                "mode": self.mode, "history_rows": self.history_rows,
                "stages": {k: round(v, 3) for k, v in self.stages.items()},
                "peak_rss_mb": round(self.peak_rss_mb, 1)}


def read_events(path: Path) -> pd.DataFrame:
    """The events of a Parquet or CSV file; a :class:`DataError` naming the file otherwise."""
    path = Path(path)
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq") or path.is_dir():
            return pd.read_parquet(path)
        if suffix in (".csv", ".txt"):
            return pd.read_csv(path)
    except FileNotFoundError:
        raise DataError(f"`input` {path}: no such file; give a Parquet or CSV file of "
                        "decision events.") from None
    except Exception as err:  # pyarrow and pandas raise many types for a damaged file
        raise DataError(f"`input` {path}: cannot be read ({type(err).__name__}: {err}); give "
                        "a Parquet or CSV file of decision events.") from None
    raise DataError(f"`input` {path}: expected a .parquet or .csv file, got '{suffix}'.")


def _table(pendings: list[Pending], keys: tuple[str, ...], time_column: str,
           features: list[str]) -> pa.Table:
    decisions = [p.decision for p in pendings]
    data: dict[str, Any] = {k: [p.event.get(k) for p in pendings] for k in keys}
    data[time_column] = pd.to_datetime([d.time for d in decisions], utc=True)
    data["decision_id"] = [d.decision_id for d in decisions]
    data["score"] = np.array([d.score for d in decisions], dtype=np.float64)
    data["action"] = [d.action for d in decisions]
    data["policy_action"] = [d.policy_action for d in decisions]
    data["overflow"] = np.array([d.overflow for d in decisions], dtype=bool)
    data["reasons"] = [json.dumps([r.to_json() for r in d.reasons], default=str)
                       for d in decisions]
    for name in features:
        data[f"feature.{name}"] = [p.record.features.get(name) for p in pendings]
    return pa.Table.from_pandas(pd.DataFrame(data), preserve_index=False)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _online_chunks(decider: Decider, online: OnlineFeatures, events: pd.DataFrame,
                   times: np.ndarray, chunk: int, logger: DecisionLog | None,
                   progress: Progress | None) -> Iterator[pa.Table]:
    """The row-by-row reference: events through the decider one by one, the sources'
    updates (outcomes, dimension versions, other events) applied between them as they
    become known (``valuechain parity``'s replay order: updates before events at equal
    times); each chunk logged (one transaction) and yielded as a table."""
    n = len(events)
    first, last = int(times[0]), int(times[-1])
    updates = [item for item in online.history(first - 1, last) if item.kind != "event"]
    names = list(decider.feature_names)
    u = 0
    done = 0
    while done < n:
        stop = min(done + chunk, n)
        rows = event_rows(events.iloc[done:stop])
        out: list[Pending] = []
        run: list[dict[str, Any]] = []
        for i, row in enumerate(rows):
            t = int(times[done + i])
            if u < len(updates) and updates[u].time <= t:
                out += decider.prepare_batch(run)
                run = []
                while u < len(updates) and updates[u].time <= t:
                    online.apply(updates[u])
                    u += 1
            run.append(row)
        out += decider.prepare_batch(run)
        if logger is not None:
            logger.append_many([p.record for p in out], on_repeat="skip")
        done = stop
        if progress:
            progress(f"{done:,} of {n:,} events", 0.1 + 0.9 * done / n)
        yield _table(out, decider.key_columns, decider.time_column, names)



@dataclass(frozen=True)
class Batch:
    """A batch of decision events checked against the bundle that will decide them."""

    loaded: LoadedSpec
    registry: Path  # the registry folder, resolved (executors open the bundle from it)
    bundle: Bundle
    plan: Plan
    features: OnlineFeatures
    frame: pd.DataFrame
    name: str  # the input as named in messages
    stem: str  # the default output file's stem


def open_batch(spec: str | Path | LoadedSpec, input: str | Path | pd.DataFrame, *,
               version: str | None = None, registry: str | Path | None = None) -> Batch:
    """Load the spec and the bundle, read the events and check they carry every column the
    features read (one paragraph naming the column otherwise); shared by every batch path."""
    from valuechain.registry import Registry, default_registry
    from valuechain.serve.state import MemoryState
    from valuechain.spec.loader import load_spec

    loaded = spec if isinstance(spec, LoadedSpec) else load_spec(Path(spec))
    registry_path = Path(registry or default_registry(loaded)).resolve()
    bundle = Registry(registry_path).load(version)
    plan = bundle.plan(loaded.root)
    if isinstance(input, pd.DataFrame):
        frame, name, stem = input.reset_index(drop=True), "DataFrame", "batch"
    else:
        frame, name, stem = read_events(Path(input)), str(input), Path(input).stem
    features = OnlineFeatures(plan, MemoryState())
    missing = [c for c in features.required if c not in frame.columns]
    if missing:
        raise DataError(f"`input` {name}, column '{missing[0]}': missing column(s) {missing}; "
                        f"the decision events need the columns of source '{features.own}' the "
                        f"features read: {list(features.required)} (keys "
                        f"{list(features.keys)}, time '{features.time_column}').")
    if frame.empty:
        raise DataError(f"`input` {name}: no rows to score.")
    return Batch(loaded, registry_path, bundle, plan, features, frame, name, stem)


def score_file(spec: Path | str | LoadedSpec, input: Path | str | pd.DataFrame, *,
               out: Path | None = None, version: str | None = None, top: int | None = None,
               log_path: Path | None = None, log: bool = True, registry: Path | None = None,
               chunk: int = 50_000, online: bool = False, engine: EngineChoice = None,
               reasons: str = "all", capacity_limit: int | None = None,
               progress: Progress | None = None) -> ScoreResult:
    """Decide every event of ``input`` (see the module docstring); the result and files.

    Parameters
    ----------
    spec : path or LoadedSpec
        The project.
    input : Path or DataFrame
        Parquet or CSV file of decision events (the decision source's columns), or a
        DataFrame of them.
    out : Path, optional
        ``.parquet`` or ``.csv``; default ``<workspace>/score/<input stem>.decisions.parquet``
        (``batch.decisions.parquet`` for a DataFrame).
    version : str, optional
        Bundle version; default the registry's production version.
    top : int, optional
        Also write the ``top`` highest scores per capacity period to ``<out>.top<N>.csv``.
    log_path : Path, optional
        The decision log; default the service's ``<workspace>/serve/decisions.sqlite``.
    log : bool, default True
        Append the decisions to the decision log (``origin = "score"``); a decision id
        already logged (the same batch scored before) is not appended again.
    registry : Path, optional
        The registry folder; default the project's.
    chunk : int, default 50000
        Events per model call, per log transaction and per output row group.
    online : bool, default False
        Use the row-by-row reference path instead of the vectorised one.
    engine : optional
        The offline engine of the batch path (default the spec's, else DuckDB).
    reasons : {"all", "flagged", "none"}, default "all"
        Which decisions get their top reasons (batch path; the online path gives all):
        every one as the service does, only those not given the policy's lowest action
        (reviewed, declined), or none. The reasons (TreeSHAP) cost more than anything else.
    capacity_limit : int, optional
        Overrides the spec's capacity limit per period (as ``valuechain serve`` does).
    progress : callable, optional
        Called with ``(stage, fraction done)``.

    Returns
    -------
    ScoreResult

    Examples
    --------
    >>> result = score_file("examples/fraud", "payments.parquet", top=150)  # doctest: +SKIP
    >>> result.rows_per_second  # doctest: +SKIP
    """
    from valuechain.data.sources import us_to_datetime
    from valuechain.serve.batch_features import batch_features

    if reasons not in REASONS:
        raise SpecError(f"`reasons` must be one of {', '.join(REASONS)}, got {reasons!r}.")
    if chunk < 1:
        raise SpecError(f"`chunk` must be at least 1, got {chunk}.")
    started = time.perf_counter()
    stages: dict[str, float] = {}
    batch = open_batch(spec, input, version=version, registry=registry)
    loaded, bundle, plan, features = batch.loaded, batch.bundle, batch.plan, batch.features
    frame, name, stem = batch.frame, batch.name, batch.stem
    keys, tcol = features.keys, features.time_column
    target = Path(out) if out else loaded.workspace / "score" / f"{stem}.decisions.parquet"
    logger = DecisionLog(log_path or loaded.workspace / "serve" / "decisions.sqlite",
                         max_batch=max(chunk, 1)) if log else None
    try:
        decider = Decider(bundle, features, logger, state=features.state, origin="score",
                          capacity_limit=capacity_limit)
    except BaseException:
        if logger is not None:
            logger.close()
        raise
    history_rows = 0
    try:
        if online:
            stamps = frame[tcol].map(lambda v: time_us(v, tcol))
            frame = frame.assign(__t=stamps).sort_values(["__t", *keys], kind="stable")
            times = frame.pop("__t").to_numpy(dtype=np.int64)
            frame = frame.reset_index(drop=True)
            if progress:
                progress("warming the feature state", 0.0)
            warmed = features.warm(us_to_datetime(int(times[0]) - 1, features.aware))
            history_rows = int(sum(warmed.rows.values()))
            stages["warm"] = time.perf_counter() - started
            chunks = _online_chunks(decider, features, frame, times, chunk, logger, progress)
        else:
            if progress:
                progress("features (offline engine)", 0.0)
            spans = features.spans()
            built = batch_features(loaded, plan, frame, name=name, required=features.required,
                                   lookback_us=spans.get(features.own, 0) + features.slack_us,
                                   engine=engine, progress=None)
            history_rows = built.history_rows
            stages.update({f"features.{k}": v for k, v in built.seconds.items()})
            chunks = decide_batch(decider, built, log=logger, chunk=chunk, reasons=reasons,
                                  progress=progress)
        begun = time.perf_counter()
        actions, overflow, n = _write(target, chunks)
        stages["decide"] = time.perf_counter() - begun
    finally:
        if logger is not None:
            logger.close()
    top_path = _write_top(target, top, decider, tcol) if top else None
    return ScoreResult(rows=n, seconds=time.perf_counter() - started, out=target,
                       top_path=top_path, log_path=logger.path if logger else None,
                       actions=actions, overflow=overflow, bundle_version=bundle.version,
                       policy_version=decider.policy_version,
                       mode="online" if online else "batch", history_rows=history_rows,
                       stages=stages, peak_rss_mb=_peak_rss_mb(),
                       logged=logger.stats.records if logger else 0)


def _write(target: Path, chunks: Iterator[pa.Table]) -> tuple[dict[str, int], int, int]:
    """Write the decision tables to ``target`` (Parquet or CSV, atomically). Returns the
    action counts, the overflow count and the rows."""
    as_csv = target.suffix.lower() == ".csv"
    actions: dict[str, int] = {}
    overflow = n = 0
    writer: pq.ParquetWriter | None = None
    try:
        with atomic_path(target) as tmp:
            for table in chunks:
                if table.num_rows == 0:
                    continue
                if as_csv:
                    table.to_pandas().to_csv(tmp, mode="w" if n == 0 else "a",
                                             header=n == 0, index=False)
                else:
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
                    writer.write_table(table.cast(writer.schema))
                counted = table.column("action").value_counts().to_pylist()
                for item in counted:
                    actions[item["values"]] = actions.get(item["values"], 0) + item["counts"]
                overflow += int(pc.sum(table.column("overflow")).as_py() or 0)
                n += table.num_rows
            if writer is not None:
                writer.close()
                writer = None
    finally:
        if writer is not None:
            writer.close()
    return actions, overflow, n


def _write_top(target: Path, top: int, decider: Decider, time_column: str) -> Path:
    """The ``top`` highest scores of each capacity period (default one day) as CSV."""
    table = (pd.read_csv(target) if target.suffix.lower() == ".csv" else
             pd.read_parquet(target))
    per_us = decider.capacity.per_us if decider.capacity is not None else DAY_US
    # whatever unit pandas chose (ns in pandas 2, often us in pandas 3): microseconds
    t_us = (pd.to_datetime(table[time_column], utc=True)
            .astype("datetime64[us, UTC]").astype("int64"))
    start = PERIOD_ANCHOR_US + capacity_period(t_us.to_numpy(dtype=np.int64), per_us) * per_us
    table.insert(0, "period_start", pd.to_datetime(start, unit="us", utc=True))
    ranked = table.assign(__rank=table.groupby("period_start")["score"].rank(
        method="first", ascending=False)).sort_values(["period_start", "__rank"])
    chosen = ranked[ranked["__rank"] <= top].drop(columns="__rank")
    chosen.insert(1, "rank", chosen.groupby("period_start").cumcount() + 1)
    path = target.with_name(f"{target.stem}.top{top}.csv")
    with atomic_path(path) as tmp:
        chosen.to_csv(tmp, index=False)
    return path
