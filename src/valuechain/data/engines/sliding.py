"""Aggregates over sliding ranges of sorted rows, in one pass (numba).

The sorted-range kernel (:mod:`valuechain.data.engines.prefix`) finds, for every decision,
the positions ``[lo, hi)`` of its window's members among rows sorted by ``(key, time, tie)``.
Counts and sums are differences of prefix sums; the aggregates here are not decomposable, so
they are kept up to date as the range slides: both ends only move forward (``lo`` and ``hi``
never decrease in sorted order), so each row enters and leaves once.

* :func:`sliding_extreme`: min or max by a monotone deque (O(n));
* :func:`sliding_distinct`: distinct values by per-value counts (O(n));
* :func:`range_std`: sample standard deviation, two passes over each range (exact like the
  reference; O(total range length)).

Values arrive as integer codes (``-1`` = not a member: filtered out or null), so any ordered
type works; the caller maps codes back.

>>> import numpy as np
>>> codes = np.array([3, 1, -1, 2], dtype=np.int64)
>>> lo, hi = np.array([0, 0, 1, 1]), np.array([1, 2, 3, 4])
>>> sliding_extreme(codes, lo, hi, True).tolist(), sliding_distinct(codes, lo, hi, 4).tolist()
([3, 3, 1, 2], [1, 2, 1, 2])
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import numpy as np
import numpy.typing as npt

from valuechain.errors import EngineError

__all__ = ["check_monotone", "range_std", "sliding_distinct", "sliding_extreme"]

F = TypeVar("F", bound=Callable[..., Any])
I64 = npt.NDArray[np.int64]

try:
    from numba import njit as _njit

    def jit(func: F) -> F:
        """Compile with numba (cached on disk when the package folder is writable)."""
        return _njit(cache=True, nogil=True)(func)  # type: ignore[return-value]
except ImportError:  # pragma: no cover - numba is a dependency; plain Python still works
    def jit(func: F) -> F:
        return func


def _i64(values: npt.ArrayLike) -> I64:
    return np.ascontiguousarray(values, dtype=np.int64)


def check_monotone(lo: I64, hi: I64) -> None:
    """The sliding kernels' precondition: ``lo <= hi`` and neither ever decreases."""
    if len(lo) and not (np.all(lo <= hi) and np.all(np.diff(lo) >= 0)
                        and np.all(np.diff(hi) >= 0)):
        raise EngineError("internal: window ranges must be non-decreasing (rows sorted by "
                          "key, time); please report this with the spec")


@jit
def _extreme(codes: I64, lo: I64, hi: I64, want_max: bool) -> I64:  # pragma: no cover
    n = len(lo)
    out = np.full(n, -1, dtype=np.int64)
    queue = np.empty(len(codes), dtype=np.int64)  # positions, codes monotone front to back
    head = 0
    tail = 0
    nxt = 0
    for q in range(n):
        while nxt < hi[q]:
            c = codes[nxt]
            if c >= 0:
                while tail > head and ((codes[queue[tail - 1]] <= c) if want_max
                                       else (codes[queue[tail - 1]] >= c)):
                    tail -= 1
                queue[tail] = nxt
                tail += 1
            nxt += 1
        while tail > head and queue[head] < lo[q]:
            head += 1
        if tail > head:
            out[q] = codes[queue[head]]
    return out


def sliding_extreme(codes: I64, lo: I64, hi: I64, want_max: bool) -> I64:
    """Per range ``[lo, hi)``: the largest (``want_max``) or smallest code ``>= 0``, or -1."""
    check_monotone(lo, hi)
    return _extreme(_i64(codes), _i64(lo), _i64(hi), want_max)  # type: ignore[no-any-return]


@jit
def _distinct(codes: I64, lo: I64, hi: I64, n_codes: int) -> I64:  # pragma: no cover
    n = len(lo)
    out = np.zeros(n, dtype=np.int64)
    seen = np.zeros(max(n_codes, 1), dtype=np.int64)
    distinct = 0
    start = 0
    end = 0
    for q in range(n):
        while end < hi[q]:
            c = codes[end]
            if c >= 0:
                if seen[c] == 0:
                    distinct += 1
                seen[c] += 1
            end += 1
        while start < lo[q]:
            c = codes[start]
            if c >= 0:
                seen[c] -= 1
                if seen[c] == 0:
                    distinct -= 1
            start += 1
        out[q] = distinct
    return out


def sliding_distinct(codes: I64, lo: I64, hi: I64, n_codes: int) -> I64:
    """Per range ``[lo, hi)``: how many different codes ``>= 0`` it holds (codes < n_codes)."""
    check_monotone(lo, hi)
    return _distinct(_i64(codes), _i64(lo), _i64(hi), int(n_codes))  # type: ignore[no-any-return]


@jit
def _std(values: npt.NDArray[np.float64], present: npt.NDArray[np.bool_], lo: I64,
         hi: I64) -> npt.NDArray[np.float64]:  # pragma: no cover
    n = len(lo)
    out = np.full(n, np.nan)
    for q in range(n):
        count = 0
        total = 0.0
        for j in range(lo[q], hi[q]):
            if present[j]:
                count += 1
                total += values[j]
        if count < 2:
            continue
        mean = total / count
        square = 0.0
        for j in range(lo[q], hi[q]):
            if present[j]:
                square += (values[j] - mean) ** 2
        out[q] = np.sqrt(square / (count - 1))
    return out


def range_std(values: npt.NDArray[np.float64], present: npt.NDArray[np.bool_], lo: I64,
              hi: I64) -> npt.NDArray[np.float64]:
    """Per range ``[lo, hi)``: the sample standard deviation of the present values (NaN
    below two).

    >>> range_std(np.array([1.0, 3.0, 5.0]), np.array([True, True, True]),
    ...           np.array([0, 0]), np.array([1, 3])).tolist()
    [nan, 2.0]
    """
    return _std(np.ascontiguousarray(values, dtype=np.float64),  # type: ignore[no-any-return]
                np.ascontiguousarray(present, dtype=np.bool_), _i64(lo), _i64(hi))
