"""As-of lookups by sorted search: each point's dimension row as known at its time.

The definition (:mod:`valuechain.data.pit`): the dimension row with ``on == key`` and
``known <= t`` that is latest by ``(known, tie order)``; rows without a known time are always
known. Keys of both sides share one dictionary; times of both sides share one dense rank, so
``(key, time)`` becomes one int64 code and the lookup is one ``searchsorted`` over the
dimension rows sorted by ``(key, known, tie order)``.

>>> import pyarrow as pa
>>> points = pa.table({"__t": [5, 15, 25], "cust": [1, 1, None]})
>>> dim = pa.table({"__t": [None, 10, 10], "__o": [0, 2, 1], "id": [1, 1, 1],
...                 "tier": ["a", "c", "b"]})
>>> asof_values(points, "cust", dim, "id", "tier").to_pylist()
['a', 'c', None]
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

__all__ = ["asof_values"]

_NEVER = -(2**63)  # the known time of a row without one: before every point


def asof_values(points: pa.Table, key: str, dim: pa.Table, on: str, column: str,
                fill: float | None = None) -> pa.Array:
    """``column`` of the row of ``dim`` (matched on ``on``) known at each point's ``__t``."""
    n = points.num_rows
    point_keys = points.column(key).combine_chunks()
    dim_keys = dim.column(on).combine_chunks()
    if dim_keys.type != point_keys.type:
        dim_keys = pc.cast(dim_keys, point_keys.type)
    codes = pc.dictionary_encode(pa.concat_arrays([point_keys, dim_keys])).indices
    codes_np = np.asarray(codes.fill_null(-1).to_numpy(), dtype=np.int64)
    point_code, dim_code = codes_np[:n], codes_np[n:]
    t = np.asarray(points.column("__t").to_numpy(), dtype=np.int64)
    known = np.asarray(dim.column("__t").fill_null(_NEVER).to_numpy(), dtype=np.int64)
    tie = np.asarray(dim.column("__o").to_numpy(), dtype=np.int64)
    keep = np.flatnonzero(dim_code >= 0)
    order = keep[np.lexsort((tie[keep], known[keep], dim_code[keep]))]
    if not len(order):
        order = np.array([0], dtype=np.int64)  # nothing to find: every probe misses
        dim_code = np.array([-2], dtype=np.int64)
        known = np.array([_NEVER], dtype=np.int64)
    # one dense rank over both sides' times keeps (key, time) within an int64
    times, rank = np.unique(np.concatenate([t, known[order]]), return_inverse=True)
    span = len(times) + 1
    point_at = point_code * span + rank[:n]
    dim_at = dim_code[order] * span + rank[n:]
    found = np.searchsorted(dim_at, point_at, side="right") - 1
    hit = (point_code >= 0) & (found >= 0)
    hit &= dim_code[order[np.maximum(found, 0)]] == point_code
    index = np.where(hit, order[np.maximum(found, 0)], 0)
    values = dim.column(column).combine_chunks().take(pa.array(index, mask=~hit))
    if fill is not None:  # as SQL's coalesce(value, fill): a number
        values = pc.fill_null(pc.cast(values, pa.float64()), fill)
    return values
