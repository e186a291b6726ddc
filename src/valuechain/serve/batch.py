"""Vectorised batch decisions: the service's decisions for a whole batch, from offline features.

:func:`decide_batch` takes the features of a batch (:func:`~valuechain.serve.batch_features.
batch_features`, in decision order) and, chunk by chunk,

1. normalises each event as the service does (``OnlineFeatures.check_event``: what the log's
   ``event`` column holds);
2. scores the chunk with the bundle in one call on the feature frame (``Bundle.score`` and
   ``Bundle.contributions``: the offline code path, bit for bit the online one);
3. applies the policy to the whole chunk, then the real-time capacity in decision order with
   the service's own rule (:class:`~valuechain.serve.decider.Decider`: first come, first
   served per capacity period, counted in the decider's state; the overflow rule beyond the
   limit) — only the rows whose policy action is the capacity-limited one go through it;
4. builds each decision and its log record with :meth:`Decider.finish
   <valuechain.serve.decider.Decider.finish>` (the same decision id, key, ordered features,
   top reasons and record as the service) and appends the chunk to the decision log in one
   group commit (``DecisionLog.append_many``), overlapping the next chunk's work.

The decisions equal those of the service receiving the same events in decision order, with
the outcomes and dimension updates of the sources arriving when they become known (the
``--online`` reference path of ``valuechain score`` and ``valuechain parity``'s replay).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from valuechain.errors import SpecError
from valuechain.policy.capacity import limited_action
from valuechain.serve.batch_features import ROW_COLUMN, BatchFeatures
from valuechain.serve.decider import Decider, Pending, Scored
from valuechain.serve.features import OnlineFeatures
from valuechain.serve.log import DecisionLog

__all__ = ["REASONS", "decide_batch", "event_rows", "feature_rows"]

#: Which decisions get their top reasons: every one, those not given the lowest action, none.
REASONS = ("all", "flagged", "none")


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


def _column_values(column: pa.ChunkedArray | pa.Array) -> list[Any]:
    """Python values of a column (ints stay ints, nulls None), fast for numbers."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    kind = array.type
    if array.null_count == 0 and (pa.types.is_integer(kind) or pa.types.is_floating(kind)
                                  or pa.types.is_boolean(kind)):
        return array.to_numpy(zero_copy_only=False).tolist()  # type: ignore[no-any-return]
    return array.to_pylist()  # type: ignore[no-any-return]


def feature_rows(table: pa.Table, names: Sequence[str]) -> list[dict[str, Any]]:
    """One ``{feature: value}`` mapping per row of ``table`` (values as the online path gives
    them: Python ints, floats, strings, None).

    >>> feature_rows(pa.table({"a": [1, 2], "b": [0.5, None]}), ["a", "b"])
    [{'a': 1, 'b': 0.5}, {'a': 2, 'b': None}]
    """
    columns = [_column_values(table.column(n)) for n in names]
    return [dict(zip(names, values, strict=True)) for values in zip(*columns, strict=True)]


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
        for i in np.flatnonzero(np.asarray(actions, dtype=object) == cap.action).tolist():
            out[i] = decider._act(float(scores[i]), int(t_us[i]))
    return out


def _contributions(decider: Decider, matrix: pd.DataFrame,
                   acted: Sequence[tuple[str, str, bool, str | None, tuple[str, int] | None]],
                   reasons: str) -> list[np.ndarray]:
    """Per row, the contributions the reasons come from (empty: no reasons)."""
    n = len(acted)
    empty = np.zeros(0, dtype=np.float64)
    if reasons == "none":
        return [empty] * n
    if reasons == "all":
        return list(np.asarray(decider.bundle.contributions(matrix), dtype=np.float64))
    low = limited_action(decider.policy)[1]
    chosen = [i for i, a in enumerate(acted) if a[0] != low]
    out = [empty] * n
    if chosen:
        values = np.asarray(decider.bundle.contributions(matrix.iloc[chosen]),
                            dtype=np.float64)
        for i, row in zip(chosen, values, strict=True):
            out[i] = row
    return out


def decide_batch(decider: Decider, online: OnlineFeatures, features: BatchFeatures,
                 events: pd.DataFrame, *, log: DecisionLog | None = None,
                 chunk: int = 50_000, reasons: str = "all",
                 progress: Callable[[str, float], None] | None = None
                 ) -> Iterator[list[Pending]]:
    """Decide the batch chunk by chunk (see the module docstring); yields each chunk's
    decisions (in decision order) once they are computed; with ``log``, they are appended to
    it (the last chunk is durable when the iterator ends).

    ``events`` are the raw input rows (``features.frame[ROW_COLUMN]`` indexes them).
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
    rows = np.asarray(frame.column(ROW_COLUMN).to_numpy(), dtype=np.int64)
    times = np.asarray(frame.column("__t").to_numpy(), dtype=np.int64)
    build_ns = int(features.seconds.get("total", 0.0) * 1e9) // max(n, 1)
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="score-log")
    pending_log: Future[None] | None = None
    try:
        for start in range(0, n, chunk):
            stop = min(start + chunk, n)
            began = time.perf_counter_ns()
            part = frame.slice(start, stop - start)
            checked = [online.check_event(e)
                       for e in event_rows(events.iloc[rows[start:stop]])]
            values = feature_rows(part, names)
            matrix = part.select(names).to_pandas()
            t_features = time.perf_counter_ns()
            scores = np.asarray(decider.bundle.score(matrix), dtype=np.float64)
            t_model = time.perf_counter_ns()
            acted = _act(decider, scores, times[start:stop])
            t_policy = time.perf_counter_ns()
            contribs = _contributions(decider, matrix, acted, reasons)
            t_reasons = time.perf_counter_ns()
            size = stop - start
            features_ns = build_ns + (t_features - began) // size
            model_ns = (t_model - t_features + t_reasons - t_policy) // size
            policy_ns = (t_policy - t_model) // size
            pendings = [
                decider.finish(Scored(event, feats, int(t), float(s), None, action,
                                      policy_action, overflow, note, slot, began, features_ns,
                                      model_ns, policy_ns), contrib)
                for event, feats, t, s, contrib, (action, policy_action, overflow, note, slot)
                in zip(checked, values, times[start:stop], scores, contribs, acted,
                       strict=True)]
            if log is not None:
                if pending_log is not None:
                    pending_log.result()
                pending_log = pool.submit(log.append_many, [p.record for p in pendings])
            if progress:
                progress(f"{stop:,} of {n:,} events", 0.3 + 0.7 * stop / n)
            yield pendings
        if pending_log is not None:
            pending_log.result()
    finally:
        pool.shutdown(wait=True)
