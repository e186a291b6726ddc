"""Vectorised batch decisions: the service's decisions for a whole batch, from offline features.

:func:`decide_batch` takes the features of a batch (:func:`~valuechain.serve.batch_features.
batch_features`, in decision order) and, chunk by chunk,

1. takes each event as the service normalises it (the decision source's columns cast to its
   types by DuckDB in :func:`~valuechain.serve.batch_features.batch_features`, other fields
   as given, NaN as null: what the log's ``event`` column holds) and its features;
2. scores the chunk with the bundle in one call on the feature frame (``Bundle.score`` and
   ``Bundle.contributions``: the offline code path, bit for bit the online one);
3. applies the policy to the whole chunk, then the real-time capacity in decision order with
   the service's own rule (:class:`~valuechain.serve.decider.Decider`: first come, first
   served per capacity period, counted in the decider's state; the overflow rule beyond the
   limit) — only the rows whose policy action is the capacity-limited one go through it;
4. builds each decision's log record (:class:`~valuechain.serve.log.DecisionRecord`: the
   decision id — stable for batch scoring, :meth:`Decider.decision_id
   <valuechain.serve.decider.Decider.decision_id>` —, the key, the features in the model's
   order, the top reasons — the largest absolute contributions, as the service picks them)
   and appends the chunk to the decision log in one group commit
   (``DecisionLog.append_many``; a decision id already logged is kept as it is, so
   re-scoring a batch logs nothing twice), overlapping the next chunk's work.

The pieces that turn a chunk's Arrow columns into values, keys, reasons and their JSON
(:func:`plain_rows`, :func:`key_texts`, :func:`reason_contributions`, :func:`top_reasons`,
:func:`reasons_json`) are also what :mod:`valuechain.serve.spark_score` runs per partition
on Spark, so both paths give the same text.

The decisions equal those of the service receiving the same events in decision order, with
the outcomes and dimension updates of the sources arriving when they become known (the
``--online`` reference path of ``valuechain score`` and ``valuechain parity``'s replay).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from valuechain.errors import SpecError
from valuechain.serve.batch_features import BatchFeatures
from valuechain.serve.decider import REASONS, Decider
from valuechain.serve.log import DecisionLog, DecisionRecord, iso_us

__all__ = ["REASONS", "PlainRecord", "decide_batch", "event_rows", "key_texts", "plain_rows",
           "reason_contributions", "reasons_json", "top_reasons"]



def event_rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """The rows of ``frame`` as event mappings (NaN and NaT become None).

    >>> event_rows(pd.DataFrame({"a": [1.5, float("nan")], "b": ["x", None]}))
    [{'a': 1.5, 'b': 'x'}, {'a': None, 'b': None}]
    """
    records: list[dict[str, Any]] = [{str(k): v for k, v in r.items()}
                                     for r in frame.to_dict("records")]
    for row in records:
        for k, v in row.items():
            if (isinstance(v, float) and v != v) or v is pd.NaT:
                row[k] = None
    return records


def _default(value: Any) -> Any:
    """JSON for values the plain encoder does not know (the log's rule: times as ISO text)."""
    if isinstance(value, datetime | pd.Timestamp):
        return value.isoformat()
    item = getattr(value, "item", None)
    if callable(item):
        return item()
    return str(value)


_ENCODER = json.JSONEncoder(separators=(",", ":"), default=_default, allow_nan=False)
_dumps = _ENCODER.encode  # json.dumps with the log's settings, without a new encoder per call


class PlainRecord(DecisionRecord):
    """A :class:`DecisionRecord` whose event, features and reasons hold only plain JSON
    values (no NaN or infinity, no nested NumPy values), as :func:`decide_batch` builds
    them: its row skips the log's recursive clean-up (about 10x faster, the same text;
    ``tests/test_score.py`` checks the rows against :meth:`DecisionRecord.row`)."""

    def row(self, seq: int) -> tuple[Any, ...]:
        created = self.created_at_us or time.time_ns() // 1000
        return (seq, self.decision_id, iso_us(self.time_us), int(self.time_us), self.key,
                self.bundle_version, self.policy_version, _dumps(self.event),
                _dumps(self.features), float(self.score), self.policy_action, self.action,
                int(bool(self.overflow)), self.capacity_note, _dumps(self.reasons),
                _dumps(dict(self.latency_us)), self.origin, iso_us(created))


def _column_values(column: pa.ChunkedArray | pa.Array) -> list[Any]:
    """Python values of a column (ints stay ints, nulls None), fast for numbers."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    kind = array.type
    if array.null_count == 0 and (pa.types.is_integer(kind) or pa.types.is_floating(kind)
                                  or pa.types.is_boolean(kind)):
        return array.to_numpy(zero_copy_only=False).tolist()  # type: ignore[no-any-return]
    return array.to_pylist()  # type: ignore[no-any-return]


def _act(decider: Decider, scores: np.ndarray, t_us: np.ndarray
         ) -> list[tuple[str, str, bool, str | None, tuple[str, int] | None]]:
    """Policy on the whole chunk, then the service's capacity rule in order (``Decider``)."""
    n = len(scores)
    # each row alone in its period: what the service's one-row policy call gives
    actions = decider.policy.apply(scores, np.arange(n)).tolist()
    out: list[tuple[str, str, bool, str | None, tuple[str, int] | None]] = [
        (a, a, False, None, None) for a in actions]
    cap = decider.capacity
    if cap is not None:
        # the service's rule, one row at a time (public `act` once serve/decider.py has it)
        act = getattr(decider, "act", None) or decider._act
        for i in np.flatnonzero(np.asarray(actions, dtype=object) == cap.action).tolist():
            out[i] = act(float(scores[i]), int(t_us[i]))
    return out


def reason_contributions(bundle: Any, matrix: pd.DataFrame, actions: Sequence[str],
                         reasons: str, lowest: str) -> np.ndarray | None:
    """``(n, n_features)`` per-feature contributions (``bundle.contributions`` on the
    feature frame) the reasons come from, under the ``reasons`` mode: every row (``all``),
    the rows whose action is not ``lowest`` (``flagged``), none; rows without reasons are
    NaN; None when no row gets any."""
    if reasons == "none":
        return None
    if reasons == "all":
        return np.asarray(bundle.contributions(matrix), dtype=np.float64)
    chosen = [i for i, a in enumerate(actions) if a != lowest]
    if not chosen:
        return None
    out = np.full((len(actions), matrix.shape[1]), np.nan)
    out[chosen] = np.asarray(bundle.contributions(matrix.iloc[chosen]), dtype=np.float64)
    return out


def top_reasons(names: Sequence[str], values: list[dict[str, Any]],
                contribs: np.ndarray | None, top: int) -> list[list[dict[str, Any]]]:
    """The top reasons of each row as the service writes them (``Reason.to_json``): the
    ``top`` largest absolute contributions, ties in feature order (a stable sort)."""
    n = len(values)
    k = min(top, len(names))
    if contribs is None or k <= 0:
        return [[] for _ in range(n)]
    order = np.argsort(-np.abs(contribs), axis=1, kind="stable")[:, :k]
    picked = np.take_along_axis(contribs, order, axis=1)
    out: list[list[dict[str, Any]]] = []
    for row, idx, con in zip(values, order.tolist(), picked.tolist(), strict=True):
        if con[0] != con[0]:  # NaN: a row without reasons
            out.append([])
            continue
        out.append([{"feature": names[j], "value": row[names[j]], "contribution": c}
                    for j, c in zip(idx, con, strict=True)])
    return out


_reasons = top_reasons  # the former name


def reasons_json(why: Sequence[Sequence[dict[str, Any]]]) -> list[str]:
    """Each row's reasons as the ``reasons`` column of the decisions file holds them."""
    return [json.dumps(r, default=str) for r in why]


def plain_rows(table: pa.Table | pa.RecordBatch, names: Sequence[str] | None = None
               ) -> list[dict[str, Any]]:
    """The rows of ``table`` (``names``' columns, default all) as plain values, as the log
    holds them (:func:`_plain_column`)."""
    names = list(table.column_names if names is None else names)
    columns = [_plain_column(table.column(c)) for c in names]
    return [dict(zip(names, row, strict=True)) for row in zip(*columns, strict=True)]


def key_texts(table: pa.Table | pa.RecordBatch, keys: Sequence[str]) -> list[str]:
    """Each row's decision-point key text (the log's ``key``: key values joined by ``|``)."""
    columns = [_plain_column(table.column(k)) for k in keys]
    return ["|".join(_key_text(v) for v in row) for row in zip(*columns, strict=True)]


def _plain_column(column: pa.ChunkedArray | pa.Array) -> list[Any]:
    """Python values of a column as the service logs them: ints stay ints, NaN and nulls
    become None (``decider._plain``), times ISO text via the log's JSON."""
    values = _column_values(column)
    kind = column.type
    if pa.types.is_floating(kind):
        return [None if v is None or v != v or v in (_INF, -_INF) else v for v in values]
    return values


_INF = float("inf")


def decide_batch(decider: Decider, features: BatchFeatures, *,
                 log: DecisionLog | None = None, chunk: int = 50_000, reasons: str = "all",
                 progress: Callable[[str, float], None] | None = None
                 ) -> Iterator[pa.Table]:
    """Decide the batch chunk by chunk (see the module docstring); yields each chunk's
    decisions as a table (decision order; the columns of ``valuechain score``'s output);
    with ``log``, every decision is appended to it (durable when the iterator ends).

    ``reasons`` (see :data:`REASONS`): ``"all"`` gives every decision its top reasons as the
    service does; ``"flagged"`` only the decisions whose action is not the policy's lowest
    (reviewed and declined payments; the others are logged with no reasons); ``"none"``
    gives none. The per-feature contributions (LightGBM's TreeSHAP ``pred_contrib``) cost
    far more than the score: about 1 ms per row on this machine.
    """
    if reasons not in REASONS:
        raise SpecError(f"`reasons` must be one of {', '.join(REASONS)}, got {reasons!r}.")
    frame = features.frame
    n = frame.num_rows
    names = list(decider.feature_names)
    keys, tcol = decider.key_columns, decider.time_column
    times = np.asarray(frame.column("__t").to_numpy(), dtype=np.int64)
    build_us = int(features.seconds.get("total", 0.0) * 1e6) // max(n, 1)
    bundle, policy_version = decider.bundle, decider.policy_version
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="score-log")
    pending_log: Future[int] | None = None
    try:
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            size = stop - start
            began = time.perf_counter_ns()
            part = frame.slice(start, size)
            given = features.events.slice(start, size)
            events = plain_rows(given)
            values = plain_rows(part, names)
            matrix = part.select(names).to_pandas()
            t_features = time.perf_counter_ns()
            scores = np.asarray(bundle.score(matrix), dtype=np.float64)
            t_model = time.perf_counter_ns()
            acted = _act(decider, scores, times[start:stop])
            t_policy = time.perf_counter_ns()
            contribs = reason_contributions(bundle, matrix, [a[0] for a in acted], reasons,
                                            decider.lowest_action)
            why = top_reasons(names, values, contribs, decider.top_reasons)
            t_reasons = time.perf_counter_ns()
            latency = {"features": build_us + (t_features - began) // size // 1000,
                       "model": (t_model - t_features + t_reasons - t_policy) // size // 1000,
                       "policy": (t_policy - t_model) // size // 1000}
            key_text = key_texts(given, keys)
            created = time.time_ns() // 1000
            score_list = scores.tolist()
            t_list = times[start:stop].tolist()
            ids = [decider.decision_id(k, t) for k, t in zip(key_text, t_list, strict=True)]
            records = [
                PlainRecord(
                    decision_id=i, time_us=t, key=k, bundle_version=bundle.version,
                    policy_version=policy_version, event=e, features=f, score=s,
                    policy_action=a[1], action=a[0], overflow=a[2], capacity_note=a[3],
                    reasons=r, latency_us=latency, origin=decider.origin,
                    created_at_us=created)
                for i, t, k, e, f, s, a, r in zip(ids, t_list, key_text, events, values,
                                                  score_list, acted, why, strict=True)]
            if log is not None:
                if pending_log is not None:
                    pending_log.result()
                pending_log = pool.submit(log.append_many, records, on_repeat="skip")
            table = {k: part.column(k) for k in keys}
            table[tcol] = pa.array(times[start:stop], pa.timestamp("us", tz="UTC"))
            table.update({
                "decision_id": pa.array(ids, pa.string()),
                "score": pa.array(scores, pa.float64()),
                "action": pa.array([a[0] for a in acted], pa.string()),
                "policy_action": pa.array([a[1] for a in acted], pa.string()),
                "overflow": pa.array([a[2] for a in acted], pa.bool_()),
                "reasons": pa.array(reasons_json(why), pa.string())})
            table.update({f"feature.{c}": part.column(c) for c in names})
            if progress:
                progress(f"{stop:,} of {n:,} events", 0.3 + 0.7 * stop / n)
            yield pa.table(table)
        if pending_log is not None:
            pending_log.result()
    finally:
        pool.shutdown(wait=True)


def _key_text(value: Any) -> str:
    """A key value as the decision's key text (``Decider``'s: ISO text for times)."""
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)
