"""``valuechain score``: decide a whole batch of events with the service's code path.

:func:`score_file` reads decision events (Parquet or CSV, the decision source's columns),
puts them in decision order (time, then keys, as the build orders tied events), warms a
private in-process feature state from the sources' history up to the first event, and runs
them through :meth:`Decider.decide_batch <valuechain.serve.decider.Decider.decide_batch>` in
chunks: features event by event (each event applied before the next, as the service does),
the model once per chunk, policy and real-time capacity in order, one group commit to the
decision log per chunk (``origin = "score"``). The decisions are those the service would
return for the same events arriving in that order. Outcomes reported during the scored
period are not applied (use ``valuechain parity`` to replay a period with them).

Writes the decisions (keys, time, decision id, score, action, policy action, overflow,
reasons as JSON, the feature values) to Parquet or CSV, and with ``top`` the ``top`` highest
scores of each capacity period (the review list) to ``<out>.top<N>.csv``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from valuechain.errors import DataError
from valuechain.io import atomic_path
from valuechain.policy.capacity import PERIOD_ANCHOR_US, capacity_period
from valuechain.serve.decider import Decider, Pending
from valuechain.serve.log import DecisionLog
from valuechain.spec.loader import LoadedSpec

__all__ = ["ScoreResult", "read_events", "score_file"]

DAY_US = 86_400_000_000


@dataclass(frozen=True)
class ScoreResult:
    """What :func:`score_file` did."""

    rows: int
    seconds: float
    out: Path
    top_path: Path | None
    log_path: Path | None
    actions: dict[str, int]
    overflow: int
    bundle_version: str
    policy_version: str

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else float("inf")

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "seconds": round(self.seconds, 3),
                "rows_per_second": round(self.rows_per_second, 1), "out": str(self.out),
                "top": str(self.top_path) if self.top_path else None,
                "log": str(self.log_path) if self.log_path else None,
                "actions": self.actions, "overflow": self.overflow,
                "bundle_version": self.bundle_version, "policy_version": self.policy_version}


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


def _rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    records: list[dict[str, Any]] = [{str(k): v for k, v in r.items()}
                                     for r in frame.to_dict("records")]
    for row in records:
        for k, v in row.items():
            if (isinstance(v, float) and v != v) or v is pd.NaT:
                row[k] = None
    return records


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


def score_file(spec: Path | str | LoadedSpec, input: Path, *, out: Path | None = None,
               version: str | None = None, top: int | None = None,
               log_path: Path | None = None, log: bool = True, registry: Path | None = None,
               chunk: int = 20_000,
               progress: Callable[[str, float], None] | None = None) -> ScoreResult:
    """Decide every event of ``input`` (see the module docstring); the result and files.

    Parameters
    ----------
    spec : path or LoadedSpec
        The project.
    input : Path
        Parquet or CSV file of decision events (the decision source's columns).
    out : Path, optional
        ``.parquet`` or ``.csv``; default ``<workspace>/score/<input stem>.decisions.parquet``.
    version : str, optional
        Bundle version; default the registry's production version.
    top : int, optional
        Also write the ``top`` highest scores per capacity period to ``<out>.top<N>.csv``.
    log_path : Path, optional
        The decision log; default the service's ``<workspace>/serve/decisions.sqlite``.
    log : bool, default True
        Append the decisions to the decision log (``origin = "score"``).
    chunk : int, default 20000
        Events per model call and per log transaction.
    """
    from valuechain.data.sources import us_to_datetime
    from valuechain.registry import Registry, default_registry
    from valuechain.serve.features import OnlineFeatures
    from valuechain.serve.state import MemoryState
    from valuechain.spec.loader import load_spec

    started = time.perf_counter()
    loaded = spec if isinstance(spec, LoadedSpec) else load_spec(Path(spec))
    bundle = Registry(registry or default_registry(loaded)).load(version)
    plan = bundle.plan(loaded.root)
    frame = read_events(Path(input))
    online = OnlineFeatures(plan, MemoryState())
    keys, tcol = online.keys, online.time_column
    missing = [c for c in (*keys, tcol) if c not in frame.columns]
    if missing:
        raise DataError(f"`input` {input}: missing column(s) {missing}; the decision events "
                        f"need the keys {list(keys)} and the time column '{tcol}'.")
    if frame.empty:
        raise DataError(f"`input` {input}: no rows to score.")
    order_t = pd.to_datetime(frame[tcol], utc=online.aware)
    frame = frame.assign(__t=order_t).sort_values(["__t", *keys], kind="stable").drop(
        columns="__t").reset_index(drop=True)
    first = frame[tcol].iloc[0]
    first_us = int(pd.Timestamp(first).tz_localize(None).value // 1000) if pd.Timestamp(
        first).tzinfo is None else int(pd.Timestamp(first).tz_convert("UTC").value // 1000)
    if progress:
        progress("warming the feature state", 0.0)
    online.warm(us_to_datetime(first_us - 1, online.aware))
    target = Path(out) if out else (loaded.workspace / "score" /
                                    f"{Path(input).stem}.decisions.parquet")
    as_csv = target.suffix.lower() == ".csv"
    logger = DecisionLog(log_path or loaded.workspace / "serve" / "decisions.sqlite") if log \
        else None
    decider = Decider(bundle, online, logger, state=online.state, origin="score")
    names = list(bundle.feature_names)
    actions: dict[str, int] = {}
    overflow = 0
    n = len(frame)
    writer: pq.ParquetWriter | None = None
    try:
        with atomic_path(target) as tmp:
            for start in range(0, n, chunk):
                events = _rows(frame.iloc[start:start + chunk])
                pendings = decider.prepare_batch(events)
                if logger is not None:
                    logger.append_many([p.record for p in pendings])
                table = _table(pendings, keys, tcol, names)
                if as_csv:
                    table.to_pandas().to_csv(tmp, mode="w" if start == 0 else "a",
                                             header=start == 0, index=False)
                else:
                    if writer is None:
                        writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
                    writer.write_table(table.cast(writer.schema))
                for p in pendings:
                    actions[p.decision.action] = actions.get(p.decision.action, 0) + 1
                    overflow += p.decision.overflow
                if progress:
                    done = min(start + chunk, n)
                    progress(f"{done:,} of {n:,} events", done / n)
            if writer is not None:
                writer.close()
                writer = None
    finally:
        if writer is not None:
            writer.close()
        if logger is not None:
            logger.close()
    top_path = _write_top(target, top, decider, tcol) if top else None
    return ScoreResult(rows=n, seconds=time.perf_counter() - started, out=target,
                       top_path=top_path, log_path=logger.path if logger else None,
                       actions=actions, overflow=overflow, bundle_version=bundle.version,
                       policy_version=decider.policy_version)


def _write_top(target: Path, top: int, decider: Decider, time_column: str) -> Path:
    """The ``top`` highest scores of each capacity period (default one day) as CSV."""
    table = (pd.read_csv(target) if target.suffix.lower() == ".csv" else
             pd.read_parquet(target))
    per_us = decider.capacity.per_us if decider.capacity is not None else DAY_US
    t_us = pd.to_datetime(table[time_column], utc=True).astype("int64") // 1000
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
