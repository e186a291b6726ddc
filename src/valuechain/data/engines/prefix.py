"""Sorted-range kernel for windows over the decision source (every aggregate).

Used by the DuckDB engine (and so by each Spark task) for windows over the decision source
itself. Rows are sorted once by ``(key, time, tie order)``; each window's first and last
member are found with binary search on a composite ``key * M + time`` code, so every
decision's members are one range ``[lo, hi)`` of sorted rows. Counts, sums, means and rates
are differences of prefix sums (accumulated in extended precision, so sums stay within
~1e-11 of exact); min, max, distinct_count and std slide over the ranges in one pass
(:mod:`valuechain.data.engines.sliding`); the recency aggregates read the first or last
member of the range. Membership follows :mod:`valuechain.data.pit` exactly; the property
tests check it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from valuechain.data.engines.sliding import range_std, sliding_distinct, sliding_extreme
from valuechain.data.pit import DAY_US, EMPTY_ZERO, Window

__all__ = ["DECOMPOSABLE", "SortedGroup", "sort_group", "window_values"]

DECOMPOSABLE = frozenset({"count", "sum", "mean", "rate"})  # by prefix sums
I64 = npt.NDArray[np.int64]
_LIMIT = 2**62
T = TypeVar("T")


@dataclass(frozen=True)
class SortedGroup:
    """The points of one (key, filter) group, sorted, with the composite search code."""

    order: I64  # sorted position -> point index
    times: I64  # per sorted row: its time
    point_times: I64  # the times in points order (usually ascending: fast to search)
    instants: I64  # the distinct times, ascending
    code: I64  # per sorted row: key * (distinct times + 1) + rank of its time + 1, ascending
    base: I64  # per sorted row: key * (distinct times + 1)
    valid: npt.NDArray[np.bool_]  # key is not null
    passes: npt.NDArray[np.bool_]  # row passes the group's filter (sorted order)
    _cache: dict[object, object] = field(default_factory=dict, compare=False, repr=False)

    def cached(self, key: object, make: Callable[[], T]) -> T:
        """Work shared by windows of the group (bounds, prefix sums), computed once."""
        if key not in self._cache:
            self._cache[key] = make()
        return self._cache[key]  # type: ignore[return-value]


def sort_group(points: pa.Table, key: str, filter_column: str | None) -> SortedGroup | None:
    """Sort the points by (key, time, tie); None when the composite code could overflow.

    Times enter the code by their rank among the distinct times, so the code stays small
    (keys x rows) whatever the time span."""
    keys = points.column(key).combine_chunks()
    valid = ~np.asarray(pc.is_null(keys).to_numpy(zero_copy_only=False), dtype=bool)
    encoded = pc.dictionary_encode(keys)
    codes = np.asarray(encoded.indices.fill_null(-1).to_numpy(), dtype=np.int64) + 1
    t = np.asarray(points.column("__t").to_numpy(), dtype=np.int64)
    tie = np.asarray(points.column("__o").to_numpy(), dtype=np.int64)
    instants, rank = np.unique(t, return_inverse=True)
    span = len(instants) + 1
    if (len(encoded.dictionary) + 2) * span >= _LIMIT:
        return None
    in_time_order = len(t) < 2 or bool(np.all(
        (t[1:] > t[:-1]) | ((t[1:] == t[:-1]) & (tie[1:] >= tie[:-1]))))
    order = (np.argsort(codes, kind="stable") if in_time_order  # already (t, tie)-sorted
             else np.lexsort((tie, t, codes))).astype(np.int64)
    base = codes[order] * span
    filt = (np.ones(len(t), dtype=bool) if filter_column is None else
            np.asarray(points.column(filter_column).fill_null(False).to_numpy(
                zero_copy_only=False), dtype=bool))
    return SortedGroup(order=order, times=t[order], point_times=t, instants=instants,
                       code=base + rank.reshape(-1)[order] + 1, base=base,
                       valid=valid[order], passes=filt[order])


def _prefix(values: npt.NDArray[np.floating]) -> npt.NDArray[np.longdouble]:
    out = np.zeros(len(values) + 1, dtype=np.longdouble)
    np.cumsum(values, dtype=np.longdouble, out=out[1:])
    return out


def _bound(group: SortedGroup, offset: int) -> I64:
    """Per sorted row: the first position after every row at or before ``t - offset``."""
    # rows of the key at or before t - offset have codes <= base + (distinct times <= it)
    at_or_before = np.searchsorted(group.instants, group.point_times - offset,
                                   side="right")[group.order]
    return np.searchsorted(group.code, group.base + at_or_before, side="right").astype(np.int64)


def _columns(group: SortedGroup, points: pa.Table, value: str | None) -> tuple[
        I64, npt.NDArray[np.longdouble] | None]:
    """Prefix counts of members and prefix sums of their values, for one value column."""
    member = group.passes
    sums = None
    if value is not None:
        column = points.column(value).combine_chunks()
        present = np.asarray(pc.is_valid(column).to_numpy(zero_copy_only=False), dtype=bool)
        raw = np.asarray(pc.cast(column, pa.float64()).fill_null(0.0).to_numpy(),
                         dtype=np.float64)
        member = member & present[group.order]
        sums = _prefix(np.where(member, raw[group.order], 0.0))
    counts = np.zeros(len(member) + 1, dtype=np.int64)
    np.cumsum(member, out=counts[1:])
    return counts, sums


def _ranges(group: SortedGroup, window: Window) -> tuple[I64, I64]:
    """Per sorted row: its members' positions ``[lo, hi)`` (both non-decreasing)."""
    start = window.lag_us + window.window_us
    lo = group.cached(("bound", start), lambda: _bound(group, start))
    if window.lag_us:
        hi = group.cached(("bound", window.lag_us), lambda: _bound(group, window.lag_us))
    else:
        hi = group.cached(("upto", start, window.include_current), lambda: np.maximum(
            np.arange(len(group.order), dtype=np.int64) + int(window.include_current), lo))
    return lo, hi


def _codes(group: SortedGroup, points: pa.Table, value: str) -> tuple[I64, pa.Array]:
    """Per sorted row: the rank of its value among the sorted distinct values (-1 when null
    or filtered out), and those values."""
    column = points.column(value).combine_chunks()
    distinct = pc.unique(column.drop_null())
    distinct = distinct.take(pc.array_sort_indices(distinct))
    ranks = pc.index_in(column, value_set=distinct).fill_null(-1)
    codes = np.asarray(ranks.to_numpy(), dtype=np.int64)[group.order]
    codes[~group.passes] = -1
    return codes, distinct


def _from_sorted(group: SortedGroup, values: pa.Array) -> pa.Array:
    """Values in sorted order, put back in points order."""
    inverse = np.empty(len(group.order), dtype=np.int64)
    inverse[group.order] = np.arange(len(group.order), dtype=np.int64)
    return values.take(pa.array(inverse))


def _taken(values: pa.Array, index: I64) -> pa.Array:
    """``values[index]``, null where ``index < 0``."""
    return values.take(pa.array(np.maximum(index, 0), mask=index < 0))


def _ordered(group: SortedGroup, points: pa.Table, window: Window, lo: I64,
             hi: I64) -> pa.Array:
    """min, max, distinct_count, std or a recency aggregate, in sorted order."""
    n = len(group.order)
    agg = window.agg
    if agg in ("min", "max", "distinct_count"):
        assert window.value is not None
        codes, distinct = group.cached(("codes", window.value),
                                       lambda: _codes(group, points, window.value or ""))
        if agg == "distinct_count":
            return pa.array(sliding_distinct(codes, lo, hi, len(distinct)))
        return _taken(distinct, sliding_extreme(codes, lo, hi, agg == "max"))
    present = group.passes.copy()
    column = None if window.value is None else points.column(window.value).combine_chunks()
    if column is not None:
        present &= np.asarray(pc.is_valid(column).to_numpy(zero_copy_only=False),
                              dtype=bool)[group.order]
    if agg == "std":
        assert column is not None
        raw = np.asarray(pc.cast(column, pa.float64()).fill_null(0.0).to_numpy(),
                         dtype=np.float64)[group.order]
        std = range_std(raw, present, lo, hi)
        return pa.array(std, mask=np.isnan(std))
    index = np.arange(n, dtype=np.int64)
    if agg == "since_first":  # the first member at or after lo
        first = np.minimum.accumulate(np.where(present, index, n)[::-1])[::-1]
        member = np.append(first, n)[lo]
    else:  # the last member before hi
        last = np.maximum.accumulate(np.where(present, index, -1))
        member = np.where(hi > 0, last[np.maximum(hi - 1, 0)], -1)
    member = np.where((member >= lo) & (member < hi), member, -1)
    if agg == "last":
        assert column is not None
        return _taken(column, np.where(member >= 0, group.order[np.maximum(member, 0)], -1))
    times = group.times
    days = (times - times[np.maximum(member, 0)]) / DAY_US
    return pa.array(days, mask=member < 0)


def window_values(group: SortedGroup, points: pa.Table, window: Window) -> pa.Array:
    """One window over the decision source, in points order (for an outcome window: the
    members only)."""
    lo, hi = _ranges(group, window)
    if window.agg not in DECOMPOSABLE:
        ordered = _ordered(group, points, window, lo, hi)
        empty = pa.scalar(0 if window.agg in EMPTY_ZERO else None, ordered.type)
        values = _from_sorted(group, pc.if_else(pa.array(group.valid), ordered, empty))
        if window.fill is not None:  # as SQL's coalesce(value, fill): a number
            values = pc.fill_null(pc.cast(values, pa.float64()), window.fill)
        return values
    n = len(group.order)
    counts, sums = group.cached(("prefix", window.value),
                                lambda: _columns(group, points, window.value))
    count = counts[hi] - counts[lo]
    result: npt.NDArray[np.float64] | I64
    if window.agg == "count":
        result = count
    else:
        assert sums is not None
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
