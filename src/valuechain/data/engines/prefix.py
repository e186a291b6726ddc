"""Prefix-sum kernel for decomposable windows (count, sum, mean, rate) over the points.

Used by the DuckDB engine for windows over the decision source itself. Rows are sorted once
by ``(key, time, tie order)``; each window's first and last member are found with binary
search on a composite ``key * M + time`` code, and counts and sums are differences of
prefix sums (accumulated in extended precision, so sums stay within ~1e-11 of exact).
Membership follows :mod:`valuechain.data.pit` exactly; the property tests check it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from valuechain.data.pit import Window

__all__ = ["DECOMPOSABLE", "SortedGroup", "sort_group", "window_values"]

DECOMPOSABLE = frozenset({"count", "sum", "mean", "rate"})
I64 = npt.NDArray[np.int64]
_LIMIT = 2**62


@dataclass(frozen=True)
class SortedGroup:
    """The points of one (key, filter) group, sorted, with the composite search code."""

    order: I64  # sorted position -> point index
    code: I64  # composite key*M + time offset, ascending
    base: I64  # per sorted row: key*M - time origin (add a time to get its code)
    floor: I64  # per sorted row: just below the smallest code of its key
    valid: npt.NDArray[np.bool_]  # key is not null
    passes: npt.NDArray[np.bool_]  # row passes the group's filter (sorted order)


def sort_group(points: pa.Table, key: str, filter_column: str | None) -> SortedGroup | None:
    """Sort the points by (key, time, tie); None when the composite code could overflow."""
    keys = points.column(key).combine_chunks()
    valid = ~np.asarray(pc.is_null(keys).to_numpy(zero_copy_only=False), dtype=bool)
    encoded = pc.dictionary_encode(keys)
    codes = np.asarray(encoded.indices.fill_null(-1).to_numpy(), dtype=np.int64)
    t = np.asarray(points.column("__t").to_numpy(), dtype=np.int64)
    tie = np.asarray(points.column("__o").to_numpy(), dtype=np.int64)
    t0 = int(t.min()) if len(t) else 0
    span = (int(t.max()) - t0 if len(t) else 0) + 2
    if (len(encoded.dictionary) + 2) * span >= _LIMIT:
        return None
    order = np.lexsort((tie, t, codes)).astype(np.int64)
    code_s = codes[order]
    base = code_s * span - t0
    filt = (np.ones(len(t), dtype=bool) if filter_column is None else
            np.asarray(points.column(filter_column).fill_null(False).to_numpy(
                zero_copy_only=False), dtype=bool))
    return SortedGroup(order=order, code=base + t[order], base=base, floor=code_s * span - 1,
                       valid=valid[order], passes=filt[order])


def _prefix(values: npt.NDArray[np.floating]) -> npt.NDArray[np.longdouble]:
    out = np.zeros(len(values) + 1, dtype=np.longdouble)
    np.cumsum(values, dtype=np.longdouble, out=out[1:])
    return out


def window_values(group: SortedGroup, points: pa.Table, window: Window) -> pa.Array:
    """One decomposable window's values, in points order (not for outcome windows)."""
    n = len(group.order)
    t_sorted = group.code - group.base
    end = t_sorted - window.lag_us
    start = end - window.window_us
    # Members of sorted row i occupy sorted positions [lo, hi).
    floor = group.floor  # clamps window starts before the time origin to the key's start
    lo = np.searchsorted(group.code, np.maximum(group.base + start, floor), side="right")
    if window.lag_us:
        hi = np.searchsorted(group.code, np.maximum(group.base + end, floor), side="right")
    else:
        hi = np.arange(n, dtype=np.int64) + (1 if window.include_current else 0)
        hi = np.maximum(hi, lo)
    member = group.passes.copy()
    values: npt.NDArray[np.float64] | None = None
    if window.value is not None:
        column = points.column(window.value).combine_chunks()
        present = np.asarray(pc.is_valid(column).to_numpy(zero_copy_only=False), dtype=bool)
        raw = np.asarray(pc.cast(column, pa.float64()).fill_null(0.0).to_numpy(),
                         dtype=np.float64)
        member &= present[group.order]
        values = np.where(member, raw[group.order], 0.0)
    counts = np.concatenate(([0], np.cumsum(member, dtype=np.int64)))
    count = counts[hi] - counts[lo]
    result: npt.NDArray[np.float64] | I64
    if window.agg == "count":
        result = count
    else:
        assert values is not None
        sums = _prefix(values)
        total = (sums[hi] - sums[lo]).astype(np.float64)
        if window.agg == "sum":
            result = total
        else:
            with np.errstate(invalid="ignore", divide="ignore"):
                result = total / count
    empty_null = window.agg in ("mean", "rate")
    mask = ~group.valid | ((count == 0) if empty_null else np.zeros(n, dtype=bool))
    if not empty_null:
        result = np.where(group.valid, result, 0)
    out = np.empty_like(result)
    out[group.order] = result
    null = np.empty(n, dtype=bool)
    null[group.order] = mask if empty_null else np.zeros(n, dtype=bool)
    arr = pa.array(out, mask=null if null.any() else None)
    if window.fill is not None and arr.null_count:
        arr = pc.fill_null(pc.cast(arr, pa.float64()), window.fill)
    return arr
